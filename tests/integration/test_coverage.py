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
from support import busy_coverage, fmp4, procs

from mirror_supervisor import timeargs
from mirror_supervisor.footage import coverage, coverage_report, index, mp4
from mirror_supervisor.footage.segments import parse_name

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
    return coverage_report.rfc3339(float(int(epoch)))


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
    assert cam["clamped"] == [], "real segments of a real camera must be believed as they are"
    assert len(cam["gaps"]) == 1, cam
    gap = cam["gaps"][0]
    gap_start, gap_end = timeargs.parse_time(gap["start"]), timeargs.parse_time(gap["end"])
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


def segment_name(epoch: float) -> str:
    return time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(epoch))


def test_a_real_segment_whose_timestamps_leap_does_not_hide_the_hole_after_it(mirror_dir, tmp_path):
    """Real ffmpeg 5.1, in real time (-re), writes 2.4 s of video whose timestamps leap 21,000 s
    forward after 1.2 s, as a camera's do when its clock steps: the file's boxes claim 21,002 s.
    Nothing more is recorded for 50 minutes. The coverage must show those 50 minutes as a gap and
    say that the file's own timing was not believed."""
    directory = mirror_dir / "cam"
    directory.mkdir()
    start = float(int(time.time()))
    lying = directory / segment_name(start)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-t", "2.4", "-i",
                    "testsrc=size=160x120:rate=25", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
                    "-bsf:v", "setts=ts=if(gte(N\\,30)\\,PTS+21000*12800\\,PTS)", "-video_track_timescale", "12800",
                    "-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-f", "mp4", str(lying)],
                   check=True, timeout=60)
    assert mp4.probe(lying).duration > 21000
    later = fmp4.write_segment(directory / segment_name(start + 3000), 600.0)  # 50 minutes on
    os.utime(later, (start + 3600, start + 3600))
    code, data = run_coverage(mirror_dir, tmp_path, "--from", rfc(start), "--to", rfc(start + 3600))
    cam = data["cameras"][0]
    assert code == 0 and len(cam["gaps"]) == 1, cam
    gap = cam["gaps"][0]
    # the file ends when ffmpeg last wrote it: 2.4 s of real time, plus start-up and the trailer
    assert start + 2 <= timeargs.parse_time(gap["start"]) <= start + 60, (gap, start)
    assert timeargs.parse_time(gap["end"]) == start + 3000, gap
    assert [c["name"] for c in cam["clamped"]] == [lying.name] and cam["clamped"][0]["claimed_seconds"] > 21000


@pytest.mark.parametrize("sig, stopped_pool", [(signal.SIGTERM, False), (signal.SIGTERM, True), (signal.SIGKILL, True)],
                         ids=["SIGTERM", "SIGTERM-pool-stopped", "SIGKILL-pool-stopped"])
def test_a_signal_to_the_coverage_command_leaves_no_pool_process(tmp_path, sig, stopped_pool):
    """`coverage` parses many files in a pool of processes; SIGTERM to the command (a script's
    timeout, a stopped job) must end them too, and the command must exit; SIGKILL, which the
    command cannot handle, too. A pool process that does not come back to its queue (a long
    parse, a slow volume; SIGSTOP here) must not be left behind either."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("the command parses in a pool only with 2 cores or more")
    command, pool = busy_coverage.start(tmp_path / "mirror", tmp_path / "mirror", tmp_path / "state")
    try:
        for pid in pool if stopped_pool else ():
            os.kill(pid, signal.SIGSTOP)
        command.send_signal(sig)
        code = command.wait(timeout=60)
    finally:
        command.kill()
        try:
            for pid in pool:
                procs.wait_for("every pool process gone", lambda pid=pid: not procs.alive(pid), 30)
        finally:
            for pid in pool:
                if procs.alive(pid):  # left behind: the test failed; do not leave it stopped
                    os.kill(pid, signal.SIGKILL)
    assert code == (128 + sig if sig == signal.SIGTERM else -sig), (code, command.stderr.read())


@pytest.mark.parametrize("args", [("--since", "100000000d"), ("--from", "0001-01-01T00:00:00+14:00", "--to",
                                                                   "2026-11-25T10:00:00Z")])
def test_an_absurd_window_is_a_one_line_error(mirror_dir, tmp_path, args):
    done = subprocess.run(
        [sys.executable, "-m", "mirror_supervisor", "coverage", "--mirror-dir", str(mirror_dir),
         "--state-dir", str(tmp_path / "state"), *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, "HELDAR_RECORDINGS_DIR": ""})
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"mirror-supervisor: error: {args[0]}:"), done.stderr
