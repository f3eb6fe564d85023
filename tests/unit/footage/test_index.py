"""The segment index (index.py): a private cache in the mirror dir, written per segment."""

from __future__ import annotations

import datetime
import logging
import os
import pathlib
import shutil
import stat
import tempfile
import threading

import pytest
from support import fmp4
from support.forked import in_fork

from mirror_supervisor.footage import index, index_writer
from mirror_supervisor.retention.prune import prune_pass


def test_indexer_records_a_finished_segment(tmp_path):
    cam = tmp_path / "cam"
    fmp4.write_segment(cam / "20261125_100000.mp4", 60.0)
    index_writer.IndexWriter().handle([index_writer.Job(tmp_path, "cam", "20261125_100000.mp4")])  # the writer child's work
    with index.SegmentIndex(tmp_path, write=False) as db:
        rows = db.rows("cam", "", "~")
    row = rows["20261125_100000.mp4"]
    assert row.playable and row.duration == pytest.approx(60.0)
    assert row.start == datetime.datetime(2026, 11, 25, 10, tzinfo=datetime.UTC).timestamp()  # the name, UTC
    assert row.size == (cam / "20261125_100000.mp4").stat().st_size


def test_index_file_is_private_and_in_wal_mode(tmp_path):
    old = os.umask(0o002)
    try:
        with index.SegmentIndex(tmp_path, make_dir=True) as db:
            db.put("cam", [index.Row("20261125_100000.mp4", 1.0, 2.0, 3, 4, True, None)])
    finally:
        os.umask(old)
    path = index.index_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750 and path.parent.name == ".mirror-supervisor"
    with index.SegmentIndex(tmp_path, make_dir=True) as db:
        assert db._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_symlink_in_place_of_the_index_is_refused(tmp_path):
    (tmp_path / "elsewhere").write_text("")
    index.make_index_dir(tmp_path)
    os.symlink(tmp_path / "elsewhere", index.index_path(tmp_path))
    with pytest.raises(index.IndexError_):
        index.SegmentIndex(tmp_path, make_dir=True)


def test_a_write_failure_is_logged_once_and_never_raised(tmp_path, caplog):
    cam = tmp_path / "cam"
    for second in range(3):
        fmp4.write_segment(cam / f"20261125_10000{second}.mp4", 1.0)
    index.index_path(tmp_path).mkdir(parents=True)  # not a database: every write fails
    writer = index_writer.IndexWriter()
    with caplog.at_level(logging.WARNING):
        for second in range(3):
            writer.handle([index_writer.Job(tmp_path, "cam", f"20261125_10000{second}.mp4")])
    assert sum("cannot index segment" in r.getMessage() for r in caplog.records) == 1


