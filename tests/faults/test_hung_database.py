"""Fault injection: the volume that holds the NVR's DATABASE hangs (a NAS share or dying disk that
holds the NVR's data), while the mirror is healthy.

The database is a real SQLite file on a real FUSE mount (tests/support/hangfs.py) that stops
answering. A master that reads it in its own loop would sleep in the kernel: no status, no
reload, no stop, and under systemd the watchdog would kill it together with every worker, so
the mirror would stop recording at the moment it is the only copy. The requirement is the one
for an unreadable database: recording goes on as it was, the master keeps answering and says
what is wrong, and it picks up changes again once the volume answers.

The test process never touches the hung mount; it reads the state dir, the mirror and /proc.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import psutil
import pytest
from support import procs
from support.hangfs import hanging_volume, unavailable_reason
from support.nvr import NvrDatabase

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=f"FUSE: {unavailable_reason()}")


@pytest.fixture
def db_volume(tmp_path):
    with hanging_volume(tmp_path, "nvr-data") as fs:
        yield fs


@pytest.fixture
def nvr(db_volume) -> NvrDatabase:
    """Overrides conftest's: the NVR's database lives on the FUSE mount."""
    return NvrDatabase(db_volume.mountpoint / "heldar.db")


def db_state(sup) -> str | None:
    try:
        return json.loads((sup.state_dir / "status.json").read_text())["master"]["db"]["state"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def mirror_files(directory) -> int:
    return len(list(directory.glob("*.mp4")))


@pytest.mark.parametrize("mode", ["stop", "block"], ids=["killable-wait", "unkillable-wait"])
def test_recording_goes_on_and_the_master_answers_while_the_database_volume_hangs(
        rtsp, nvr, mirror_dir, supervisor, db_volume, mode):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    sup = supervisor("--poll-interval", "1")
    before = sup.wait_one_each({"cam"})

    db_volume.hang(mode)
    procs.wait_for("status says the database is in error", lambda: db_state(sup) == "error", 30)
    assert "database unreadable" in sup.log() and "not responding" in sup.log(), sup.log()

    sup.signal(signal.SIGHUP)  # the loop still takes signals
    sup.wait_log("reload requested", timeout=15)
    files = mirror_files(mirror_dir / "cam")
    procs.wait_for("segments keep coming", lambda: mirror_files(mirror_dir / "cam") >= files + 2, 30)
    assert procs.disturbed(before, sup.wait_one_each({"cam"}, timeout=5), sup.log()) == [], \
        "the hung database disturbed recording"
    # Neither a spin nor a pile-up: one asking child at a time (besides the mirror's own probe),
    # and the master mostly asleep (generous: a spin is a whole core).
    master = psutil.Process(sup.pid)
    cpu_before, began = sum(master.cpu_times()[:2]), time.monotonic()
    time.sleep(4)
    used = (sum(master.cpu_times()[:2]) - cpu_before) / (time.monotonic() - began)
    assert used < 0.3, f"the master used {used:.0%} of a core while the database hangs"
    asking = [c for c in master.children() if "volume probe" in " ".join(c.cmdline())]
    assert len(asking) <= 2, asking

    # The hand-run commands that read the database fail in one line instead of hanging.
    for command in (["prune", "--dry-run"], ["check"]):
        done = subprocess.run([sys.executable, "-m", "mirror_supervisor", *command, "--db", str(nvr.path),
                               "--mirror-dir", str(mirror_dir), "--state-dir", str(sup.state_dir)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "database volume not responding" in done.stdout, (command, done)

    # A restart while the database still hangs: a stuck asking child holds none of the master's
    # descriptors (no lock, no pipe), so the new master starts at once, and it records from the
    # camera cache the first master wrote (before the cache, it recorded nothing until the volume
    # answered again).
    assert sup.stop() == 0
    earlier = len(sup.log())
    again = supervisor("--poll-interval", "1")
    procs.wait_for("the new master says the database does not answer",
                   lambda: "database volume not responding" in again.log()[earlier:], 40)
    assert "not starting" not in again.log()[earlier:], again.log()[earlier:]
    from_cache = again.wait_one_each({"cam"}, timeout=30)
    procs.wait_for("recording from the cache", lambda: "cam recording segment=" in again.log()[earlier:], 30)
    assert again.log()[earlier:].count("database unreadable at start: recording 1 cameras from the camera cache") == 1

    db_volume.resume()
    procs.wait_for("database readable again", lambda: "database readable again" in again.log()[earlier:], 30)
    nvr.add_mirrored("cam2", rtsp.url("/live"))
    table = again.wait_one_each({"cam", "cam2"}, timeout=30)
    assert procs.disturbed(from_cache, table, again.log()) == [], "the database's return restarted a camera it holds too"
    assert again.stop() == 0
