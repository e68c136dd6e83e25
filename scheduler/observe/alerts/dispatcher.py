"""Turns slot events into alerts and delivers them in the background.

:meth:`AlertDispatcher.observe` is an event-bus listener: it decides on the
event loop (cheap, no I/O) and hands each alert to a task of its own, so a slow
or dead receiver never delays a run. A delivery that fails is retried a bounded
number of times with exponential backoff and jitter, then logged and dropped:
an alert is never worth blocking, failing or crashing the scheduler for.

An ``auto_disabled`` alert (``auto_disable_after``) also pauses its job, once however
many channels decided it: ``auto_disable(job_id, reason)`` (the store's pause and a
`pause` command row the daemon carries out like any other) runs in a thread, since
observers cannot reach the engine and must not block the loop.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scheduler.config.alerts import ChannelSettings
from scheduler.logs import get_logger
from scheduler.observe.alerts.delivery import Channel, DeliveryError
from scheduler.observe.alerts.rules import Alert, AlertRules
from scheduler.run.events import SlotEvent

log = get_logger("alerts")

BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 60.0


@dataclass
class Route:
    """One configured channel: its settings, its rules (with their state) and its sender."""

    settings: ChannelSettings
    rules: AlertRules
    channel: Channel
    secret: str | None = None  # the value the channel was built with (a rotated one rebuilds it)


class AlertDispatcher:
    def __init__(
        self,
        routes: Sequence[Route] = (),
        *,
        backoff_initial: float = BACKOFF_INITIAL,
        auto_disable: Callable[[str, str], None] | None = None,
    ) -> None:
        self.routes = list(routes)
        self._auto_disable = auto_disable
        self._disabling: set[asyncio.Task[None]] = set()
        self._disabled: set[tuple[str, int]] = set()  # (job, streak) already paused
        self._backoff_initial = backoff_initial
        self._tasks: dict[asyncio.Task[None], Route] = {}  # deliveries in flight
        self._retiring: set[asyncio.Task[None]] = set()  # channels closing after a reload
        self.delivered = 0
        self.failed = 0

    def replace_routes(self, routes: Sequence[Route]) -> None:
        """Swap in new routes (after a reload); channels no longer used are closed once
        their deliveries in flight are done."""
        old, self.routes = self.routes, list(routes)
        for route in old:
            if all(route.channel is not new.channel for new in self.routes):
                pending = [task for task, owner in self._tasks.items() if owner is route]
                retire = asyncio.get_running_loop().create_task(
                    self._close_after(route.channel, pending)
                )
                self._retiring.add(retire)
                retire.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _close_after(channel: Channel, pending: list[asyncio.Task[None]]) -> None:
        if pending:
            await asyncio.wait(pending)
        await channel.aclose()

    def observe(self, event: SlotEvent) -> None:
        for route in self.routes:
            alert = route.rules.decide(event)
            if alert is not None:
                if alert.kind == "auto_disabled":
                    self.disable(alert)
                self.spawn(route, alert)

    def disable(self, alert: Alert) -> None:
        """Pause the alert's job, once per streak whichever channels decided it."""
        key = (alert.job_id, alert.consecutive_failures)
        if key in self._disabled or self._auto_disable is None or alert.reason is None:
            return
        self._disabled.add(key)
        task = asyncio.get_running_loop().create_task(
            self._pause(alert.job_id, alert.reason), name=f"auto-disable-{alert.job_id}"
        )
        self._disabling.add(task)
        task.add_done_callback(self._disabling.discard)

    async def _pause(self, job_id: str, reason: str) -> None:
        assert self._auto_disable is not None
        try:
            await asyncio.to_thread(self._auto_disable, job_id, reason)
        except Exception as exc:  # noqa: BLE001 - the store may be down; the alert still goes
            self._disabled = {key for key in self._disabled if key[0] != job_id}
            log.error("could not auto-disable the job",
                      extra={"action": "job.auto_disable_failed", "job": job_id,
                             "error": f"{type(exc).__name__}: {exc}"})
            return
        log.warning("job auto-disabled", extra={"action": "job.auto_disabled", "job": job_id,
                                                "reason": reason})

    def spawn(self, route: Route, alert: Alert) -> None:
        task = asyncio.get_running_loop().create_task(
            self._deliver(route, alert), name=f"alert-{alert.job_id}-{alert.kind}"
        )
        self._tasks[task] = route
        task.add_done_callback(lambda done: self._tasks.pop(done, None))

    async def _deliver(self, route: Route, alert: Alert) -> None:
        fields = {"channel": route.channel.name, "job": alert.job_id, "kind": alert.kind,
                  "run_id": alert.event.run_id}
        attempts = route.settings.retries + 1
        wait = self._backoff_initial
        for attempt in range(1, attempts + 1):
            try:
                await route.channel.send(alert)
            except DeliveryError as exc:
                last = attempt == attempts or exc.permanent
                log.warning(
                    "alert not delivered" + ("" if last else "; retrying"),
                    extra={"action": "alert.failed" if last else "alert.retry", **fields,
                           "attempt": attempt, "error": str(exc),
                           "retry_in_s": None if last else round(wait, 2)},
                )
                if last:
                    self.failed += 1
                    return
                # Jitter keeps channels that failed together from retrying together.
                await asyncio.sleep(wait * random.uniform(0.8, 1.2))  # noqa: S311
                wait = min(wait * 2, BACKOFF_MAX)
            except Exception:  # noqa: BLE001 - a bug in a channel must not reach the loop
                log.exception("alert channel crashed", extra={"action": "alert.failed", **fields})
                self.failed += 1
                return
            else:
                self.delivered += 1
                log.info("alert sent", extra={"action": "alert.sent", **fields,
                                              "attempt": attempt, "suppressed": alert.suppressed})
                return

    async def drain(self, timeout: float) -> None:
        """Give alerts in flight (e.g. for runs abandoned at shutdown) ``timeout`` s, then cancel."""
        if self._disabling:
            await asyncio.wait(list(self._disabling), timeout=timeout)
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        for task in tasks:
            if not task.done():
                task.cancel()
                log.warning("alert dropped at shutdown", extra={"action": "alert.failed",
                                                                "task": task.get_name()})
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self, timeout: float = 5.0) -> None:
        await self.drain(timeout)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        for route in self.routes:
            await route.channel.aclose()
