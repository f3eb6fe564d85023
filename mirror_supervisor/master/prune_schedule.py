"""When the master runs a retention pass, and how long one may take.

The pass itself (:mod:`prune`) runs in a short-lived child so that file I/O never delays the
master's loop. One pass runs at a time, so a pass that never ends (stuck in the kernel on a hung
volume) would end retention for good, silently, and the mirror would fill up and stop recording.
Hence a deadline: this object says when it has passed, once per pass; the master names the child
and SIGKILLs it, and the next pass starts as soon as the old one is reaped.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any

from ..plumbing import lifeline

PRUNE_FIRST_DELAY = 30.0  # the first pass soon after start, not a whole interval later
# A pass over 100 cameras x 1,440 files takes about 1.5 s: one still running after half an hour is
# stuck in the kernel (a hung volume), not slow.
PRUNE_TIMEOUT = 1800.0
NEVER = float("inf")


class PruneSchedule:
    """The master's pruner child: when the next pass is due, which pid runs one, until when.

    The interval is passed in on each call: a reload may change it, and 0 turns passes off.
    """

    def __init__(self, interval: float, now: float) -> None:
        self.next_at = now + min(interval, PRUNE_FIRST_DELAY)
        self.pid: int | None = None
        self.deadline = NEVER

    def tick(self, now: float, interval: float, system: Any, log: logging.LoggerAdapter, child: Callable[[], int]) -> None:
        """Every pass: a pass past its deadline is stuck, named and SIGKILLed (a hard-mounted
        share's wait is killable); a due one is forked (``system``: the master's fork and kill)."""
        if (stuck := self.pid) is not None and self.overdue(now):
            log.error("prune pass pid=%d still running after %.0fs (%s); killing it: nothing is pruned "
                      "until a pass completes", stuck, PRUNE_TIMEOUT, lifeline.describe(stuck))
            system.kill(stuck, signal.SIGKILL)
        if not self.due(now, interval):
            return
        pid = None
        try:
            pid = system.fork(child)
        except OSError as exc:
            log.error("cannot fork the pruner: %s", exc)
        self.started(pid, now, interval)

    def due(self, now: float, interval: float) -> bool:
        return interval > 0 and self.pid is None and now >= self.next_at

    def started(self, pid: int | None, now: float, interval: float) -> None:
        """A pass was forked (``pid``), or could not be (None): either way the next is an
        interval away."""
        self.next_at = now + interval
        self.pid = pid
        self.deadline = NEVER if pid is None else now + PRUNE_TIMEOUT

    def overdue(self, now: float) -> bool:
        """True once when the running pass outlives its deadline."""
        if self.pid is None or now < self.deadline:
            return False
        self.deadline = NEVER
        return True

    def ended(self) -> None:
        self.pid, self.deadline = None, NEVER

    def next_moment(self, interval: float) -> float | None:
        """The moment the master's loop must wake up for: the next pass, or the running one's deadline."""
        if self.pid is None:
            return self.next_at if interval > 0 else None
        return self.deadline if self.deadline < NEVER else None
