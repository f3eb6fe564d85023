"""A long window over a short retention is listed, not looked up name by name (coverage_files.py,
``from_names``): a day of a hundred cameras was 144,000 ``stat`` calls, half a second of the
status page's first read (docs/benchmarks.md, "The status page").

The listing must find what a listing always found (the window's segment files and the one
before it), and must never count a segment that is gone: a name the directory no longer has, or
has as something other than a regular file, is not footage whatever its row says.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
from pathlib import Path

import pytest
from support import fmp4

from mirror_supervisor.footage import coverage, coverage_files, index, mp4

T0 = datetime.datetime(2026, 11, 25, 10, tzinfo=datetime.UTC).timestamp()
DAY = 86400.0
NOW = T0 + DAY + 30  # the window is the day [T0, T0 + DAY); the newest segment is being written
SEGMENT = 60.0


def name(epoch: float) -> str:
    return time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(epoch))


def indexed(directory: Path, starts: list[float]) -> None:
    """Segments as the workers leave them: a file each and its row (the files are not parsed when
    their rows match them, so they hold no video)."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    for start in starts:
        path = directory / name(start)
        path.write_bytes(b"\0" * 512)
        os.utime(path, (start + SEGMENT, start + SEGMENT))
        info = path.stat()
        rows.append(index.Row(path.name, start, SEGMENT, info.st_size, info.st_mtime_ns, True, None))
    with index.SegmentIndex(directory.parent, make_dir=True) as db:
        db.put(directory.name, rows)


def real(directory: Path, start: float, seconds: float, indexed_too: bool = False, **kwargs: object) -> str:
    path = fmp4.write_segment(directory / name(start), seconds, **kwargs)
    os.utime(path, (start + seconds, start + seconds))
    if indexed_too:
        with index.SegmentIndex(directory.parent, make_dir=True) as db:
            db.put(directory.name, [index.row_from(path.name, mp4.probe(path))])
    return path.name


def a_day(tmp_path: Path) -> Path:
    """A camera of a day and a quarter of 60 s segments, every finished one indexed, and what
    happens to a mirror: files deleted or replaced after they were indexed, segments the index
    never saw, a file whose timestamps leap, one moved aside, a name in the future, holes."""
    directory = tmp_path / "cam"
    starts = [T0 - 6 * 3600 + i * SEGMENT for i in range(int((DAY + 6 * 3600) / SEGMENT))]
    holes = {T0 + 3600 + i * SEGMENT for i in range(10)} | {T0 + 7200 + i * SEGMENT for i in range(3)}
    indexed(directory, [s for s in starts if s not in holes and s != T0 + 1800])
    (directory / name(T0 + 600)).unlink()  # deleted (pruned by hand) after it was indexed
    (directory / name(T0 + 660)).unlink()
    (directory / name(T0 + 900)).unlink()
    os.mkfifo(directory / name(T0 + 900))  # a FIFO where an indexed segment was
    (directory / name(T0 + 960)).unlink()
    os.symlink(name(T0 + 1020), directory / name(T0 + 960))  # a symlink to the next one
    (directory / name(T0 + 1200)).unlink()
    (directory / name(T0 + 1200)).mkdir()  # a directory
    real(directory, T0 + 1800, 60.0)  # never indexed (its worker was killed), among indexed ones
    real(directory, T0 + 3600 + 125, 50.0)  # never indexed, in a hole
    (directory / name(T0 + 3600 + 400)).write_bytes(b"not a video\n" * 50)  # garbage in the hole
    os.utime(directory / name(T0 + 3600 + 400), (T0 + 3600 + 401, T0 + 3600 + 401))
    (directory / name(T0 + 5400)).unlink()
    real(directory, T0 + 5400, 2.4, indexed_too=True, jump=21093.6)  # claims 21,096 s: clamped
    moved = name(T0 + 7200)[:-4] + "~1.mp4"  # moved aside after a clock step, indexed under that name
    real(directory, T0 + 7200, 60.0)
    os.rename(directory / name(T0 + 7200), directory / moved)
    with index.SegmentIndex(tmp_path) as db:
        db.put("cam", [index.row_from(moved, mp4.probe(directory / moved))])
    (directory / name(NOW + 600)).write_bytes(b"x" * 10)  # a name in the future
    newest = T0 + DAY - SEGMENT + 30
    (directory / name(newest - 30)).unlink()
    real(directory, newest, 20.0)  # being written: not indexed yet
    os.utime(directory, (NOW - 5, NOW - 5))
    return directory


def day(tmp_path: Path) -> coverage.Report:
    return coverage.compute(tmp_path, T0, T0 + DAY, now=NOW, pool=False, write_index=False)


def camera_fields(report: coverage.Report) -> list[dict]:
    return [dataclasses.asdict(cam) for cam in report.cameras]


