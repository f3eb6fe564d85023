"""The segment index writer's work (footage/index_writer.py): jobs in, rows out, no process.

The child process around it (its pipe, fork, respawn and stop) is master/index_child.py's, tested
in tests/unit/master/test_index_child.py; with a real master and ffmpeg in
tests/integration/test_index_writer_child.py.
"""

from __future__ import annotations

import calendar
import json
import logging
import time
from pathlib import Path

import pytest
from support import fmp4

from mirror_supervisor.footage import index, index_writer, mp4
from mirror_supervisor.footage.index_writer import IndexWriter, Job


def name_at(epoch: float) -> str:
    return time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(epoch))


T0 = calendar.timegm((2026, 11, 25, 10, 0, 0))


def rows(mirror: Path, camera: str = "cam") -> dict[str, index.Row]:
    with index.SegmentIndex(mirror, write=False) as db:
        return db.rows(camera, "", "~")


def test_a_finished_segment_becomes_its_row(tmp_path):
    fmp4.write_segment(tmp_path / "cam" / "20261125_100000.mp4", 60.0)
    IndexWriter().handle([Job(tmp_path, "cam", "20261125_100000.mp4")])
    row = rows(tmp_path)["20261125_100000.mp4"]
    assert row.playable and row.duration == pytest.approx(60.0) and row.start == T0
    assert row.size == (tmp_path / "cam" / "20261125_100000.mp4").stat().st_size


def test_one_batch_writes_many_cameras_and_skips_what_is_gone(tmp_path):
    jobs = []
    for camera in ("a", "b", "c"):
        for second in range(3):
            fmp4.write_segment(tmp_path / camera / name_at(T0 + second * 2), 2.0)
            jobs.append(Job(tmp_path, camera, name_at(T0 + second * 2)))
    jobs.append(Job(tmp_path, "a", name_at(T0 + 100)))  # moved aside or pruned meanwhile: no row, no error
    opened: list[Path] = []

    def open_index(mirror: Path) -> index.SegmentIndex:
        opened.append(mirror)
        return index.SegmentIndex(mirror, make_dir=True)

    IndexWriter(open_index=open_index).handle(jobs)
    assert opened == [tmp_path], "one connection for the batch"
    for camera in ("a", "b", "c"):
        assert sorted(rows(tmp_path, camera)) == [name_at(T0 + s * 2) for s in range(3)]


def test_a_segment_is_not_probed_twice_in_a_row(tmp_path):
    probed: list[Path] = []

    def probe(path: Path) -> mp4.SegmentInfo:
        probed.append(path)
        return mp4.SegmentInfo(0.0, 0, False, "unreadable: No such file or directory")

    writer = IndexWriter(probe=probe)
    writer.handle([Job(tmp_path, "cam", name_at(T0)), Job(tmp_path, "cam", name_at(T0))])
    writer.handle([Job(tmp_path, "cam", name_at(T0), T0 - 10, T0 + 0.5)])  # its ffmpeg ended after it
    assert probed == [tmp_path / "cam" / name_at(T0)]


def test_an_ended_ffmpeg_also_gets_the_segments_opened_after_the_last_one_seen(tmp_path):
    """The worker looks once a second: a segment opened just before the end is unseen. Names are
    looked up from the second after the last known one up to the end; older ones are left alone."""
    cam = tmp_path / "cam"
    for second in (-30, 0, 2, 3):
        fmp4.write_segment(cam / name_at(T0 + second), 1.0)
    fmp4.write_segment(cam / name_at(T0 + 9), 1.0)  # after ffmpeg's end: another ffmpeg's
    IndexWriter().handle([Job(tmp_path, "cam", name_at(T0), since=T0 - 5, until=T0 + 3.7)])
    assert sorted(rows(tmp_path)) == [name_at(T0), name_at(T0 + 2), name_at(T0 + 3)]


