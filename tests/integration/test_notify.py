"""systemd's notify protocol from a real master (README, "systemd"), against a real socket.

The test plays systemd: it binds an AF_UNIX datagram socket, hands its path to the master in
``NOTIFY_SOCKET`` with a watchdog interval, and records every datagram from start through SIGHUP
to SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import pytest
from support import procs


class FakeServiceManager:
    """The receiving end of NOTIFY_SOCKET: every datagram, in order, as a list of lines."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="notify-", dir="/tmp"))  # socket paths are short
        self.path = self.dir / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setblocking(False)
        self.messages: list[list[str]] = []

    def drain(self) -> list[list[str]]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode().split("\n"))
            except BlockingIOError:
                return self.messages

    def lifecycle(self) -> list[str]:
        """The state changes only (no STATUS=, no WATCHDOG=1), one word each."""
        words = []
        for lines in self.drain():
            words += [line.split("=")[0] for line in lines if line in ("READY=1", "RELOADING=1", "STOPPING=1")]
        return words

    def wait_for(self, lifecycle: list[str], timeout: float = 30) -> None:
        procs.wait_for(f"notify sequence {lifecycle}", lambda: self.lifecycle() == lifecycle, timeout)

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def manager():
    fake = FakeServiceManager()
    yield fake
    fake.close()


def test_ready_reloading_ready_stopping_with_watchdog_and_status(rtsp, nvr, supervisor, manager):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    sup = supervisor("--poll-interval", "600",
                     env={"NOTIFY_SOCKET": str(manager.path), "WATCHDOG_USEC": "1000000"})
    manager.wait_for(["READY"])
    ready = next(lines for lines in manager.messages if "READY=1" in lines)
    assert any(line.startswith("STATUS=recording ") and line.endswith("/1 cameras") for line in ready), ready
    procs.wait_for("STATUS=recording 1/1 cameras",
                   lambda: ["STATUS=recording 1/1 cameras"] in manager.drain(), 30)
    procs.wait_for("two WATCHDOG=1", lambda: manager.drain().count(["WATCHDOG=1"]) >= 2, 30)

    ffmpeg = sup.wait_one_each({"cam"})["cam"].ffmpeg_pids[0]
    environ = Path(f"/proc/{ffmpeg}/environ").read_bytes().split(b"\0")
    assert not any(item.startswith((b"NOTIFY_SOCKET=", b"WATCHDOG_")) for item in environ), \
        "ffmpeg must not inherit the protocol's variables"

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    sup.signal(signal.SIGHUP)
    manager.wait_for(["READY", "RELOADING", "READY"])
    reloading = next(lines for lines in manager.messages if "RELOADING=1" in lines)
    stamp = [int(line.split("=", 1)[1]) for line in reloading if line.startswith("MONOTONIC_USEC=")]
    assert len(stamp) == 1 and before <= stamp[0] <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    assert sup.stop() == 0
    assert manager.lifecycle() == ["READY", "RELOADING", "READY", "STOPPING"]
    for lines in manager.messages:  # nothing but the protocol's own words
        assert all(line in ("READY=1", "RELOADING=1", "STOPPING=1", "WATCHDOG=1") or
                   line.startswith(("STATUS=", "MONOTONIC_USEC=")) for line in lines), lines
    assert os.path.exists(manager.path)


def test_without_notify_socket_nothing_is_sent_and_the_master_runs(rtsp, nvr, supervisor, manager):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    sup = supervisor("--poll-interval", "600", env={"WATCHDOG_USEC": "1000000"})
    sup.wait_one_each({"cam"})
    sup.signal(signal.SIGHUP)
    sup.wait_log("reload requested")
    assert sup.stop() == 0
    assert manager.drain() == []