def test_a_day_over_a_day_of_retention_is_listed_and_finds_what_a_listing_always_found(tmp_path, monkeypatch):
    a_day(tmp_path)
    listed = day(tmp_path)
    assert listed.listed == 1 and listed.looked_up < 10, "one listing, a look-up only for names without a row"
    with monkeypatch.context() as patch:  # the listing that stats every file (what a window without an index gets)
        patch.setattr(coverage_files, "LIST_FROM", 10**9)
        patch.setattr(coverage_files, "LOOK_UP_LIMIT", 0)
        every_file = day(tmp_path)
    assert every_file.listed == 1 and camera_fields(listed) == camera_fields(every_file)
    cam = listed.cameras[0]
    assert cam.problem is None and name(T0 + 3600 + 400) in cam.invalid
    assert [c.name for c in cam.clamped] == [name(T0 + 5400)]
    assert [(g.start - T0, g.end - T0) for g in cam.gaps][:4] == [(600, 720), (900, 1020), (1200, 1260),
                                                                 (3600, 3725)], "gone is not covered"


def test_the_listing_agrees_with_looking_names_up(tmp_path, monkeypatch):
    """Where both find the same files (every file outside the indexed ones lies in a hole), the
    answer is the same as looking every name up."""
    a_day(tmp_path)
    listed = day(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(coverage_files, "LIST_FROM", 10**9)
        by_name = day(tmp_path)
    assert listed.listed == 1 and by_name.listed == 0 and by_name.looked_up > 1400
    assert camera_fields(listed) == camera_fields(by_name)


def test_no_indexed_segment_is_stat_ed_when_listed(tmp_path, monkeypatch):
    directory = a_day(tmp_path)
    asked: list[str] = []
    real_stat = os.stat

    def recorded(path, *args, **kwargs):
        asked.append(os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else f"fd:{path}")
        return real_stat(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "stat", recorded)
        day(tmp_path)
    segments = sorted({Path(p).name for p in asked if p.endswith(".mp4")})
    unindexed = {name(T0 + 1800), name(T0 + 3600 + 125), name(T0 + 3600 + 400), name(T0 + DAY - SEGMENT + 30)}
    assert set(segments) <= unindexed, segments
    assert len(os.listdir(directory)) > 1500


def test_a_long_retention_is_looked_up_by_name(tmp_path):
    """Listing 30 days to find one costs more than 1,440 look-ups: the directory's size says so."""
    directory = tmp_path / "cam"
    indexed(directory, [T0 + i * SEGMENT for i in range(1440)])
    for i in range(1, 5000):
        (directory / name(T0 - i * SEGMENT)).write_bytes(b"")
    report = day(tmp_path)
    assert report.listed == 0 and report.looked_up >= 1440
    assert report.cameras[0].gaps == [] or report.cameras[0].gaps[0].start >= T0 + DAY - 60


@pytest.mark.parametrize(("size", "rows", "listed"), [
    (4096, 60, False),  # an hour: never listed, whatever the directory
    (61440, 1440, True),  # a day of 1,440 segments on ext4 (measured): listed
    (1440 * 20 * 3, 1440, True),
    (1440 * 20 * 3 + 1, 1440, False),
    (1_900_000, 1440, False),  # 30 days on ext4
    (4096, 999, False),
])
def test_whether_a_listing_is_worth_it(size, rows, listed):
    assert coverage_files.worth_listing(size, rows) is listed


def test_a_file_changed_in_place_after_it_was_indexed(tmp_path):
    """What a listing of names cannot see (docs/design.md, "Coverage"): a segment truncated under
    its own name after its row was written counts as its row says in the day's listing; a read
    that looks names up, as the last hour's (``status``, the metrics, the page's re-reads) does,
    finds its size changed, parses it again and shows the hole."""
    directory = tmp_path / "cam"
    indexed(directory, [T0 + i * SEGMENT for i in range(int(DAY / SEGMENT) - 30)])
    late = T0 + DAY - 30 * SEGMENT
    names = [real(directory, late + i * SEGMENT, SEGMENT, indexed_too=True) for i in range(29)]
    with open(directory / names[10], "r+b") as shrinking:
        shrinking.truncate(os.path.getsize(directory / names[10]) // 3)
    os.utime(directory, (NOW - 5, NOW - 5))
    hole_start = late + 10 * SEGMENT + 25  # about a third of it is left
    listed = day(tmp_path)
    assert listed.listed == 1 and not [g for g in listed.cameras[0].gaps if g.end <= late + 29 * SEGMENT]
    hour = coverage.compute(tmp_path, NOW - 3600, NOW, now=NOW, pool=False, write_index=False)
    assert hour.listed == 0 and hour.parsed >= 1
    assert [(round(g.start), round(g.end)) for g in hour.cameras[0].gaps][:1] == [
        (pytest.approx(hole_start, abs=6), late + 11 * SEGMENT)]
