"""Faults aimed at the master itself: errors nobody expected, and signals at awkward moments.

The master must outlive anything one pass of its loop runs into (an errno from a system call, a
bug): the workers keep recording, the error is logged once with its traceback, and the loop goes
on. These tests provoke such errors for real, with the master running as an unprivileged user
where permissions are the fault (root ignores them).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import procs
from support.nvr import NvrDatabase
from support.users import UserPython, shared_tmpdir, unprivileged

UNPRIVILEGED = "nobody"


@pytest.fixture
def shared_tmp():
    """A directory another user can reach (pytest's tmp_path is private to root)."""
    path = shared_tmpdir("ms-unpriv-")
    yield path
    subprocess.run(["chmod", "-R", "u+rwX", str(path)], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def _start_as(user: pwd.struct_passwd, python: UserPython, tmp: Path, db: Path,
              mirror: Path) -> tuple[subprocess.Popen, Path]:
    """The master as ``user``, from an interpreter it can run (the checkout may be private to root)."""
    log = tmp / "supervisor.log"
    cache = tmp / "cache"  # the user's own camera cache (conftest's is in root's private tmp_path)
    cache.mkdir(mode=0o700, exist_ok=True)
    os.chown(cache, user.pw_uid, user.pw_gid)
    argv = python.argv(user.pw_uid, user.pw_gid, "run", "--db", str(db), "--mirror-dir", str(mirror),
                       "--state-dir", str(tmp / "state"), "--poll-interval", "0.5")
    handle = open(log, "ab")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, cwd="/",
                            env=python.env({**os.environ, "HOME": str(tmp), "MIRROR_SUPERVISOR_CACHE_DIR": str(cache)}))
    handle.close()
    return proc, log


def _running(proc: subprocess.Popen, log: Path) -> bool:
    """True while the master runs; a master that exited fails the test at once, with its log."""
    if proc.poll() is not None:
        raise AssertionError(f"the master exited with status {proc.returncode}:\n{log.read_text()[-3000:]}")
    return True


def test_unexpected_oserror_reading_the_database_keeps_recording(rtsp, shared_tmp, user_python):
    user = unprivileged(UNPRIVILEGED)
    data = shared_tmp / "data"
    mirror = shared_tmp / "mirror"
    state = shared_tmp / "state"
    for path in (data, mirror, state):
        path.mkdir()
        os.chown(path, user.pw_uid, user.pw_gid)
    db = NvrDatabase(data / "nvr.db")
    db.add_mirrored("cam", rtsp.url("/live"))
    for path in data.iterdir():
        os.chown(path, user.pw_uid, user.pw_gid)
    proc, log = _start_as(user, user_python, shared_tmp, db.path, mirror)
    try:
        before = procs.wait_for("one worker with its ffmpeg", lambda: _running(proc, log) and (
            w := procs.workers(proc.pid)).get("cam") and w["cam"][0].ffmpeg_pids and w, 30)
        # The database's directory loses its search permission: stat() of the file now fails with
        # EACCES, which pathlib's is_file() does not swallow.
        data.chmod(0o000)
        procs.wait_for("the error in the log", lambda: "database unreadable" in log.read_text(), 15)
        time.sleep(3)  # several polls while it fails
        assert proc.poll() is None, "the master died:\n" + log.read_text()[-3000:]
        after = procs.workers(proc.pid)
        assert procs.disturbed({"cam": before["cam"][0]}, {"cam": after["cam"][0]}, log.read_text()) == [], \
            "an unreadable database disturbed recording"
        assert "Permission denied" in log.read_text()
        assert log.read_text().count("database unreadable") == 1, "logged once, not every poll"
        data.chmod(0o755)
        procs.wait_for("readable again", lambda: "database readable again" in log.read_text(), 15)
    finally:
        data.chmod(0o755)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in procs.ffmpegs_writing(mirror):
            os.kill(pid, signal.SIGKILL)


def test_sighup_while_the_master_is_starting_does_not_kill_it(tmp_path, rtsp, nvr, mirror_dir):
    """A reload sent right after a start (an init script's ``start; reload``) must be queued.

    SIGHUP is held back from the first line of our code; the interpreter's own start-up (tens
    of milliseconds, before any of our code runs) cannot be covered, so the signals start once
    the process shows it has taken SIGHUP under control.
    """
    nvr.add_mirrored("cam", rtsp.url("/live"))
    argv = [sys.executable, "-m", "mirror_supervisor", "run", "--db", str(nvr.path), "--mirror-dir",
            str(mirror_dir), "--state-dir", str(tmp_path / "state"), "--poll-interval", "1"]
    log = tmp_path / "supervisor.log"
    with open(log, "ab") as handle:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT)
    try:
        procs.wait_for("SIGHUP held back or handled", lambda: _hup_controlled(proc.pid), 10, interval=0.001)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and proc.poll() is None:
            os.kill(proc.pid, signal.SIGHUP)
            time.sleep(0.005)
        assert proc.poll() is None, f"SIGHUP at start killed the master (exit {proc.returncode})"
        procs.wait_for("recording after the reloads",
                       lambda: (w := procs.workers(proc.pid)).get("cam") and w["cam"][0].ffmpeg_pids, 30)
        assert len(procs.workers(proc.pid)["cam"]) == 1, "a burst of reloads must not duplicate workers"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def _hup_controlled(pid: int) -> bool:
    """SIGHUP (bit 0) is blocked, ignored or caught by the process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    masks = {line.split(":")[0]: int(line.split()[1], 16) for line in status.splitlines()
             if line.startswith(("SigBlk", "SigIgn", "SigCgt"))}
    return any(value & 1 for value in masks.values())
