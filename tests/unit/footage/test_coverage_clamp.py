"""A segment's own timing is not believed past what wall-clock time allows (coverage.py, timing.py).

A camera whose stream timestamps leap forward makes a file of seconds claim hours; counted as it
claims, it hides every hole after it. Every consumer of the computation (the `coverage` command
and its JSON, the index's rows, `status`'s COV 1H, the metrics' coverage child) must count the
span the file could really hold and say when it did not believe the file.
"""

from __future__ import annotations

import datetime
import json
import os
import time

import pytest
from support import fmp4

from mirror_supervisor import cli, status
from mirror_supervisor.footage import coverage, index
from mirror_supervisor.metrics import children as metrics_children

T0 = datetime.datetime(2026, 11, 25, 10, tzinfo=datetime.UTC).timestamp()
LIE = 21093.6  # the leap: 2.4 s of video claim 21,096 s, as seen with real ffmpeg 5.1


def name(epoch: float) -> str:
    return time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(epoch))


def write(directory, start: float, seconds: float, written: float | None = None, **kwargs) -> str:
    """A segment named ``start``, last written when a camera recording in real time would have
    finished it (``written``, default start + seconds)."""
    path = fmp4.write_segment(directory / name(start), seconds, **kwargs)
    moment = start + seconds if written is None else written
    os.utime(path, (moment, moment))
    return path.name


def record(directory, start: float, end: float, seconds: float = 60.0) -> None:
    at = start
    while at < end:
        length = min(seconds, end - at)
        write(directory, at, length)
        at += length


def hour_with_a_lying_segment(directory, at: float = T0) -> str:
    """10 minutes, a segment of 2.4 s that claims 21,096 s, a 50-minute hole, 10 minutes."""
    record(directory, at, at + 600)
    lying = write(directory, at + 600, 2.4, jump=LIE)
    record(directory, at + 3000, at + 3600)
    return lying


def test_a_forward_timestamp_jump_does_not_hide_the_hole_after_it(tmp_path):
    lying = hour_with_a_lying_segment(tmp_path / "cam")
    cam = coverage.compute(tmp_path, T0, T0 + 3600, now=T0 + 7200).cameras[0]
    assert [(round(g.start - T0, 1), round(g.end - T0, 1)) for g in cam.gaps] == [(602.4, 3000.0)]
    assert cam.covered_seconds == pytest.approx(1202.4)
    [clamp] = cam.clamped
    assert (clamp.name, clamp.claimed, clamp.believed) == (lying, pytest.approx(21096.0), pytest.approx(2.4))
    assert "last written" in clamp.reason


def test_the_index_rows_go_through_the_same_clamp(tmp_path):
    hour_with_a_lying_segment(tmp_path / "cam")
    index.make_index_dir(tmp_path)
    cold = coverage.compute(tmp_path, T0, T0 + 3600, now=T0 + 7200)
    warm = coverage.compute(tmp_path, T0, T0 + 3600, now=T0 + 7200)
    assert warm.parsed == 0 < cold.parsed
    with index.SegmentIndex(tmp_path, write=False) as db:  # the row keeps what the file says
        assert max(row.duration for row in db.rows("cam", "", "~").values()) == pytest.approx(21096.0)
    assert warm.cameras[0].gaps == cold.cameras[0].gaps and len(warm.cameras[0].gaps) == 1
    assert [c.name for c in warm.cameras[0].clamped] == [c.name for c in cold.cameras[0].clamped]


def test_json_and_text_say_which_file_was_not_believed(tmp_path, capsys):
    lying = hour_with_a_lying_segment(tmp_path / "cam")
    window = ["--from", "2026-11-25T10:00:00Z", "--to", "2026-11-25T11:00:00Z"]
    base = ["coverage", "--mirror-dir", str(tmp_path), "--state-dir", str(tmp_path / "s"), *window]
    assert cli.main([*base, "--json"]) == 0
    cam = json.loads(capsys.readouterr().out)["cameras"][0]
    assert cam["gaps"] == [{"start": "2026-11-25T10:10:02.400Z", "end": "2026-11-25T10:50:00Z", "seconds": 2397.6}]
    assert cam["clamped"] == [{"name": lying, "claimed_seconds": 21096.0, "believed_seconds": 2.4,
                               "reason": cam["clamped"][0]["reason"]}]
    assert cli.main(base) == 0
    text = capsys.readouterr().out
    assert f"clamped {lying}" in text and "21096" in text and "last written" in text


def test_the_next_segment_bounds_a_file_whose_mtime_says_nothing(tmp_path):
    """An mtime before the file's own name (a stepped clock, a touched file) is no bound; the next
    segment's start still is: one ffmpeg per camera, segments follow each other."""
    directory = tmp_path / "cam"
    record(directory, T0, T0 + 60)
    lying = write(directory, T0 + 60, 30, written=T0 - 86400, jump=LIE)
    record(directory, T0 + 90, T0 + 120)
    cam = coverage.compute(tmp_path, T0, T0 + 1200, now=T0 + 7200).cameras[0]
    assert [(g.start - T0, g.end - T0) for g in cam.gaps] == [(120, 1200)]
    assert [(c.name, c.believed) for c in cam.clamped] == [(lying, pytest.approx(30.0))]
    assert "next segment" in cam.clamped[0].reason


def test_no_segment_is_longer_than_a_segment_can_be(tmp_path):
    from mirror_supervisor.footage import timing  # new with the clamp: imported here so the others run on older code

    directory = tmp_path / "cam"
    write(directory, T0, 30, written=T0 - 86400, jump=LIE)  # no usable mtime, no next segment
    cam = coverage.compute(tmp_path, T0, T0 + 86400, now=T0 + 7 * 86400).cameras[0]
    assert cam.covered_seconds == pytest.approx(timing.LONGEST_SEGMENT)
    assert "longer than" in cam.clamped[0].reason


def test_a_segment_a_little_past_its_mtime_is_believed(tmp_path):
    """ffmpeg names a segment by the second it opened it, and a camera may send a burst of buffered
    frames at the start: a few seconds more than the wall clock allows are normal."""
    directory = tmp_path / "cam"
    write(directory, T0, 60, written=T0 + 58)
    write(directory, T0 + 59, 60, written=T0 + 119)
    cam = coverage.compute(tmp_path, T0, T0 + 119, now=T0 + 7200).cameras[0]
    assert (cam.gaps, cam.clamped) == ([], [])


def test_status_cov_1h_counts_the_hole(tmp_path):
    now = time.time()
    hour_with_a_lying_segment(tmp_path / "cam", at=now - 3600)
    data = {"master": {"mirror_dir": str(tmp_path), "pid": 1, "started": now - 7200}, "cameras": [{"id": "cam"}]}
    status.with_coverage(data, now=now)
    assert data["cameras"][0]["coverage_1h"] == pytest.approx(1202.4 / 3600, abs=0.01)


def test_the_metrics_coverage_child_counts_the_hole(tmp_path):
    """The coverage child the master forks once a minute, run as the master runs it (forked)."""
    hour_with_a_lying_segment(tmp_path / "cam", at=time.time() - 3600)
    out = tmp_path / "coverage.json"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = metrics_children.coverage_main(str(tmp_path), ["cam"], 3600.0, str(out), 7, (), os.getppid())
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    answer = json.loads(out.read_text())
    assert answer["sequence"] == 7
    assert answer["cameras"]["cam"] == pytest.approx(1202.4 / 3600, abs=0.01)
