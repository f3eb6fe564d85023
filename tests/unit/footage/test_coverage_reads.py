"""What a coverage of the last hour reads (coverage.py, coverage_files.py): the files of the hour,
never the camera's whole history.

The coverage child of the master and `status` ask for the last hour of every camera, every
minute; a camera keeps 30 days of 60 s segments (43,200 files). Listing its directory costs in
proportion to the retention, so the hour's files come from the segment index (rows by name, that
is start time) and from looking names up, and the file system calls a run makes must not change
when a thousand older files are added.
"""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path

import pytest
from support import fmp4

from mirror_supervisor.footage import coverage, index, mp4

T0 = datetime.datetime(2026, 11, 25, 10, tzinfo=datetime.UTC).timestamp()
NOW = T0 + 3600 + 10  # the newest segment (T0 + 3600) is being written
LOOK_BACK = 3700  # a segment longer than an hour and a minute is not believed (timing.LONGEST_SEGMENT)


def name(epoch: float) -> str:
    return time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(epoch))


def write(directory: Path, start: float, seconds: float = 60.0) -> str:
    path = fmp4.write_segment(directory / name(start), seconds)
    os.utime(path, (start + seconds, start + seconds))
    return path.name


def recorded(tmp_path: Path, start: float = T0 - 60, end: float = NOW, indexed: bool = True) -> Path:
    """A camera recording 60 s segments, each indexed by its worker once finished, as workers do
    (the newest one, still being written, is not)."""
    directory = tmp_path / "cam"
    names = [write(directory, at, min(60.0, end - at)) for at in range(int(start), int(end), 60)]
    if indexed:
        index_rows(directory, names[:-1])
    return directory


def index_rows(directory: Path, names: list[str]) -> None:
    """The rows a worker's indexer writes for finished segments (written here at once: the worker's
    indexer queues at most a few dozen names for its thread)."""
    with index.SegmentIndex(directory.parent, make_dir=True) as db:
        db.put(directory.name, [index.row_from(name, mp4.probe(directory / name)) for name in names])


def add_history(directory: Path, files: int) -> None:
    """Older footage: ``files`` segments a day and more before the window (empty: nothing should
    ever read them)."""
    for i in range(files):
        (directory / name(T0 - 86400 - 60 * i)).write_bytes(b"")