def test_many_writers_at_once_lose_no_row(tmp_path):
    """Hundreds of workers write one small transaction each: WAL + busy timeout serialise them."""
    def writer(cam: int) -> None:
        for i in range(20):
            with index.SegmentIndex(tmp_path, make_dir=True) as db:
                db.put(f"c{cam}", [index.Row(f"20261125_1000{i:02d}.mp4", float(i), 1.0, 1, 1, True, None)])

    threads = [threading.Thread(target=writer, args=(cam,)) for cam in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with index.SegmentIndex(tmp_path, write=False) as db:
        assert all(len(db.rows(f"c{cam}", "", "~")) == 20 for cam in range(8))


def test_workers_opening_a_new_index_together_all_get_in(tmp_path):
    """Every worker opens a new index at once (a new mirror, a deleted index). Switching the new
    file to WAL can meet another connection's switch and SQLite then answers "database is locked"
    at once, without the busy timeout (seen in CI: a writer lost its row). The race is narrow, so
    it is run 200 times; before the fix 4-7 of 200 rounds lost a row here."""
    failures: list[str] = []

    def round_(directory) -> None:
        directory.mkdir()
        index.make_index_dir(directory)
        barrier = threading.Barrier(8)

        def writer(cam: int) -> None:
            barrier.wait()
            try:
                with index.SegmentIndex(directory) as db:
                    db.put(f"c{cam}", [index.Row("20261125_100000.mp4", 0.0, 1.0, 1, 1, True, None)])
            except index.IndexError_ as exc:
                failures.append(str(exc))

        threads = [threading.Thread(target=writer, args=(cam,)) for cam in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    for n in range(200):
        round_(tmp_path / str(n))
    assert failures == []
    with index.SegmentIndex(tmp_path / "199", write=False) as db:
        assert all(len(db.rows(f"c{cam}", "", "~")) == 1 for cam in range(8))
        assert db._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_pruned_files_leave_the_index(tmp_path):
    from mirror_supervisor.cameras.camera import Camera

    cam = tmp_path / "cam"
    base = datetime.datetime(2026, 11, 25, 10, tzinfo=datetime.UTC).timestamp()
    old = "20261125_080000.mp4"
    new = [f"20261125_10{minute:02d}00.mp4" for minute in range(0, 60)] + ["20261125_110000.mp4"]
    for i, name in enumerate([old, *new]):
        fmp4.write_segment(cam / name, 1.0)
        mtime = base - 7200 + 60 if name == old else base + 60 * i
        os.utime(cam / name, (mtime, mtime))
    with index.SegmentIndex(tmp_path, make_dir=True) as db:
        db.put("cam", [index.Row(n, 0.0, 1.0, 1, 1, True, None) for n in (old, *new)])
    report = prune_pass(tmp_path, [Camera(id="cam", retention_hours=1)], set(), now=base + 3700)
    assert report.cameras[0].deleted_files == 2, report.format_lines()
    left = {p.name for p in cam.iterdir()}
    assert old not in left and len(left) == len(new) - 1
    with index.SegmentIndex(tmp_path, write=False) as db:
        assert set(db.rows("cam", "", "~")) == left


def test_a_symlinked_index_directory_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", index.index_dir(tmp_path))
    with pytest.raises(index.IndexError_):
        index.SegmentIndex(tmp_path, make_dir=True)
    with pytest.raises(index.IndexError_):
        index.SegmentIndex(tmp_path)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_only_workers_create_the_index_directory(tmp_path):
    """``coverage`` or ``status`` run by root must not make a directory the workers cannot write."""
    with pytest.raises(index.IndexError_, match="no segment index yet"):
        index.SegmentIndex(tmp_path)
    assert not index.index_dir(tmp_path).exists()


@pytest.fixture
def shared_tmp():
    """A directory other users can traverse (pytest's tmp_path is private to root)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="ms-index-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a file for another user")
def test_root_creates_a_new_index_file_as_the_directory_owner(shared_tmp):
    """In a fork: root acts as the owner only where no other thread runs (support/forked.py)."""
    directory = index.make_index_dir(shared_tmp)
    os.chown(directory, 65534, 65534)

    def body() -> None:
        with index.SegmentIndex(shared_tmp) as db:
            db.put("cam", [index.Row("20261125_100000.mp4", 1.0, 2.0, 3, 4, True, None)])
        owners = {p.name: (p.stat().st_uid, p.stat().st_gid) for p in directory.iterdir()}
        assert owners and set(owners.values()) == {(65534, 65534)}, owners
        assert os.geteuid() == 0 and os.getegid() == 0  # root again afterwards

    in_fork(body)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
@pytest.mark.parametrize("mode", [0o775, 0o777])
def test_root_refuses_an_index_whose_mirror_dir_others_may_change(shared_tmp, mode):
    """Whoever may rename entries of the mirror dir could swap the index directory itself."""
    directory = index.make_index_dir(shared_tmp)
    os.chown(directory, 65534, 65534)
    shared_tmp.chmod(mode)
    with pytest.raises(index.IndexError_, match="writable by group or others"):
        index.SegmentIndex(shared_tmp)
    shared_tmp.chmod(mode | stat.S_ISVTX)  # sticky: only an entry's owner may rename it

    def body() -> None:  # in a fork: root acts as the owner only where no other thread runs
        with index.SegmentIndex(shared_tmp) as db:
            db.put("cam", [index.Row("20261125_100000.mp4", 1.0, 2.0, 3, 4, True, None)])

    in_fork(body)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_root_refuses_an_index_dir_that_a_third_user_could_swap(shared_tmp):
    mirror = shared_tmp / "mirror"
    mirror.mkdir(mode=0o755)
    os.chown(index.make_index_dir(mirror), 65534, 65534)
    os.chown(mirror, 54321, 54321)
    with pytest.raises(index.IndexError_, match="belongs to uid 54321"):
        index.SegmentIndex(mirror)
