"""What thread workers post back to the UI thread (they never touch widgets)."""

from __future__ import annotations

from textual.message import Message

from tui.commands import CommandReceipt
from tui.data import DashboardSnapshot


class SnapshotReady(Message):
    def __init__(self, snapshot: DashboardSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class SnapshotFailed(Message):
    """The fetch itself broke (a bug, not a store problem: those come in the snapshot)."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class CommandSent(Message):
    def __init__(self, receipt: CommandReceipt) -> None:
        super().__init__()
        self.receipt = receipt
