"""Fault injection: the segment index HANGS while the footage volume answers (index_writer.py).

On an NFS mirror whose lock daemon hangs, every fcntl lock SQLite takes on the index waits in the
kernel while reads and writes of the segments go on. Neither the worker nor the master may wait on
the index: stall checks, ffmpeg restarts and a stop all happen while the index writer child's
writes are stuck.

The class is reproduced with a real FUSE mount (tests/support/hangfs.py) on
``<mirror>/.mirror-supervisor`` only: once it hangs, everything that touches the index waits in
the kernel, killably (``stop`` mode, like a hard NFS mount), and the camera directories beside it
are a plain directory. The test never touches the mount while it hangs: it reads the backing
directory, the log and /proc.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psutil
import pytest
from support import procs
from support.hangfs import HangFs, unavailable_reason

from mirror_supervisor.footage.index import INDEX_DIR, INDEX_NAME
from mirror_supervisor.plumbing import titles

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=f"FUSE: {unavailable_reason()}")

SEGMENT_SECONDS = 2
STALL_TIMEOUT = 4.0
STOP_TIMEOUT = 4.0


@pytest.fixture
def index_volume(tmp_path, mirror_dir):
    """The index directory is a hanging FUSE mount; the camera directories are not."""
    fs = HangFs(tmp_path / "index-backing", mirror_dir / INDEX_DIR, tmp_path).mount()
    try:
        yield fs
    finally:
        fs.unmount()


def indexed(backing) -> set[str]:
    """The rows in the index, read from the backing directory (never through the mount)."""
    path = backing / INDEX_NAME
    if not path.exists():
        return set()
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return {row[0] for row in db.execute("SELECT name FROM segments")}
    except sqlite3.Error:
        return set()


def kernel_waits(pid: int) -> dict[str, str]:
    """Each thread of ``pid``: its name and where it sleeps in the kernel (from /proc)."""
    waits = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            waits[f"{task.name} {(task / 'comm').read_text().strip()}"] = (task / "wchan").read_text().strip()
        except OSError:
            continue
    return waits


def test_a_hung_index_never_holds_up_the_workers_supervision(rtsp, nvr, mirror_dir, supervisor, index_volume):
    nvr.add_mirrored("cam", rtsp.url("/live"), segment_seconds=SEGMENT_SECONDS)
    sup = supervisor("--poll-interval", "0.5", "--stall-timeout", str(STALL_TIMEOUT),
                     "--stop-timeout", str(STOP_TIMEOUT))
    procs.wait_for("segments in the index", lambda: len(indexed(index_volume.backing)) >= 2, 60)

    index_volume.hang("stop")
    hung_at = len(sup.log())
    segments = mirror_dir / "cam"
    before = {p.name for p in segments.iterdir()}
    procs.wait_for("ffmpeg moved on to 3 new segments while the index hangs",
                   lambda: len({p.name for p in segments.iterdir()} - before) >= 3, 60)
    rtsp.pause()  # the camera goes silent: the worker must notice the stall and restart ffmpeg
    try:
        procs.wait_for("the stall noticed while the index hangs",
                       lambda: "stalled: ffmpeg wrote nothing" in sup.log()[hung_at:], 60)
    except AssertionError:
        for views in sup.workers().values():
            print(f"worker {views[0].pid} threads: {kernel_waits(views[0].pid)}")
        raise
    finally:
        rtsp.resume()
    stalled_at = sup.log().index("stalled: ffmpeg wrote nothing", hung_at)
    procs.wait_for("ffmpeg restarted after the stall while the index hangs",
                   lambda: "ffmpeg started pid=" in sup.log()[stalled_at:], 60)
    procs.wait_for("recording again after the stall", lambda: "recording segment=" in sup.log()[stalled_at:], 60)
    assert index_volume.mode == "stop"  # still hung all along
    print(f"worker threads: {kernel_waits(sup.wait_one_each({'cam'})['cam'].pid)}")
    (writer,) = [c.pid for c in psutil.Process(sup.pid).children() if procs.title(c) == titles.INDEX_WRITER]
    waits = kernel_waits(writer)
    assert any("fuse" in wchan or "request_wait" in wchan for wchan in waits.values()), waits  # the index writer child
    print(f"index hung; worker noticed the stall and restarted ffmpeg:\n{sup.log()[hung_at:]}")

    began = time.monotonic()
    assert sup.stop(timeout=60) == 0
    print(f"stop took {time.monotonic() - began:.1f}s with the index hung")
    after = sup.log()[hung_at:]
    stopping = after[after.rfind("\n", 0, after.find("shutting down")) + 1:]  # the stop's lines, whole
    assert "did not stop within" not in after and "did not end after SIGKILL" not in after, stopping
    assert "worker stopped gen=" in after, stopping
