"""How values look in the dashboard: coloured statuses, countdowns, sparklines.

Pure functions of their arguments (and the `now` they are given), so that a
frozen clock gives the same picture every time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.text import Text

from scheduler.views.text import duration_ms, span

STATUS_STYLES = {
    "ok": "bold green",
    "failed": "bold red",
    "timeout": "bold red",
    "abandoned": "bold magenta",
    "missed": "yellow",
    "skipped": "dim",
    "running": "bold cyan",
}
BARS = "▁▂▃▄▅▆▇█"


def status(value: str | None, slots: int = 1) -> Text:
    if value is None:
        return Text("never", style="dim")
    label = value if slots <= 1 else f"{value} x{slots}"
    return Text(label, style=STATUS_STYLES.get(value, ""))


def countdown(value: datetime | None, now: datetime) -> Text:
    """Time to the next fire ('42s', under a "next in" header); past means the daemon is behind."""
    if value is None:
        return Text("-", style="dim")
    if value <= now:
        return Text(f"due {span((now - value).total_seconds())}", style="yellow")
    return Text(span((value - now).total_seconds()))


def ago(value: datetime | None, now: datetime) -> str:
    """How long ago, without the word (the column header says it); clock skew reads as 0s."""
    if value is None:
        return "-"
    return span(max(0.0, (now - value).total_seconds()))


def took(value: int | None) -> str:
    return duration_ms(value)


def rate(ok: int, runs: int) -> Text:
    """Success rate and how many runs it is of: '88% of 8' (one column saves a lot of room)."""
    if not runs:
        return Text("-", style="dim")
    share = ok / runs
    style = "green" if share >= 0.99 else "yellow" if share >= 0.9 else "red"
    # 999 of 1000 is not "100%": a failure must never round away.
    percent = min(round(share * 100), 99) if ok < runs else 100
    text = Text(f"{percent}%", style=style)
    text.append(f" of {runs:,}", style="dim")
    return text


def sparkline(durations: Sequence[int]) -> Text:
    """One bar a run, oldest left; scaled from 0 so that steady timings look steady."""
    if not durations:
        return Text("")
    top = max(durations) or 1
    bars = "".join(BARS[min(len(BARS) - 1, value * len(BARS) // (top + 1))] for value in durations)
    return Text(bars, style="cyan")


def stamp(value: datetime | None) -> str:
    """A compact UTC time for table cells: '01-31 09:00:00'."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%m-%d %H:%M:%S")


def clock(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%H:%M:%S")
