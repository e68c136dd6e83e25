"""The audit log (key `l`): who asked for what, what each reload changed, newest first.

Enter on an event opens its details (:class:`EventDetailsScreen`: who, when, the
summary and the detail object, a reload's diff); Esc goes back one step, to the
jobs in the end. Polls like the other screens: a thread worker reads, the screen
renders, a one-shot timer re-arms.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

from scheduler.errors import CronhostError
from scheduler.store import Store
from scheduler.store.audit import EventRow
from scheduler.views.text import relative, when
from tui.widgets.events_table import EventsTable

REFRESH_SECONDS = 2.0
SHOWN_EVENTS = 200


@dataclass(frozen=True)
class EventsSnapshot:
    events: tuple[EventRow, ...]
    problem: str | None = None


class EventsReady(Message):
    def __init__(self, snapshot: EventsSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


def fetch_events(store: Store, limit: int = SHOWN_EVENTS) -> EventsSnapshot:
    """In a thread worker: the newest events, or why the store cannot say."""
    try:
        return EventsSnapshot(tuple(store.events(limit=limit)))
    except (CronhostError, SQLAlchemyError) as exc:
        text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return EventsSnapshot((), text[0] if text else type(exc).__name__)


class AuditLogScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "Back to jobs"),
        Binding("ctrl+r,f5", "refresh", "Refresh"),
    ]

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.store = store
        self.clock = clock
        self.snapshot: EventsSnapshot | None = None
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="log-title")
        yield EventsTable(id="events")
        yield Footer()

    @property
    def table(self) -> EventsTable:
        return self.query_one(EventsTable)

    def on_mount(self) -> None:
        self.table.border_title = "events, newest first"
        self.query_one("#log-title", Static).update(self._title())
        self.table.focus()
        self.action_refresh()

    def on_screen_resume(self) -> None:
        self.table.focus()  # back from an event's details: the arrows move in the log

    def action_refresh(self) -> None:
        self.fetch()

    @work(thread=True, exit_on_error=False, exclusive=True, group="audit-log")
    def fetch(self) -> None:
        snapshot = fetch_events(self.store)
        if not get_current_worker().is_cancelled:
            self.post_message(EventsReady(snapshot))

    def on_events_ready(self, message: EventsReady) -> None:
        self.snapshot = message.snapshot
        if message.snapshot.problem is None:
            self.table.show(message.snapshot.events)
            count = len(message.snapshot.events)
            self.table.border_title = f"{count:,} event{'s' if count != 1 else ''}, newest first"
        self.query_one("#log-title", Static).update(self._title())
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(REFRESH_SECONDS, self.action_refresh)

    def _title(self) -> Text:
        text = Text("audit log", style="bold")
        text.append("  who asked for what, what each reload changed", style="dim")
        snapshot = self.snapshot
        if snapshot is not None and snapshot.problem:
            text.append(f"  cannot read the store: {snapshot.problem}", style="red")
        elif snapshot is not None and not snapshot.events:
            text.append("  no events yet", style="dim")
        text.no_wrap, text.overflow = True, "ellipsis"
        return text

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        rows = self.snapshot.events if self.snapshot is not None else ()
        found = next((row for row in rows if str(row.id) == event.row_key.value), None)
        if found is not None:
            self.app.push_screen(EventDetailsScreen(found, self.clock))


class EventDetailsScreen(Screen[None]):
    BINDINGS = [Binding("escape,backspace", "app.pop_screen", "Back")]

    def __init__(self, event: EventRow, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.event = event
        self.clock = clock

    def compose(self) -> ComposeResult:
        yield Static(id="event-title")
        with VerticalScroll(id="event-body"):
            yield Static(id="event-facts")
            yield Static(id="event-detail")
        yield Footer()

    def on_mount(self) -> None:
        event = self.event
        title = Text(f"event {event.id} · ", style="bold")
        title.append(event.kind, style="bold")
        title.no_wrap, title.overflow = True, "ellipsis"
        self.query_one("#event-title", Static).update(title)
        self.query_one("#event-facts", Static).update(facts(event, self.clock()))
        self.query_one("#event-detail", Static).update(detail_text(event))


def facts(event: EventRow, now: datetime) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for name, value in (
        ("when", f"{when(event.at)} ({relative(event.at, now)})"),
        ("who", event.who),
        ("job", event.job_id or "-"),
        ("daemon", event.daemon_id or "-"),
        ("summary", Text(event.summary)),  # plain text: a summary may hold brackets
    ):
        grid.add_row(name, value)
    return grid


def detail_text(event: EventRow) -> Text:
    text = Text("\ndetail\n", style="bold underline")
    if not event.detail:
        text.append("-", style="dim")
        return text
    text.append(json.dumps(event.detail, indent=2, ensure_ascii=False))
    return text
