"""Everything recorded about one run: timings, its attempts one by one, error, message,
data, response excerpt.

The response excerpt was redacted by the daemon before it was stored; it is shown
as plain text (never as markup), so a body full of brackets stays what it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from rich.table import Table
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from scheduler.store import RunRow, Store
from scheduler.store.attempts import AttemptRow
from scheduler.views.text import duration_ms, relative, when
from tui import format as fmt
from tui.commands import send_command

POLL_SECONDS = 1.0


class RunUpdated(Message):
    def __init__(self, run: RunRow, attempts: list[AttemptRow]) -> None:
        super().__init__()
        self.run = run
        self.attempts = attempts


class RunDetailsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "Back"),
        Binding("t", "rerun", "Re-run this slot"),
    ]

    # A slot worth re-running by hand: it did not end well, and it is one slot.
    RERUNNABLE = ("abandoned", "failed", "timeout", "missed")

    def __init__(self, run: RunRow, store: Store, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.run = run
        self.store = store
        self.clock = clock
        self.attempts: list[AttemptRow] | None = None  # None until read from the store

    def compose(self) -> ComposeResult:
        yield Static(id="run-title")
        with VerticalScroll(id="run-body"):
            yield Static(id="run-facts")
            yield Static(id="run-attempts")
            yield Static(id="run-text")
        yield Footer()

    def on_mount(self) -> None:
        self.show(self.run)
        self.reload()  # the attempts are read in a worker, like every store read

    def on_resize(self, event: events.Resize) -> None:
        # The attempts table chooses its columns by width: draw it again for the new one.
        self.query_one("#run-attempts", Static).update(
            attempts_table(self.attempts, event.size.width))

    def show(self, run: RunRow) -> None:
        self.run = run
        self.query_one("#run-title", Static).update(title(run))
        self.query_one("#run-facts", Static).update(facts(run, self.clock()))
        self.query_one("#run-attempts", Static).update(
            attempts_table(self.attempts, self.app.size.width))
        self.query_one("#run-text", Static).update(texts(run))
        self.refresh_bindings()  # "re-run" depends on how the run ended

    @work(thread=True, exit_on_error=False, exclusive=True, group="run-details")
    def reload(self) -> None:
        run = self.store.run(self.run.id)
        attempts = self.store.run_attempts(self.run.id)
        if run is not None and not get_current_worker().is_cancelled:
            self.post_message(RunUpdated(run, attempts))

    def on_run_updated(self, message: RunUpdated) -> None:
        self.attempts = message.attempts
        self.show(message.run)
        if message.run.status in ("queued", "running"):
            # Still in flight: follow it (attempt by attempt) until it finishes.
            self.set_timer(POLL_SECONDS, self.reload)

    def action_rerun(self) -> None:
        # Not dimmed when it cannot go: a key that does nothing says why instead.
        refusal = _why_not_rerun(self.run)
        if refusal is None:
            self.rerun(self.run)
        else:
            self.notify(refusal, severity="warning", timeout=10)

    @work(thread=True, exit_on_error=False, group="commands")
    def rerun(self, run: RunRow) -> None:
        # The daemon sends the slot's own Idempotency-Key, so the endpoint can tell a
        # repeat from new work (the same as `cronhost trigger JOB --slot SLOT`).
        if self.store.ran_ok_under_key(run.job_id, run.idempotency_key, run.scheduled_at):
            self.app.call_from_thread(
                self.notify, _ran_ok(run, "a re-run of this slot ran ok"),
                severity="warning", timeout=10)
            return
        receipt = send_command(self.store, "trigger", run.job_id, self.clock(), run.scheduled_at)
        self.app.call_from_thread(
            self.notify, receipt.message, severity=receipt.severity,
            timeout=10 if receipt.severity != "information" else 4,
        )


def _why_not_rerun(run: RunRow) -> str | None:
    """None for a slot worth re-running by hand (it did not end well, and it is one slot)."""
    if run.status == "ok":
        return _ran_ok(run, "this slot ran ok")
    if run.status in ("queued", "running"):
        return f"run {run.id} is still {run.status}: nothing to re-run yet"
    if run.slot_count > 1:
        return (f"this row stands for {run.slot_count} slots; re-run one with "
                f"`cronhost trigger {run.job_id} --slot SLOT`")
    if run.status not in RunDetailsScreen.RERUNNABLE:
        return f"a {run.status} slot is not re-run from here"
    return None


def _ran_ok(run: RunRow, what: str) -> str:
    return (f"{what}; running it again repeats its work under the same Idempotency-Key: "
            f"`cronhost trigger {run.job_id} --slot {run.scheduled_at.isoformat()} --force`")


def title(run: RunRow) -> Text:
    text = Text()
    text.append(f"run {run.id} of ", style="bold")
    text.append(run.job_id, style="bold")
    text.append(" · ")
    text.append_text(fmt.status(run.status, run.slot_count))
    if run.trigger == "manual":
        text.append(" · triggered by hand", style="cyan")
    return text


def facts(run: RunRow, now: datetime) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    rows: list[tuple[str, str | Text]] = [
        ("slot", f"{when(run.scheduled_at)} ({relative(run.scheduled_at, now)})"),
        ("started", when(run.started_at)),
        ("finished", when(run.finished_at)),
        ("took", duration_ms(run.duration_ms)),
        ("late by", duration_ms(run.lateness_ms)),
        ("attempts", str(run.attempts)),
        ("HTTP status", str(run.http_status or "-")),
        ("idempotency key", run.idempotency_key),
    ]
    if run.slot_count > 1:
        rows.append(("slots", f"{run.slot_count} slots up to {when(run.slot_until)}"))
    for name, value in rows:
        grid.add_row(name, value)
    return grid


NARROW = 100  # below this many columns the attempts drop their request ids


def attempts_table(attempts: list[AttemptRow] | None, width: int = NARROW) -> Table | Text:
    """One line per attempt: when it was sent, what came back, why it failed.

    Below NARROW columns the request ids (36 characters each) are left out and the
    send time is shown as a time of day: with them, at 80 columns every other column
    was cut to its first letters.
    """
    if attempts is None:
        return Text("\nattempts: reading...", style="dim")
    if not attempts:
        return Text("\nattempts: none on record", style="dim")
    narrow = width < NARROW
    table = Table(title="attempts", title_justify="left", title_style="bold underline",
                  box=None, padding=(0, 1, 0, 0), pad_edge=False)
    headers = ["#", "sent at", "status", "took", "error kind", "Retry-After"]
    if not narrow:
        headers.append("request id")
    for header in headers:
        table.add_column(header, no_wrap=True, overflow="ellipsis",
                         style="bold" if header == "#" else "")
    for attempt in attempts:
        sent = (attempt.sent_at.strftime("%H:%M:%S.%f")[:-3] if narrow and attempt.sent_at
                else when(attempt.sent_at))
        cells: list[str | Text] = [
            str(attempt.attempt), sent, _attempt_status(attempt),
            duration_ms(attempt.duration_ms),
            Text(attempt.error_kind or "-", style="red" if attempt.error_kind else "dim"),
            duration_ms(attempt.retry_after_ms) if attempt.retry_after_ms is not None else "-",
        ]
        if not narrow:
            cells.append(attempt.request_id or "-")
        table.add_row(*cells)
    return table


def _attempt_status(attempt: AttemptRow) -> Text:
    if attempt.http_status is not None:
        ok = 200 <= attempt.http_status < 300 and attempt.error_kind is None
        return Text(f"HTTP {attempt.http_status}", style="green" if ok else "red")
    if attempt.finished_at is None:
        # Sent, and no end on record: still on the wire, or the daemon died meanwhile.
        return Text("sent, no answer", style="magenta")
    return Text("ok", style="green") if attempt.error_kind is None else Text("-", style="dim")


def texts(run: RunRow) -> Text:
    text = Text()
    for heading, body, style in (
        ("error", run.error, "red"),
        ("message", run.message, ""),
        ("data", _pretty_json(run.data), ""),
        ("response excerpt (redacted)", run.response_excerpt, "dim"),
    ):
        text.append(f"\n{heading}\n", style="bold underline")
        text.append(body if body else "-", style=style if body else "dim")
        text.append("\n")
    return text


def _pretty_json(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
    except ValueError:
        return value
