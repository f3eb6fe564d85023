"""systemd's readiness and watchdog protocol (``Type=notify``, ``WatchdogSec=``), in a few lines.

systemd hands a service the path of a datagram socket in ``NOTIFY_SOCKET`` (``@name`` is an
abstract socket); the service sends newline-separated ``KEY=VALUE`` lines to it. The master sends:

- ``READY=1`` (with ``STATUS=``) after its first reconcile;
- ``RELOADING=1`` with ``MONOTONIC_USEC=`` when it starts a SIGHUP reload, ``READY=1`` after it;
- ``STOPPING=1`` when it starts shutting down;
- ``WATCHDOG=1`` every half ``WATCHDOG_USEC``, from the main loop, and only after a pass that
  completed without an unexpected error: a master that is blocked, or fails on every pass, stops
  sending and systemd's watchdog ends it;
- ``STATUS=recording 12/14 cameras`` whenever that one-line summary changes.

Without ``NOTIFY_SOCKET`` nothing is sent and nothing else changes (the init-script path). A send
never blocks (``MSG_DONTWAIT``) and never raises: systemd not listening must not stop recording.
The variables are removed from the environment, so workers and ffmpeg do not inherit them.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping, MutableMapping

from ..plumbing.logs import LOGGER_NAME

ENV_NAMES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
RESEND_AFTER = 1.0  # a WATCHDOG=1 that could not be sent: tried again after this long


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock systemd compares ``MONOTONIC_USEC`` with."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def summary(wanted: int, recording: int, db_error: bool = False, volume_hung: bool = False,
            disabled: bool = False) -> str:
    """The one-line ``STATUS=``: ``recording 12/14 cameras`` plus any trouble."""
    if disabled:
        return "recorder disabled: not recording"
    text = f"recording {recording}/{wanted} cameras"
    if db_error:
        text += ", database unreadable"
    if volume_hung:
        text += ", mirror volume not responding"
    return text


class Notifier:
    """The sending side; a no-op when ``NOTIFY_SOCKET`` was not set."""

    def __init__(self, environ: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        if environ is None:
            environ = _take(os.environ)
        pid = os.getpid() if pid is None else pid
        path = environ.get("NOTIFY_SOCKET") or ""
        self.address: str | bytes | None = None
        if path.startswith("@"):
            self.address = b"\0" + path[1:].encode()
        elif path.startswith("/"):
            self.address = path
        self.watchdog_interval: float | None = None  # seconds between two WATCHDOG=1: half the limit
        usec, for_pid = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
        if self.address is not None and usec.isdigit() and int(usec) > 0 and (not for_pid or for_pid == str(pid)):
            self.watchdog_interval = int(usec) / 2e6
        self.next_beat = float("inf") if self.watchdog_interval is None else 0.0
        self._status: str | None = None
        self._ready = False  # STATUS= goes out with the first READY=1, then on every change
        self._failed = False
        self.log = logging.getLogger(LOGGER_NAME)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """One datagram of ``lines``; False when it could not be sent (never raises, never blocks)."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(lines).encode(), socket.MSG_DONTWAIT, self.address)
        except OSError as exc:
            if not self._failed:  # once: a service manager that went away is not news every beat
                self.log.warning("cannot notify the service manager at NOTIFY_SOCKET: %s", exc)
            self._failed = True
            return False
        self._failed = False
        return True

    def ready(self) -> None:
        self._ready = True
        self.send("READY=1", *([f"STATUS={self._status}"] if self._status else []))

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def status(self, text: str) -> None:
        """``STATUS=`` when the summary changed."""
        if text != self._status:
            self._status = text
            if self._ready:
                self.send(f"STATUS={text}")

    def beat(self, now: float, healthy: bool) -> None:
        """At the end of a main-loop pass: ``WATCHDOG=1`` when one is due and the pass was healthy.

        An unhealthy pass leaves the due time where it was: the beat stays due, and the next
        healthy pass sends it at once. (Moving it on would send the next one a whole interval
        after the failure, past ``WatchdogSec``: one error would get the master aborted.) Only a
        master that fails pass after pass, or blocks, goes without beats.
        """
        if self.watchdog_interval is None or now < self.next_beat or not healthy:
            return
        # A datagram that did not go out (EAGAIN: systemd's socket is full) is tried again soon,
        # not an interval later: that, too, would be past WatchdogSec.
        sent = self.send("WATCHDOG=1")
        self.next_beat = now + (self.watchdog_interval if sent else min(RESEND_AFTER, self.watchdog_interval))


def _take(environ: MutableMapping[str, str]) -> dict[str, str]:
    """The protocol's variables, removed from ``environ`` (children must not inherit them)."""
    return {name: environ.pop(name) for name in ENV_NAMES if name in environ}