class Calls:
    """Every directory listing and every file name stat'ed or opened, through ``os``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.listed: list[str] = []
        self.names: list[str] = []
        for attr in ("stat", "lstat", "open"):
            monkeypatch.setattr(os, attr, self._wrap(getattr(os, attr), self.names))
        for attr in ("scandir", "listdir"):
            monkeypatch.setattr(os, attr, self._wrap(getattr(os, attr), self.listed))

    @staticmethod
    def _wrap(real, into: list[str]):
        def recorded_call(path=".", *args, **kwargs):
            into.append(os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else f"fd:{path}")
            return real(path, *args, **kwargs)
        return recorded_call

    def segment_names(self) -> list[str]:
        return sorted({Path(p).name for p in self.names if Path(p).name.endswith(".mp4")})


def last_hour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[coverage.Report, Calls]:
    with monkeypatch.context() as patch:
        calls = Calls(patch)
        report = coverage.compute(tmp_path, NOW - 3600, NOW, now=NOW, pool=False)
    return report, calls


def test_the_last_hour_reads_no_file_and_lists_nothing_outside_the_window(tmp_path, monkeypatch):
    directory = recorded(tmp_path)
    last_hour(tmp_path, monkeypatch)  # the segment being written, not indexed yet, is parsed and its row kept
    before, calls_before = last_hour(tmp_path, monkeypatch)
    add_history(directory, 1000)
    after, calls_after = last_hour(tmp_path, monkeypatch)
    assert str(directory) not in calls_after.listed, "the camera directory was listed"
    assert calls_after.segment_names() and min(calls_after.segment_names()) >= name(NOW - 3600 - LOOK_BACK)
    assert calls_after.segment_names() == calls_before.segment_names()
    assert len(calls_after.names) == len(calls_before.names)
    cam = after.cameras[0]
    assert (cam.gaps, cam.invalid, cam.problem) == ([], [], None)
    assert cam.coverage == pytest.approx(1.0) and cam.coverage_since_first == pytest.approx(1.0)
    assert after.parsed == before.parsed == 0


def test_without_the_index_the_hour_is_still_right_and_says_so(tmp_path, monkeypatch):
    directory = recorded(tmp_path, indexed=False)
    add_history(directory, 1000)
    report, calls = last_hour(tmp_path, monkeypatch)
    cam = report.cameras[0]
    assert (cam.gaps, cam.invalid) == ([], []) and cam.coverage == pytest.approx(1.0)
    assert any("no segment index" in note for note in report.notes), report.notes
    assert min(calls.segment_names()) >= name(NOW - 3600 - LOOK_BACK)


def test_a_segment_the_index_missed_is_found_by_its_name(tmp_path, monkeypatch):
    """A worker killed before it indexed its segment, or whose index writes failed; and a file
    that is no segment, in the middle of a gap."""
    directory = recorded(tmp_path, end=T0 + 1800)  # the last of these (T0 + 1740) is not indexed
    write(directory, T0 + 1800)  # nor this one
    recorded(tmp_path, start=T0 + 1860)
    (directory / name(T0 + 2400)).unlink()
    (directory / name(T0 + 2460)).unlink()
    garbage = name(T0 + 2430)
    (directory / garbage).write_bytes(b"not a video\n" * 100)
    os.utime(directory / garbage, (T0 + 2431, T0 + 2431))
    report, _ = last_hour(tmp_path, monkeypatch)
    cam = report.cameras[0]
    assert [(g.start - T0, g.end - T0) for g in cam.gaps] == [(2400, 2520)]
    assert cam.invalid == [garbage]
    assert any("not in the segment index" in note for note in report.notes), report.notes


def test_a_camera_back_from_a_long_outage_counts_the_outage(tmp_path, monkeypatch):
    """Coverage since the first footage must not mistake a camera back after hours for a new one."""
    recorded(tmp_path, start=T0 - 7 * 3600, end=T0 - 3 * 3600)
    recorded(tmp_path, start=T0 + 3000)
    for keep_index in (True, False):
        if not keep_index:
            for suffix in ("", "-wal", "-shm"):
                Path(str(index.index_path(tmp_path)) + suffix).unlink(missing_ok=True)
        cam = last_hour(tmp_path, monkeypatch)[0].cameras[0]
        assert cam.coverage_since_first == pytest.approx(cam.coverage) == pytest.approx(610 / 3600, abs=0.01)


def test_a_new_camera_is_measured_from_its_first_segment(tmp_path, monkeypatch):
    recorded(tmp_path, start=T0 + 3000)
    cam = last_hour(tmp_path, monkeypatch)[0].cameras[0]
    assert cam.coverage_since_first == pytest.approx(1.0)


def test_a_missing_camera_directory_is_a_problem(tmp_path, monkeypatch):
    recorded(tmp_path)
    report = coverage.compute(tmp_path, NOW - 3600, NOW, cameras=["cam", "gone"], now=NOW, pool=False)
    assert [c.problem is None for c in report.cameras] == [True, False]
    assert "no directory" in report.cameras[1].problem


def test_a_camera_down_for_hours_looks_nothing_up(tmp_path, monkeypatch):
    """No segment is named after its directory's mtime (creating one sets it): a camera that has
    recorded nothing for two hours has no name to look up in the last hour."""
    directory = recorded(tmp_path, start=T0 - 6 * 3600, end=T0 - 7200)
    os.utime(directory, (T0 - 7200, T0 - 7200))
    report, calls = last_hour(tmp_path, monkeypatch)
    cam = report.cameras[0]
    assert report.looked_up < 5 and len(calls.segment_names()) < 5, calls.segment_names()
    assert cam.coverage == cam.coverage_since_first == 0.0 and len(cam.gaps) == 1


def test_a_directory_mtime_older_than_its_names_is_not_trusted(tmp_path, monkeypatch):
    """A file system that does not keep directory mtimes: the segment being written is still found."""
    directory = recorded(tmp_path)
    os.utime(directory, (T0, T0))
    cam = last_hour(tmp_path, monkeypatch)[0].cameras[0]
    assert cam.gaps == [] and cam.coverage == pytest.approx(1.0)


def test_a_day_without_the_index_is_listed_and_says_so(tmp_path):
    recorded(tmp_path, start=T0 - 86400, indexed=False)
    report = coverage.compute(tmp_path, NOW - 86400, NOW, now=NOW, pool=False)
    assert report.listed == 1 and any("listed" in note for note in report.notes), report.notes
    assert report.cameras[0].gaps == [] and report.cameras[0].coverage == pytest.approx(1.0)


def test_a_file_between_two_close_gaps_is_counted_once(tmp_path, monkeypatch):
    """The stretches looked up around two gaps a few seconds apart overlap."""
    directory = tmp_path / "cam"
    index_rows(directory, [write(directory, start, seconds) for start, seconds in ((T0 - 60, 660.0), (T0 + 700, 4.0),
                                                                                  (T0 + 800, 2810.0))])
    between = write(directory, T0 + 699, 1.0)  # not indexed, inside both stretches
    report, _ = last_hour(tmp_path, monkeypatch)
    cam = report.cameras[0]
    assert [item for item in sorted(os.listdir(directory))] == sorted({name(T0 - 60), between, name(T0 + 700),
                                                                       name(T0 + 800)})
    assert cam.segments == 4 and [(g.start - T0, g.end - T0) for g in cam.gaps] == [(600, 699), (704, 800)]


def test_a_name_in_the_future_is_looked_up_whatever_the_directory_mtime(tmp_path):
    """The directory's mtime says nothing of names after now (a clock stepped back, a file made by hand)."""
    directory = recorded(tmp_path, start=T0 - 6 * 3600, end=T0 - 7200)
    ahead = name(NOW + 60)
    (directory / ahead).write_bytes(b"not a video\n" * 100)
    os.utime(directory / ahead, (NOW - 600, NOW - 600))
    os.utime(directory, (T0 - 7200, T0 - 7200))
    cam = coverage.compute(tmp_path, NOW - 3600, NOW + 120, now=NOW, pool=False).cameras[0]
    assert cam.invalid == [ahead]
