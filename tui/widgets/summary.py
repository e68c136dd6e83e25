"""One line of totals: what ran in the last hour and the last 24 h, and what went wrong."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.data import StatusCounts, Summary


class SummaryLine(Static):
    def show(self, summary: Summary) -> None:
        self.update(describe(summary))


def describe(summary: Summary) -> Text:
    text = Text()
    _window(text, "last hour", summary.last_hour)
    text.append("  │  ", style="dim")
    _window(text, "last 24 h", summary.last_day)
    return text


def _window(text: Text, label: str, counts: StatusCounts) -> None:
    text.append(f"{label}: ", style="bold")
    text.append(f"{counts.runs:,} run{'' if counts.runs == 1 else 's'}")
    # Only what went wrong is listed, so that the line fits 80 columns; nothing
    # listed reads as "all fine" and says so.
    problems = [
        (count, word, style)
        for count, word, style in (
            (counts.failed, "failed", "bold red"),
            (counts.missed, "missed", "yellow"),
            (counts.abandoned, "abandoned", "magenta"),
        )
        if count
    ]
    if not problems and counts.runs:
        text.append(", all ok", style="green")
    for count, word, style in problems:
        text.append(", ")
        text.append(f"{count:,} {word}", style=style)
