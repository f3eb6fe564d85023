"""The master sleeps while it waits, in every waiting situation it can be put in.

A deadline that the main loop computes but never acts on makes its timeout 0 on every pass: a
master at 100 % of a core, found three times so far (respawn remembered after the respawn, a
past respawn deadline while shutting down, a respawn due while --require-mount holds recording
back). Each test here puts the real master into one waiting situation and measures the CPU time
it uses over a few idle seconds. The bound is a CPU *fraction*, far above an idle master's
(well under 5 %) and far below a spinning one's (close to 100 %, and at least tens of percent on a
loaded machine), so it separates the two without timing anything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from support import procs

WINDOW = 4.0
MAX_FRACTION = 0.15


def cpu_fraction(pid: int, seconds: float = WINDOW) -> float:
    proc = psutil.Process(pid)
    before = proc.cpu_times()
    started = time.monotonic()
    time.sleep(seconds)
    after = proc.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return used / (time.monotonic() - started)


def assert_idle(pid: int, situation: str) -> None:
    fraction = cpu_fraction(pid)
    assert fraction < MAX_FRACTION, f"master used {fraction:.0%} of a core while {situation}: a spin"


def mount_tmpfs(path: Path) -> None:
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here (needs root): {result.stderr.strip()}")


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def status(sup) -> dict:
    import json

    try:
        return json.loads((sup.state_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def test_idle_master_with_a_recording_camera_sleeps(rtsp, nvr, supervisor):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    sup = supervisor("--poll-interval", "1")
    sup.wait_one_each({"cam"})
    time.sleep(2)
    assert_idle(sup.pid, "recording one camera")


def test_respawn_due_while_the_mount_is_missing_does_not_spin(rtsp, nvr, mirror_dir, supervisor):
    mount_tmpfs(mirror_dir)
    try:
        nvr.add_mirrored("cam", rtsp.url("/live"))
        sup = supervisor("--poll-interval", "0.5", "--require-mount")
        first = sup.wait_one_each({"cam"})["cam"]
        # Two quick deaths: the respawn delay grows to 2 s, longer than the 0.5 s poll that will
        # notice the mount is gone, so the respawn comes due while recording is held back.
        os.kill(first.pid, signal.SIGKILL)
        second = procs.wait_for("a replacement worker",
                                lambda: (v := sup.one_each({"cam"})) and v["cam"].pid != first.pid and v["cam"], 15)
        os.kill(second.pid, signal.SIGKILL)
        umount(mirror_dir)
        sup.wait_log("is not a mount point (--require-mount)", timeout=10)
        procs.wait_for("no worker while the mount is missing", lambda: sup.workers() == {}, 15)
        time.sleep(3)  # the respawn deadline is now in the past
        assert_idle(sup.pid, "a respawn is due but the mount is missing")
        assert sup.workers() == {}, "nothing may record onto the volume underneath"
    finally:
        umount(mirror_dir)


def test_database_error_does_not_spin(rtsp, nvr, supervisor):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    sup = supervisor("--poll-interval", "0.5")
    sup.wait_one_each({"cam"})
    nvr.execute("ALTER TABLE cameras RENAME TO cameras_old")
    sup.wait_log("database unreadable", timeout=10)
    assert_idle(sup.pid, "the database is unreadable")


def test_remains_of_a_dead_worker_do_not_spin(rtsp, nvr, supervisor):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    sup = supervisor("--poll-interval", "1", "--stop-timeout", "20")
    sup.wait_log("cam recording segment=")  # an ffmpeg that records, not one about to fail at start
    view = sup.wait_one_each({"cam"})["cam"]
    ffmpeg = view.ffmpeg_pids[0]
    os.kill(ffmpeg, signal.SIGSTOP)  # a stopped ffmpeg cannot act on SIGTERM: its group stays
    try:
        procs.wait_for("ffmpeg stopped", lambda: psutil.Process(ffmpeg).status() == psutil.STATUS_STOPPED, 10)
        os.kill(view.pid, signal.SIGKILL)
        sup.wait_log("died unexpectedly", timeout=10)
        assert psutil.pid_exists(ffmpeg)
        assert_idle(sup.pid, "the ffmpeg of a dead worker is still alive")
    finally:
        try:
            os.kill(ffmpeg, signal.SIGCONT)
        except ProcessLookupError:
            pass


def test_shutting_down_with_a_stuck_worker_does_not_spin(rtsp, nvr, supervisor):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    sup = supervisor("--poll-interval", "1", "--stop-timeout", "12")
    view = sup.wait_one_each({"cam"})["cam"]
    stuck = [view.pid, *view.ffmpeg_pids]
    for pid in stuck:
        os.kill(pid, signal.SIGSTOP)
    sup.signal(signal.SIGTERM)
    sup.wait_log("shutting down", timeout=10)
    assert_idle(sup.pid, "shutting down, waiting for a worker that does not stop")
    assert sup.stop(timeout=40) == 0
    assert "did not stop within" in sup.log()
