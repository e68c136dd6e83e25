"""A chart of one job's runs: time across, duration up, one dot a run, coloured by outcome.

Durations go up on a log scale: a 30 s timeout among 200 ms runs would squash every
ordinary run into the bottom row of a linear one.

Drawn with Rich text in the widget's own size, so it is exact (every run lands in the
cell of its slot and duration; a cell holding several shows the worst of them) and reads
at 80x24. Pure: :func:`chart_lines` is a function of the points and the size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from rich.text import Text
from textual.widget import Widget

from scheduler.store.report import RunPoint
from scheduler.views.text import duration_ms

DOT = "•"
# Worse outcomes win a shared cell: a failure must not hide behind a success.
OUTCOMES = (("ok", "green"), ("failed", "bold red"), ("timeout", "bold magenta"))
RANK = {status: rank for rank, (status, _) in enumerate(OUTCOMES)}
STYLE = dict(OUTCOMES)
AXIS = 7  # the y labels ("12.3s") and the axis line


def chart_lines(
    points: Sequence[RunPoint], since: datetime, until: datetime, width: int, height: int,
) -> list[Text]:
    """``height`` lines of ``width`` cells: the plot, the time axis and the legend."""
    plot_w, plot_h = max(width - AXIS, 4), max(height - 2, 2)
    top = max((point.duration_ms for point in points), default=0)
    scale = math.log1p(top) or 1.0

    def height_of(value: int) -> int:
        return int(math.log1p(max(value, 0)) / scale * (plot_h - 1))

    def value_at(row: int) -> int:
        return int(math.expm1(row / (plot_h - 1) * scale))
    cells: dict[tuple[int, int], str] = {}
    span = (until - since).total_seconds() or 1
    for point in points:
        x = int((point.scheduled_at - since).total_seconds() / span * plot_w)
        y = height_of(point.duration_ms)
        key = (min(max(x, 0), plot_w - 1), min(y, plot_h - 1))
        seen = cells.get(key)
        if seen is None or RANK.get(point.status, 0) > RANK.get(seen, 0):
            cells[key] = point.status
    lines: list[Text] = []
    for row in range(plot_h - 1, -1, -1):
        label = ""
        if row == plot_h - 1:
            label = duration_ms(top) if points else ""
        elif row == 0:
            label = "0"
        elif row in ((plot_h - 1) // 3, 2 * (plot_h - 1) // 3) and points:
            label = duration_ms(value_at(row))
        line = Text(f"{label:>{AXIS - 1}}│", style="dim")
        for column in range(plot_w):
            status = cells.get((column, row))
            if status is None:
                line.append(" ")
            else:
                line.append(DOT, style=STYLE.get(status, ""))
        lines.append(line)
    hours = (until - since).total_seconds() / 3600
    left, middle = f"-{hours:g}h", f"-{hours / 2:g}h"
    axis = Text(" " * (AXIS - 1) + "└", style="dim")
    ticks = [" "] * plot_w
    for position, word in ((0, left), (plot_w // 2 - len(middle) // 2, middle),
                           (plot_w - 3, "now")):
        for offset, char in enumerate(word):
            if 0 <= position + offset < plot_w:
                ticks[position + offset] = char
    axis.append("".join(ticks), style="dim")
    lines.append(axis)
    legend = Text(" " * AXIS)
    for status, style in OUTCOMES:
        legend.append(DOT, style=style)
        legend.append(f" {status}  ")
    legend.append(f"{len(points):,} runs" if points else "no runs in the last day", style="dim")
    lines.append(legend)
    return lines


class RunChart(Widget):
    DEFAULT_CSS = "RunChart { height: 1fr; min-height: 6; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._points: tuple[RunPoint, ...] = ()
        self._since: datetime | None = None
        self._until: datetime | None = None

    def show(self, points: Sequence[RunPoint], since: datetime, until: datetime) -> None:
        self._points, self._since, self._until = tuple(points), since, until
        self.refresh()

    def render(self) -> Text:
        if self._since is None or self._until is None:
            return Text("")
        lines = chart_lines(self._points, self._since, self._until, self.size.width,
                            self.size.height)
        return Text("\n").join(lines)
