"""The header: is the daemon up, since when, which config it runs and whether a reload failed."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from scheduler.store import DaemonInfo
from scheduler.views.text import relative, span, when
from tui.data import DashboardSnapshot


class DaemonHeader(Static):
    def show(self, snapshot: DashboardSnapshot) -> None:
        self.update(describe(snapshot))


def describe(snapshot: DashboardSnapshot) -> Group:
    # Two lines that crop rather than wrap, so the tables keep their room on a small
    # terminal; a config error wraps, because every word of it matters.
    lines = [_daemon_line(snapshot), _config_line(snapshot)]
    nodes = _nodes_line(snapshot)
    if nodes is not None:
        lines.insert(1, nodes)
    for line in lines:
        line.no_wrap, line.overflow = True, "ellipsis"
    info = snapshot.daemon
    if info is not None and info.config_error:
        error = Text(f"config reload FAILED {relative(info.config_error_at, snapshot.taken_at)}: ",
                     style="bold red")
        error.append(" ".join(info.config_error.split()), style="red")
        error.append(" (the daemon keeps running the previous config)", style="dim")
        lines.append(error)
    return Group(*lines)


def _daemon_line(snapshot: DashboardSnapshot) -> Text:
    text = Text()
    info = snapshot.daemon
    now = snapshot.taken_at
    if info is None and snapshot.problem and not snapshot.transient:
        # An older or foreign schema hides the daemon row: "no daemon has run" would send
        # the operator looking for the wrong thing. The notice below says what is wrong.
        text.append("● the store cannot be read", style="bold white on red")
    elif info is None:
        text.append("● no daemon has run on this store yet", style="bold yellow")
    elif snapshot.daemon_up:
        # Most telling first: at 80 columns the line is cut at its end.
        text.append("● daemon up", style="bold green")
        text.append(f" {span((now - info.started_at).total_seconds())}")
        live = _jobs_now(snapshot)
        if live or info.status_line:
            text.append(f" · {live or info.status_line}")
        text.append(f" · pid {info.pid} on {info.hostname} · since {when(info.started_at)}",
                    style="dim")
    else:
        text.append("● daemon DOWN", style="bold white on red")
        text.append(" ")
        text.append(_down_reason(info, now), style="red")
    return text


def _jobs_now(snapshot: DashboardSnapshot) -> str | None:
    """What the jobs table shows, counted: the daemon's own status line is as old as its
    last heartbeat, and said "0 running" beside a row that said running."""
    if not snapshot.jobs:
        return None
    states = [job.status for job in snapshot.jobs]
    scheduled = sum(1 for state in states if state.enabled and not state.paused)
    running = sum(1 for state in states if state.last_status == "running")
    queued = sum(1 for state in states if state.last_status == "queued")
    return (f"{scheduled} jobs scheduled, {running} running"
            + (f", {queued} queued" if queued else ""))


def _nodes_line(snapshot: DashboardSnapshot) -> Text | None:
    """Several daemons on one PostgreSQL: each node and its role, the leader first.

    Only when there are two or more: a lone daemon is the daemon line above. The line
    crops with an ellipsis like the others, so it is kept short (no beat times: a node
    whose beats stop drops off the list).
    """
    if len(snapshot.nodes) < 2:
        return None
    line = Text("nodes ", style="dim")
    for index, node in enumerate(snapshot.nodes):
        if index:
            line.append(" · ", style="dim")
        line.append(node.role, style="bold green" if node.role == "leader" else "cyan")
        line.append(f" pid {node.pid} on {node.hostname}")
    return line


def _down_reason(info: DaemonInfo, now: datetime) -> str:
    if info.stopped_at is not None:
        return f"stopped {relative(info.stopped_at, now)} ({when(info.stopped_at)})"
    # No clean stop recorded and a stale heartbeat: crashed, killed, or the host died.
    return (f"no heartbeat for {span((now - info.last_beat_at).total_seconds())} "
            f"(last {when(info.last_beat_at)}): crashed or killed?")


def _config_line(snapshot: DashboardSnapshot) -> Text:
    info = snapshot.daemon
    line = Text(style="dim")
    line.append(f"config {info.config_path if info is not None else snapshot.config_path}")
    if info is not None:
        loaded = info.config_loaded_at
        line.append(f", loaded {relative(loaded, snapshot.taken_at)}" if loaded else
                    ", not loaded yet")
    line.append(f" · store {snapshot.store_url}")
    return line
