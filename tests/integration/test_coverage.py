"""Coverage of real recordings: real RTSP camera, real master, real ffmpeg, real segment files.

Bounds are generous (reconnect back-off, a loaded machine); nothing here times the program.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import procs

from mirror_supervisor import coverage, index, mp4
from mirror_supervisor.segments import parse_name

SEGMENT_SECONDS = 3


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.mp4")) if directory.is_dir() else []


def run_coverage(mirror_dir: Path, tmp_path: Path, *args: str) -> tuple[int, dict]:
    done = subprocess.run(
        [sys.executable, "-m", "mirror_supervisor", "coverage", "--mirror-dir", str(mirror_dir),
         "--state-dir", str(tmp_path / "state"), "--json", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, "HELDAR_RECORDINGS_DIR": ""})
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def rfc(epoch: float) -> str:
    return coverage.rfc3339(float(int(epoch)))


def test_outage_garbage_and_primary_hole(rtsp, nvr, mirror_dir, supervisor, tmp_path):
    nvr.add_mirrored("cam", rtsp.url("/live"), segment_seconds=SEGMENT_SECONDS)
    sup = supervisor("--poll-interval", "1")
    directory = mirror_dir / "cam"
    procs.wait_for("4 segments", lambda: len(names(directory)) >= 4, 40)
    # ~10 s source outage
    rtsp.stop()
    outage_start = time.time()
    time.sleep(10)
    rtsp.start()
    outage_end = time.time()
    before = set(names(directory))
    procs.wait_for("3 segments after the outage",
                   lambda: len(set(names(directory)) - before) >= 3, 60)
    sup.stop()

    segments = names(directory)
    window_start = parse_name(segments[0])
    window_end = parse_name(segments[-1]) + mp4.probe(directory / segments[-1]).duration

    # Every finished segment was indexed by the worker as it was recorded: a warm run parses none.
    with index.SegmentIndex(mirror_dir, write=False) as db:
        rows = db.rows("cam", "", "~")
    assert set(segments) - set(rows) <= {segments[-1]}, (segments, sorted(rows))
    warm = coverage.compute(mirror_dir, window_start, window_end, use_index=True, now=time.time())
    assert warm.parsed <= 1

    code, data = run_coverage(mirror_dir, tmp_path, "--from", rfc(window_start), "--to", rfc(window_end + 1))
    cam = data["cameras"][0]
    assert code == 0 and cam["invalid"] == []
    assert len(cam["gaps"]) == 1, cam
    gap = cam["gaps"][0]
    gap_start, gap_end = coverage.parse_time(gap["start"]), coverage.parse_time(gap["end"])
    # Starts when the source went away (the last fragment before it, at most one GOP earlier) and
    # ends when ffmpeg was back: the outage plus the reconnect back-off (1, 2, 4, 8 s) at most.
    assert outage_start - 3 <= gap_start <= outage_start + 1, (gap, outage_start)
    assert outage_end - 1 <= gap_end <= outage_end + 10, (gap, outage_end)
    assert 9 <= gap["seconds"] <= 22, gap

    # A garbage file with a segment name is reported invalid, by name, and is a gap of its own.
    garbage = time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(int(window_end) + 30))
    (directory / garbage).write_bytes(b"definitely not an mp4\n" * 50)
    os.utime(directory / garbage, (time.time() - 600, time.time() - 600))
    code, data = run_coverage(mirror_dir, tmp_path, "--from", rfc(window_start), "--to", rfc(window_end + 60),
                              "--min-coverage", "0.99")
    assert data["cameras"][0]["invalid"] == [garbage]
    assert code == 1  # below --min-coverage
    (directory / garbage).unlink()

    # The NVR's primary copy: the same recordings, but with a hole the mirror does not have, and
    # the mirror's outage filled in (the primary recorded through it).
    primary = tmp_path / "primary"
    (primary / "cam").mkdir(parents=True)
    hole = [n for n in segments if parse_name(n) < outage_start - SEGMENT_SECONDS][1:3]
    assert len(hole) == 2
    for n in segments:
        if n not in hole:
            shutil.copy2(directory / n, primary / "cam" / n)
    hole_seconds = sum(mp4.probe(directory / n).duration for n in hole)
    code, data = run_coverage(mirror_dir, tmp_path, "--from", rfc(window_start), "--to", rfc(window_end + 1),
                              "--primary-dir", str(primary))
    result = data["cameras"][0]["primary"]
    assert result["only_mirror_seconds"] == pytest.approx(hole_seconds, abs=2.5), (result, hole_seconds)
    assert result["only_primary_seconds"] == pytest.approx(0, abs=2.5), result


def test_killed_ffmpeg_segment_keeps_its_real_duration(rtsp, nvr, mirror_dir, supervisor):
    """SIGKILL leaves no trailer: the index still gets the playable seconds the file holds."""
    nvr.add_mirrored("cam", rtsp.url("/live"), segment_seconds=30)
    sup = supervisor("--poll-interval", "1")
    directory = mirror_dir / "cam"
    table = sup.wait_one_each({"cam"})
    first = procs.wait_for("a segment", lambda: names(directory)[-1:] or None, 30)[0]
    procs.wait_for("6 s recorded", lambda: mp4.probe(directory / first).duration >= 6, 30)
    os.kill(table["cam"].ffmpeg_pids[0], signal.SIGKILL)

    def indexed():
        try:
            with index.SegmentIndex(mirror_dir, write=False) as db:
                return db.rows("cam", first, first + "~").get(first)
        except index.IndexError_:
            return None

    row = procs.wait_for("the killed segment indexed", indexed, 30)
    assert row.playable and row.size == (directory / first).stat().st_size
    # What ffprobe reads from the same file (it also counts samples of a fragment cut short,
    # which flush_packets=1 makes rare): the same within one keyframe interval (1 s here).
    assert row.duration >= 6
    assert abs(row.duration - procs.probe(directory / first)["duration"]) <= 1.1
