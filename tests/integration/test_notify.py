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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
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


# -- the unit under a real systemd ---------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = Path("/lib/systemd/systemd")
BOOT = """#!/bin/sh
mount --make-rprivate /
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /etc/systemd/system
mount -t tmpfs tmpfs /var/lib
cp {dir}/mstest.target {dir}/mirror-supervisor.service /etc/systemd/system/
exec {systemd} --system --unit=mstest.target
"""


class PrivateSystemd:
    """systemd as PID 1 of a private PID and mount namespace, running our unit file (with
    ExecStart pointed at this checkout, WatchdogSec=2, a log file, and the paths of its
    hardening pointed at the test's directory; the rest of the hardening stays as shipped)."""

    def __init__(self, directory: Path, config: Path, log: Path) -> None:
        unit = (ROOT / "scripts/systemd/mirror-supervisor.service").read_text()
        assert "Type=notify" in unit and "WatchdogSec=" in unit
        lines = []
        for line in unit.splitlines():
            if line.startswith("ExecStart="):
                line = (f"ExecStart={sys.executable} -m mirror_supervisor run --config {config} "
                        "--state-dir /run/mirror-supervisor")
            elif line.startswith("WatchdogSec="):
                line = "WatchdogSec=2"
            elif line.startswith(("User=", "Group=")):
                continue  # as root here: the unprivileged setup is tests/faults/test_privilege.py's
            elif line.startswith("ReadWritePaths="):
                line = "ReadWritePaths=/tmp"  # the test's database, mirror dir, log; ffmpeg's inputs
            elif line.startswith("PrivateTmp="):
                line = "PrivateTmp=no"  # the test's files live under /tmp
            elif line.startswith("ProtectHome="):
                line = "ProtectHome=read-only"  # the test's Python may live under /root (pyenv)
            lines.append(line)
            if line == "[Unit]":
                lines.append("DefaultDependencies=no")
            if line == "[Service]":
                lines += [f"StandardOutput=append:{log}", "StandardError=inherit", f"WorkingDirectory={ROOT}"]
        (directory / "mirror-supervisor.service").write_text("\n".join(lines) + "\n")
        (directory / "mstest.target").write_text("[Unit]\nDefaultDependencies=no\nWants=mirror-supervisor.service\n")
        boot = directory / "boot.sh"
        boot.write_text(BOOT.format(dir=directory, systemd=SYSTEMD))
        boot.chmod(0o755)
        self.proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount", "--mount-proc", str(boot)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid1: int | None = None

    def boot(self) -> bool:
        def systemd_pid():
            children = psutil.Process(self.proc.pid).children()
            return children[0].pid if children and children[0].name() == "systemd" else None

        try:
            self.pid1 = procs.wait_for("systemd as PID 1", systemd_pid, 15)
            procs.wait_for("systemctl answering", lambda: self.run("systemctl", "is-system-running").stdout.strip(), 15)
        except (AssertionError, TimeoutError, psutil.Error):
            return False
        return True

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        assert self.pid1 is not None
        return subprocess.run(["nsenter", "-t", str(self.pid1), "-p", "-m", *argv],
                              capture_output=True, text=True, timeout=60)

    def show(self) -> dict[str, str]:
        out = self.run("systemctl", "show", "mirror-supervisor", "--no-pager",
                       "-p", "Type,ActiveState,SubState,StatusText,NRestarts,MainPID,WatchdogUSec").stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def close(self) -> None:
        if self.pid1 is not None:
            try:
                os.kill(self.pid1, signal.SIGKILL)  # the namespace's init: everything in it dies
            except ProcessLookupError:
                pass
        self.proc.kill()
        self.proc.wait(timeout=10)


def test_the_unit_runs_under_systemd_as_pid_1(rtsp, nvr, mirror_dir, tmp_path):
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("nsenter") is None or not SYSTEMD.exists():
        pytest.skip("needs root, unshare, nsenter and systemd")
    nvr.add_mirrored("cam", rtsp.url("/live"))
    config, log = tmp_path / "config", tmp_path / "service.log"
    config.write_text(f"MIRROR_SUPERVISOR_DB={nvr.path}\nMIRROR_SUPERVISOR_MIRROR_DIR={mirror_dir}\n"
                      "MIRROR_SUPERVISOR_POLL_INTERVAL=5\n")
    systemd = PrivateSystemd(tmp_path, config, log)
    try:
        if not systemd.boot():
            pytest.skip("systemd did not start as PID 1 of a private PID + mount namespace here")
        try:
            up = procs.wait_for("the unit active and recording", lambda: (s := systemd.show()).get("ActiveState") == "active"
                                and s.get("StatusText") == "recording 1/1 cameras" and s, 60)
        except AssertionError:
            state = systemd.run("systemctl", "status", "mirror-supervisor", "--no-pager", "-l").stdout
            raise AssertionError(f"{state}\n{log.read_text() if log.exists() else '(no log)'}"[-4000:]) from None
        assert up["Type"] == "notify" and up["WatchdogUSec"] == "2s" and up["NRestarts"] == "0"
        # The camera cache lands in the unit's StateDirectory= (a tmpfs here), the service user's alone.
        names = systemd.run("ls", "/var/lib/mirror-supervisor").stdout.split()
        modes = systemd.run("stat", "-c", "%a", "/var/lib/mirror-supervisor",
                            *[f"/var/lib/mirror-supervisor/{name}" for name in names]).stdout.split()
        assert len(names) == 1 and names[0].startswith("cameras-") and modes == ["700", "600"], (names, modes)

        assert systemd.run("systemctl", "reload", "mirror-supervisor").returncode == 0
        procs.wait_for("the reload logged", lambda: "reload requested (SIGHUP)" in log.read_text(), 30)
        procs.wait_for("active after the reload", lambda: systemd.show().get("SubState") == "running", 30)
        time.sleep(5)  # 2.5 watchdog intervals: a healthy master is not killed
        assert systemd.show()["NRestarts"] == "0" and systemd.show()["MainPID"] == up["MainPID"]

        # a master that stops answering is ended by the watchdog and restarted
        systemd.run("kill", "-STOP", up["MainPID"])
        again = procs.wait_for("restarted by the watchdog", lambda: (s := systemd.show()).get("NRestarts") == "1"
                               and s.get("StatusText") == "recording 1/1 cameras" and s, 60)
        assert again["MainPID"] != up["MainPID"]

        assert systemd.run("systemctl", "stop", "mirror-supervisor").returncode == 0
        assert systemd.show()["ActiveState"] == "inactive"
        assert procs.ffmpegs_writing(mirror_dir) == []
    finally:
        systemd.close()
