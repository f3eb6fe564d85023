"""Fault injection: the NVR's PRIMARY disk hangs (a hard-mounted share whose server died), the
mirror stays healthy - the moment the mirror exists for.

The NVR's own recorder is a real process named ``ffmpeg`` whose output lies on a real FUSE mount
(tests/support/hangfs.py) that stops answering. The pruner looks at every ffmpeg in the process
table to keep the file each one writes into the mirror; before the fix it resolved those
processes' output paths, one stat on the hung share never returned, the pruner child hung in its
first pass, and the master (which runs one pass at a time) never pruned again: the mirror would
fill up and stop recording while it held the only copy. The requirement: retention goes on, pass
after pass, while the primary hangs.

The test process never touches the hung mount itself; it only writes the mirror and reads logs.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import procs
from support.hangfs import hanging_volume, unavailable_reason
from support.recordings import old_segments

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=f"FUSE: {unavailable_reason()}")

DAY = 86400.0


@pytest.fixture
def hung_primary(tmp_path):
    """The NVR's recorder writing onto a FUSE primary volume, which is then hung."""
    with hanging_volume(tmp_path, "primary") as fs:
        (fs.backing / "nvr_cam").mkdir()
        output = str(fs.mountpoint / "nvr_cam" / "%Y%m%d_%H%M%S.mp4")
        recorder = subprocess.Popen(["ffmpeg", "-c", "import time; time.sleep(600)", "-i", "rtsp://nvr/cam", output],
                                    executable=sys.executable, stdin=subprocess.DEVNULL)
        fs.hang("stop")
        yield fs
        recorder.kill()
        fs.resume()
        recorder.wait(timeout=10)


def gone(sup, what: str, paths: list) -> None:
    try:
        procs.wait_for(what, lambda: not any(p.exists() for p in paths), 60)
    except AssertionError:
        print(sup.log())
        raise


def test_retention_goes_on_while_the_primary_disk_hangs(rtsp, nvr, mirror_dir, supervisor, hung_primary):
    # A segment stands for a day of footage (segment_seconds): the recent ones are more than the
    # hour of footage the pruner wants recorded after a file before it lets that file go.
    nvr.add_mirrored("cam", rtsp.url("/live"), retention_hours=1, segment_seconds=int(DAY))
    expired = old_segments(mirror_dir / "cam", 3, 2 * DAY)
    recent = old_segments(mirror_dir / "cam", 2, 600)

    sup = supervisor("--poll-interval", "1", "--prune-interval", "1")
    sup.wait_one_each({"cam"})
    gone(sup, "the first prune pass deletes the expired footage", expired)

    # Not one lucky pass: footage that expires later is pruned by a later pass.
    later = old_segments(mirror_dir / "cam", 2, 3 * DAY)
    gone(sup, "a later prune pass deletes footage that expired later", later)
    assert all(p.exists() for p in recent)
    assert "prune pass ended with" not in sup.log()