def test_an_ended_ffmpeg_without_a_known_segment_looks_from_its_start(tmp_path):
    cam = tmp_path / "cam"
    for second in (-3, -1, 4):
        fmp4.write_segment(cam / name_at(T0 + second), 1.0)
    IndexWriter().handle([Job(tmp_path, "cam", None, since=T0, until=T0 + 5)])
    assert sorted(rows(tmp_path)) == [name_at(T0 - 1), name_at(T0 + 4)], "from 2 s before its start (names drop fractions)"


def test_a_long_stretch_after_an_end_is_listed_not_looked_up(tmp_path, monkeypatch):
    cam = tmp_path / "cam"
    for second in (-60, 0, 500, 1000):
        fmp4.write_segment(cam / name_at(T0 + second), 1.0)
    looked_up: list[Path] = []
    monkeypatch.setattr(index_writer, "_is_file", lambda path: looked_up.append(path) or path.exists())
    IndexWriter().handle([Job(tmp_path, "cam", None, since=T0, until=T0 + 1000.5)])
    assert sorted(rows(tmp_path)) == [name_at(T0), name_at(T0 + 500), name_at(T0 + 1000)]
    assert looked_up == []
    IndexWriter().handle([Job(tmp_path, "cam", name_at(T0 + 1000), since=T0, until=T0 + 1003)])
    assert len(looked_up) == 3 and all(p.parent == cam for p in looked_up)


def test_a_segment_the_worker_never_saw_open_is_found_between_the_done_one_and_the_next(tmp_path, monkeypatch):
    """The worker looks once a second: a segment shorter than that (the first of a run often is)
    is never seen open. A done segment's job reaches up to the second before the one now open;
    names are looked up only from where the done segment ended (its own seconds say where)."""
    cam = tmp_path / "cam"
    fmp4.write_segment(cam / name_at(T0), 60.0)
    fmp4.write_segment(cam / name_at(T0 + 59), 0.5)  # unseen: ffmpeg moved on from it within the second
    fmp4.write_segment(cam / name_at(T0 + 60), 1.0)  # open now
    looked_up: list[Path] = []
    real = index_writer._is_file
    monkeypatch.setattr(index_writer, "_is_file", lambda path: looked_up.append(path) or real(path))
    IndexWriter().handle([Job(tmp_path, "cam", name_at(T0), None, T0 + 59)])
    assert sorted(rows(tmp_path)) == [name_at(T0), name_at(T0 + 59)]
    assert [p.name for p in looked_up] == [name_at(T0 + 58), name_at(T0 + 59)], "not the whole minute"


def test_the_first_segment_of_a_run_unseen_is_found_from_ffmpeg_s_start(tmp_path):
    cam = tmp_path / "cam"
    for second in (-5, 0, 1):
        fmp4.write_segment(cam / name_at(T0 + second), 1.0)
    IndexWriter().handle([Job(tmp_path, "cam", None, since=T0 - 1, until=T0)])  # ffmpeg started at T0 - 1, opened T0 + 1
    assert sorted(rows(tmp_path)) == [name_at(T0)]


def test_a_run_that_never_showed_a_segment_is_looked_up_over_its_own_seconds_only(tmp_path, monkeypatch):
    """A camera down for hours: each ffmpeg that ends names the last segment the worker ever saw,
    hours old; the look-ups cover this run only (earlier runs' ends covered theirs), never a
    listing of a directory of weeks of footage every back-off."""
    cam = tmp_path / "cam"
    fmp4.write_segment(cam / name_at(T0), 60.0)
    fmp4.write_segment(cam / name_at(T0 + 7205), 0.5)  # this run's only segment, never seen open
    monkeypatch.setattr(index_writer, "segment_names", lambda directory: pytest.fail("listed the directory"))
    IndexWriter().handle([Job(tmp_path, "cam", name_at(T0), since=T0 + 7200, until=T0 + 7215)])
    assert sorted(rows(tmp_path)) == [name_at(T0), name_at(T0 + 7205)]


