"""Built-in in-process callables that need nothing from outside."""

from __future__ import annotations

from jobs.python import CallContext


def noop(context: CallContext) -> str:
    """Does nothing and succeeds: for smoke tests and for checking a daemon end to end."""
    return f"noop {context.idempotency_key}"
