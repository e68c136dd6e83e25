"""How the dashboard writes values: pure functions, no app needed."""

from __future__ import annotations

from datetime import timedelta

from scheduler.views.text import one_line
from tests.test_tui_fixtures import NOW
from tui import format as fmt
from tui.data import StatusCounts, Summary
from tui.widgets.summary import describe


def test_sparkline_scales_from_zero_so_steady_timings_look_steady() -> None:
    assert fmt.sparkline([200, 210, 190]).plain == "███"
    assert fmt.sparkline([100, 800]).plain == "▁█"
    assert fmt.sparkline([0, 0]).plain == "▁▁"
    assert fmt.sparkline([]).plain == ""


def test_countdown_counts_down_and_says_due_when_the_daemon_is_behind() -> None:
    assert fmt.countdown(NOW + timedelta(seconds=42), NOW).plain == "42s"
    assert fmt.countdown(NOW + timedelta(minutes=3, seconds=5), NOW).plain == "3m05s"
    due = fmt.countdown(NOW - timedelta(seconds=12), NOW)
    assert due.plain == "due 12s" and due.style == "yellow"
    assert fmt.countdown(None, NOW).plain == "-"


def test_status_is_coloured_and_counts_slots_of_a_summary_row() -> None:
    assert fmt.status("failed").style == "bold red"
    assert fmt.status("missed", 1000).plain == "missed x1000"
    assert fmt.status(None).plain == "never"


def test_rate_rounds_down_never_up_to_100_percent() -> None:
    assert fmt.rate(999, 1000).plain == "99% of 1,000"
    assert fmt.rate(1000, 1000).plain == "100% of 1,000"
    assert fmt.rate(7, 8).plain == "88% of 8"
    assert fmt.rate(0, 0).plain == "-"


def test_one_line_flattens_and_shortens_messages() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert one_line("x" * 200, 10) == "x" * 9 + "…"
    assert one_line(None) == ""


def test_summary_lists_only_what_went_wrong() -> None:
    quiet = Summary(StatusCounts(runs=60, ok=60), StatusCounts(runs=1440, ok=1438, failed=2,
                                                                missed=1))
    assert describe(quiet).plain == (
        "last hour: 60 runs, all ok  │  last 24 h: 1,440 runs, 2 failed, 1 missed")
    assert describe(Summary()).plain == "last hour: 0 runs  │  last 24 h: 0 runs"
    one = StatusCounts(runs=1, ok=1)
    assert describe(Summary(last_hour=one, last_day=one)).plain.startswith("last hour: 1 run, all ok")