def test_named_segments_of_a_batch_go_before_the_look_ups_after_ends(tmp_path):
    """At a stop every camera's last job comes at once, and the writer has only a moment: each
    camera's last known segment is written before any look-up for later ones."""
    order: list[str] = []

    def probe(path: Path) -> mp4.SegmentInfo:
        order.append(path.parent.name)
        return mp4.SegmentInfo(1.0, 10, True, None, 1)

    for camera in ("a", "b"):
        (tmp_path / camera).mkdir()
        (tmp_path / camera / name_at(T0 + 1)).write_bytes(b"x")
    IndexWriter(probe=probe).handle([Job(tmp_path, camera, name_at(T0), T0 - 60, T0 + 1.5) for camera in ("a", "b")])
    assert order == ["a", "b", "a", "b"]
    assert sorted(rows(tmp_path, "b")) == [name_at(T0), name_at(T0 + 1)]


def test_a_write_failure_is_logged_once_per_camera_and_never_raised(tmp_path, caplog):
    for camera in ("a", "b"):
        for second in range(3):
            fmp4.write_segment(tmp_path / camera / name_at(T0 + second), 1.0)
    index.index_path(tmp_path).mkdir(parents=True)  # not a database: every write fails
    writer = IndexWriter()
    with caplog.at_level(logging.INFO):
        for second in range(3):
            writer.handle([Job(tmp_path, camera, name_at(T0 + second)) for camera in ("a", "b")])
        failures = [r for r in caplog.records if "cannot index segment" in r.getMessage()]
        assert sorted(r.camera for r in failures) == ["a", "b"]  # type: ignore[attr-defined]
        index.index_path(tmp_path).rmdir()
        writer.handle([Job(tmp_path, "a", name_at(T0))])
    assert [r.camera for r in caplog.records if "written again" in r.getMessage()] == ["a"]  # type: ignore[attr-defined]
    assert name_at(T0) in rows(tmp_path, "a")


def test_jobs_are_decoded_only_when_every_part_is_what_the_master_sends(tmp_path):
    good = index_writer.encode_job(tmp_path, "cam", name_at(T0))
    ended = index_writer.encode_job(tmp_path, "cam", None, T0, T0 + 1)
    bad = [
        index_writer.encode_job(Path("relative"), "cam", name_at(T0)),
        index_writer.encode_job(tmp_path, "../etc", name_at(T0)),
        index_writer.encode_job(tmp_path, ".mirror-supervisor", name_at(T0)),
        index_writer.encode_job(tmp_path, "cam", "../../etc/passwd"),
        index_writer.encode_job(tmp_path, "cam", "notes.txt"),
        json.dumps({"mirror": str(tmp_path), "camera": "cam", "name": None, "until": [T0]}).encode() + b"\n",
        json.dumps({"mirror": str(tmp_path), "camera": "cam", "name": None, "since": "x", "until": 1}).encode() + b"\n",
        b'{"mirror": "/m", "camera": "cam", "name": null, "since": NaN, "until": 1}\n',
        b"[1, 2]\n",
        b"garbage\n",
    ]
    jobs, rest = index_writer.decode_jobs(b"".join([good, *bad, ended]) + good[:10])
    assert jobs == [Job(tmp_path, "cam", name_at(T0)), Job(tmp_path, "cam", None, T0, T0 + 1)]
    assert rest == good[:10]
    assert index_writer.decode_jobs(b"x" * (index_writer.MAX_LINE + 1)) == ([], b""), "a runaway line is dropped"


def test_serve_takes_batches_as_they_are_read_and_ends_at_end_of_file(tmp_path):
    lines = b"".join(index_writer.encode_job(tmp_path, "cam", name_at(T0 + s)) for s in range(3))
    chunks = [lines[:30], lines[30:], b""]  # a line split across reads
    batches: list[list[Job]] = []

    class Recorder(IndexWriter):
        def handle(self, jobs: list[Job]) -> None:
            batches.append(jobs)
            if len(batches) == 1:
                raise RuntimeError("a bug in one batch")  # logged, and the writer goes on

    assert index_writer.serve(7, Recorder(), read=lambda fd, size: chunks.pop(0)) == 0
    assert [[job.name for job in batch] for batch in batches] == [[], [name_at(T0 + s) for s in range(3)]]
