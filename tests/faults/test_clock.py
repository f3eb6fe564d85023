"""Clock faults with the real daemon: segments named in the future (the wall clock was stepped back
since they were written, e.g. NTP correcting a boot clock) must neither fake a stall nor be
truncated by ffmpeg reusing their names.

No real clock is stepped (the machine is shared): the files a clock step leaves behind are made
directly, with names up to ten minutes ahead of the clock and known content.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from support import procs

from mirror_supervisor.footage.segments import parse_name

FFMPEG_NAME = re.compile(r"\d{8}_\d{6}\.mp4")
MOVED_NAME = re.compile(r"(\d{8}_\d{6})~\d+\.mp4")


def name_at(epoch: float) -> str:
    return time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(epoch))


def plant_future_segments(directory: Path) -> dict[str, bytes]:
    """Every second from 8 to 20 s ahead (ffmpeg's 2 s segments must hit some), then up to 10 min."""
    directory.mkdir()
    now = int(time.time())
    planted = {}
    for ahead in [*range(8, 21), 60, 180, 600]:
        name = name_at(now + ahead)
        planted[name] = f"footage recorded before the clock went back, {ahead} s ahead".encode()
        (directory / name).write_bytes(planted[name])
    return planted


def contents_under(directory: Path, name: str) -> list[bytes]:
    """The content of ``name`` and of every file it was moved aside to (``<stem>~N.mp4``)."""
    stem = name[: -len(".mp4")]
    return [path.read_bytes() for path in directory.iterdir()
            if path.name == name or (MOVED_NAME.fullmatch(path.name) and path.name.startswith(stem + "~"))]


def recorded(directory: Path, planted: dict[str, bytes]) -> list[Path]:
    return sorted(p for p in directory.iterdir() if FFMPEG_NAME.fullmatch(p.name) and p.name not in planted)


def test_future_named_segments_neither_fake_a_stall_nor_get_truncated(rtsp, nvr, mirror_dir, supervisor):
    cam = mirror_dir / "cam"
    planted = plant_future_segments(cam)
    last_planted = max(n for n in planted if planted[n].endswith(b"20 s ahead"))
    nvr.add_mirrored("cam", rtsp.url("/live"))
    sup = supervisor("--poll-interval", "600", "--stall-timeout", "4")
    first = sup.wait_one_each({"cam"})["cam"]

    # Until the clock is past the second-by-second names and ffmpeg made several segments after
    # them (well over two stall timeouts of recording); a false stall ends the wait early.
    def settled() -> bool:
        later = [p for p in recorded(cam, planted) if p.name > last_planted]
        return len(later) >= 4 or ("stalled" in sup.log() and time.time() > parse_name(last_planted) + 4)

    procs.wait_for("several segments after the planted names, or a false stall", settled, 90, interval=0.5)
    log = sup.log()
    stalls = log.count("stalled: ffmpeg wrote nothing")
    now = sup.wait_one_each({"cam"})["cam"]
    restarted = (now.pid, now.ffmpeg_pids) != (first.pid, first.ffmpeg_pids)
    lost = [name for name, content in planted.items() if content not in contents_under(cam, name)]
    assert (stalls, restarted, lost) == (0, False, []), "false stalls, ffmpeg restarted, planted footage lost"

    moved = [p.name for p in cam.iterdir() if MOVED_NAME.fullmatch(p.name)]
    assert moved, "nothing was moved aside"
    moved_line = next(line for line in log.splitlines() if " cam moved aside " in line)
    assert all(name in moved_line for name in moved)  # one line names each file it moved
    for path in recorded(cam, planted)[:-1]:  # the last one is still being written
        assert procs.probe(path).get("video_codec") == "h264", path.name
