"""A long-lived helper process of the master that is forked again when it dies.

The metrics HTTP child, the peer watcher and the segment index writer each live as long as the
master and die with it (:func:`lifeline.become_helper`); the master reaps them, and forks another
after a back-off when one dies, so a helper that dies at once cannot make the master fork in a hot
loop. What that takes is the same for each, so it lives here once: the pid while one runs, when
the next may be forked, the back-off, and the log lines about it. The owner decides when it wants
one (:meth:`HelperChild.due`) and what it runs; the delay rule is the owner's too (the workers'
respawn back-off, ``worker/backoff.py``), so this knows nothing of cameras.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

Fork = Callable[[Callable[[], int]], int]


def exit_text(code: int) -> str:
    """An exit code as ``waitpid`` gave it (negative: a signal), for a log line."""
    return f"signal {-code}" if code < 0 else f"status {code}"


class HelperChild:
    """One helper's pid, start time and back-off; monotonic times throughout."""

    def __init__(self, what: str, delay_rule: Callable[[float, float], float], retry_after: float,
                 log: logging.LoggerAdapter) -> None:
        """``what`` names it in the log ("metrics server"); ``delay_rule(previous delay, seconds it
        lived)`` is the next back-off; ``retry_after`` follows a fork the kernel refused."""
        self.what = what
        self.delay_rule = delay_rule
        self.retry_after = retry_after
        self.log = log
        self.pid: int | None = None
        self.started = 0.0  # when the running one was forked (an owner may move it, see the peer watcher)
        self.at = 0.0  # the next may be forked from then on
        self.delay = 0.0

    def due(self, now: float) -> bool:
        return self.pid is None and now >= self.at

    def start(self, now: float, fork: Fork, main: Callable[[], int]) -> int | None:
        """Fork ``main``; a refused fork is logged and tried again after ``retry_after``."""
        self.started = now
        try:
            self.pid = fork(main)
        except OSError as exc:
            self.log.error("cannot fork the %s: %s", self.what, exc.strerror)
            self.at = now + self.retry_after
        return self.pid

    def reaped(self, pid: int, code: int, now: float) -> bool:
        """True when ``pid`` was this helper: the next one is due after the back-off."""
        if self.pid is None or pid != self.pid:
            return False
        self.pid = None
        self.delay = self.delay_rule(self.delay, now - self.started)
        self.at = now + self.delay
        self.log.warning("%s pid=%d exited (%s); starting another in %.0fs", self.what, pid, exit_text(code), self.delay)
        return True

    def next_deadline(self) -> float | None:
        """When the next may be forked, while none runs."""
        return self.at if self.pid is None else None

    def pids(self) -> set[int]:
        return {self.pid} if self.pid is not None else set()
