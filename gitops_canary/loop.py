"""The long-running loop: ticks on a ``schedule`` job, stops cleanly on SIGTERM/SIGINT.

A signal never interrupts a tick: it sets a flag, the tick in flight finishes (so no commit is
left half-written), and the loop returns. A tick that fails as a whole (the repository is
unreachable) is logged and retried with backoff; the process keeps running, because the next
tick may well succeed.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

import schedule

from gitops_canary.reconciler import Reconciler, TickReport
from gitops_canary.telemetry import HealthState

log = logging.getLogger("gitops_canary.loop")


class Loop:
    def __init__(
        self,
        reconciler: Reconciler,
        health: HealthState,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_backoff: float = 60.0,
    ) -> None:
        self._reconciler = reconciler
        self._health = health
        self._clock = clock
        self._stop = threading.Event()
        self._failures = 0
        self._max_backoff = max_backoff
        self._scheduler = schedule.Scheduler()

    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info(
                "Received %s: finishing the tick in flight, then stopping.",
                signal.Signals(signum).name,
            )
            self._stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run_once(self) -> TickReport | None:
        try:
            report = self._reconciler.tick()
        except Exception as err:
            self._failures += 1
            self._health.set(False, f"last tick failed: {err}")
            log.error("Tick failed: %s", err)
            return None
        self._failures = 0
        self._health.set(True)
        return report

    def run(self) -> None:
        """Tick at every poll interval (a ``schedule`` job), and sooner when a canary is due."""
        poll = self._reconciler.config.timing.poll_seconds()
        # schedule counts whole seconds; a due canary still ticks sooner (see below).
        self._scheduler.every(max(1, math.ceil(poll))).seconds.do(self._tick_if_due)
        self.run_once()
        while not self._stop.is_set():
            now = self._clock()
            if not self._failures and self._reconciler.next_wake(now) <= now:
                self.run_once()
                continue
            self._scheduler.run_pending()
            self._stop.wait(self._sleep_seconds())

    def _tick_if_due(self) -> None:
        if not self._stop.is_set():
            self.run_once()

    def _sleep_seconds(self) -> float:
        if self._failures:
            return min(self._max_backoff, 2.0 ** min(self._failures, 6))
        now = self._clock()
        until_due = (self._reconciler.next_wake(now) - now).total_seconds()
        idle = self._scheduler.idle_seconds
        candidates = [until_due] + ([idle] if idle is not None else [])
        return max(0.05, min(candidates))
