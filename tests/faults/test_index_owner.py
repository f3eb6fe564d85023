"""Root in the workers' index directory: never steered into another file (index.py, owner.py).

``.mirror-supervisor/`` belongs to the ``--user`` account, so that account can swap any name in it
(and, when the mirror dir is its own too, the directory itself) for a symlink at any instant. A
real flipper process, running as that user, exchanges the index with a symlink to a victim
database (``renameat2(RENAME_EXCHANGE)``: the name is always there, one or the other) while root
opens, writes and prunes the index hundreds of times; the victim must never change. Before the
fix root followed the swapped name within 3 to 211 opens: it switched the victim to WAL, dropped
the victim's own ``segments`` and laid out the index's table in it, with a row.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import procs
from support.forked import in_fork
from support.users import unprivileged

from mirror_supervisor.footage import index
from mirror_supervisor.footage.index import INDEX_DIR, Row, SegmentIndex, forget_pruned, index_dir, index_path
from mirror_supervisor.plumbing import lifeline

RENAME_EXCHANGE = 2
OPENS = 1000  # the old code was steered within 3 to 211 opens (11 runs of a similar loop)
ROW = Row("20261125_100000.mp4", 1.0, 2.0, 3, 4, True, None)
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory other users can traverse (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="ms-index-owner-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _victim(directory: Path, name: str) -> Path:
    """Root's own database, with a ``segments`` table and the index's schema version, so that a
    steered open would write rows into it or drop its table."""
    directory.mkdir(mode=0o755, exist_ok=True)
    path = directory / name
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE segments (precious TEXT)")
    db.execute("INSERT INTO segments VALUES ('root''s data')")
    db.execute("PRAGMA user_version = 7")
    db.commit()
    db.close()
    return path


def _fingerprint(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def _index_of(mirror: Path, uid: int, gid: int) -> None:
    """The index as the workers leave it: made by them, theirs."""
    with SegmentIndex(mirror, make_dir=True) as db:
        db.put("cam", [ROW])
    for path in (index_dir(mirror), *index_dir(mirror).iterdir()):
        os.lchown(path, uid, gid)


@contextlib.contextmanager
def flipper(directory: Path, name: str, link: str, uid: int, gid: int) -> Iterator[int]:
    """A process of ``uid`` exchanging ``directory/name`` and ``directory/link`` as fast as it can
    (forked, not exec'd: the test's interpreter may not be reachable by that user); killed at the
    end, and by the kernel if the test dies first."""
    pid = os.fork()
    if pid == 0:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            a, b = os.fsencode(name), os.fsencode(link)
            for _ in range(50_000_000):  # bounded; killed long before
                libc.renameat2(fd, a, fd, b, RENAME_EXCHANGE)
        finally:
            os._exit(0)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _root_uses_the_index(mirror: Path) -> int:
    """What root does to the index (coverage writes back, the pruner forgets, status-like reads);
    returns how many opens failed (a swapped name is refused or not writable: fine). Run in a fork:
    root acts as the owner only where no other thread runs, and a thread left in the pytest
    process by another test would make every open fail and the test mean nothing."""
    return in_fork(lambda: _uses_the_index(mirror), timeout=600)


def _uses_the_index(mirror: Path) -> int:
    failed = 0
    for n in range(OPENS):
        try:
            if n % 3 == 0:
                with SegmentIndex(mirror) as db:
                    db.put("cam", [ROW])
            elif n % 3 == 1:
                with SegmentIndex(mirror, write=False) as db:
                    db.rows("cam", "", "~")
            elif forget_pruned(mirror, {"cam": ["20261125_090000.mp4"]}) is not None:
                failed += 1
        except index.IndexError_ as exc:
            assert "other threads run" not in str(exc), exc
            failed += 1
    return failed


def test_root_is_never_steered_into_another_database_by_a_swapped_index_file(shared_tmp):
    user = unprivileged()
    mirror = shared_tmp / "mirror"
    mirror.mkdir(mode=0o755)
    _index_of(mirror, user.pw_uid, user.pw_gid)
    victims = shared_tmp / "root-only"
    victim = _victim(victims, "victim.db")
    before = _fingerprint(victims)
    os.symlink(victim, index_dir(mirror) / "flip")
    os.lchown(index_dir(mirror) / "flip", user.pw_uid, user.pw_gid)
    with flipper(index_dir(mirror), index.INDEX_NAME, "flip", user.pw_uid, user.pw_gid):
        failed = _root_uses_the_index(mirror)
    assert _fingerprint(victims) == before, f"root changed the victim ({failed} of {OPENS} opens failed)"
    print(f"{failed} of {OPENS} opens failed while the index was being swapped")
    if index_path(mirror).is_symlink():  # the flipper stopped half way: put the index back
        os.rename(index_dir(mirror) / "flip", index_dir(mirror) / "real")
        os.replace(index_dir(mirror) / "real", index_path(mirror))

    def rows() -> dict:  # in a fork: root acts as the index's owner only where no other thread runs
        with SegmentIndex(mirror) as db:
            return db.rows("cam", "", "~")

    assert ROW.name in in_fork(rows)  # the index itself is still the workers' and usable
    assert {p.stat(follow_symlinks=False).st_uid for p in index_dir(mirror).iterdir()} == {user.pw_uid}


def test_root_is_never_steered_by_a_swapped_index_directory(shared_tmp):
    """The mirror dir is the user's too (README's setup: ``chown mirror-supervisor: /srv/mirror``),
    so the user can swap ``.mirror-supervisor`` itself for a link to a directory of root's that
    holds a file of the index's name."""
    user = unprivileged()
    mirror = shared_tmp / "mirror"
    mirror.mkdir(mode=0o755)
    _index_of(mirror, user.pw_uid, user.pw_gid)
    os.chown(mirror, user.pw_uid, user.pw_gid)
    victims = shared_tmp / "root-only"
    victim = _victim(victims, index.INDEX_NAME)
    with sqlite3.connect(victim) as db:  # the index's own layout: a steered write would succeed
        db.execute("DROP TABLE segments")
        db.execute(index._SCHEMA)  # noqa: SLF001
        db.execute(f"PRAGMA user_version = {index.SCHEMA_VERSION}")
    db.close()
    before = _fingerprint(victims)
    os.symlink(victims, mirror / "flip")
    os.lchown(mirror / "flip", user.pw_uid, user.pw_gid)
    with flipper(mirror, INDEX_DIR, "flip", user.pw_uid, user.pw_gid):
        failed = _root_uses_the_index(mirror)
    assert _fingerprint(victims) == before, f"root changed the victim ({failed} of {OPENS} opens failed)"
    print(f"{failed} of {OPENS} opens failed while the index directory was being swapped")


def test_links_planted_as_the_indexs_companion_files_lead_root_nowhere(shared_tmp):
    """SQLite opens ``-wal``, ``-shm`` and ``-journal`` by name next to the database, whenever it
    needs them. Links to root's files planted there by the directory's owner must not be written
    through (SQLite opens them with ``O_NOFOLLOW``; root acts as the owner anyway)."""
    user = unprivileged()
    mirror = shared_tmp / "mirror"
    mirror.mkdir(mode=0o755)
    _index_of(mirror, user.pw_uid, user.pw_gid)
    victims = shared_tmp / "root-only"
    victims.mkdir(mode=0o755)
    for suffix in ("-wal", "-shm", "-journal"):
        (victims / f"target{suffix}").write_bytes(b"root's" * 100)
        link = index_dir(mirror) / f"{index.INDEX_NAME}{suffix}"
        link.symlink_to(victims / f"target{suffix}")
        os.lchown(link, user.pw_uid, user.pw_gid)
    before = _fingerprint(victims)
    failed = _root_uses_the_index(mirror)
    assert _fingerprint(victims) == before, f"root wrote through a link ({failed} of {OPENS} opens failed)"


def _as_other(uid: int, gid: int, groups: list[int], work) -> str:
    """``work()`` in a forked child with those ids; returns its repr (or the exception's)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            try:
                text = repr(work())
            except Exception as exc:  # noqa: BLE001 - reported to the test
                text = f"{type(exc).__name__}: {exc}"
            os.write(write_end, text.encode()[:60000])
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    return text


def test_a_member_of_the_workers_group_reads_the_index_without_writing_it(shared_tmp):
    """``status`` and ``coverage`` run by the operator's account in the workers' group: the index
    (0640 in a 0750 directory) can be read, but not written, nor can SQLite create its ``-shm``
    there. Between segments no connection is open and the workers' last close removed ``-wal``
    and ``-shm``: a plain read-only open then failed ("attempt to write a readonly database")
    and every file was parsed again."""
    user = unprivileged()
    mirror = shared_tmp / "mirror"
    mirror.mkdir(mode=0o755)
    os.chown(mirror, user.pw_uid, user.pw_gid)

    def worker_writes() -> list[str]:
        with SegmentIndex(mirror, make_dir=True) as db:
            db.put("cam", [ROW])
        return sorted(p.name for p in index_dir(mirror).iterdir())

    assert _as_other(user.pw_uid, user.pw_gid, [], worker_writes) == repr([index.INDEX_NAME])
    before = _fingerprint(index_dir(mirror))

    def member_reads() -> list[str]:
        with SegmentIndex(mirror, write=False) as db:
            return sorted(db.rows("cam", "", "~"))

    member = (54321, 54321, [user.pw_gid])
    assert _as_other(*member, member_reads) == repr([ROW.name])

    def member_writes() -> str:
        with SegmentIndex(mirror) as db:
            db.put("cam", [ROW])
        return "written"

    assert "only reads it" in _as_other(*member, member_writes)
    assert _fingerprint(index_dir(mirror)) == before


def _parent_death_signal() -> int:
    value = ctypes.c_int(0)
    ctypes.CDLL(None, use_errno=True).prctl(PR_GET_PDEATHSIG, ctypes.byref(value), 0, 0, 0)
    return value.value


def test_a_helper_that_used_the_index_as_its_owner_still_dies_with_the_master(shared_tmp):
    """The kernel clears the parent-death signal when the effective ids change: the pruner or the
    coverage child, after using the index with the workers' rights, outlived a dead master
    (invariant 7). It is asked for again once root is back."""
    user = unprivileged()
    mirror = shared_tmp / "mirror"
    mirror.mkdir(mode=0o755)
    _index_of(mirror, user.pw_uid, user.pw_gid)
    read_end, write_end = os.pipe()  # helper -> test: its pid and its parent-death signal
    hold_r, hold_w = os.pipe()  # test -> master: closed when the master may die
    parent = os.fork()
    if parent == 0:  # the master
        try:
            os.close(read_end)
            os.close(hold_w)
            helper = os.fork()
            if helper == 0:  # the pruner
                try:
                    lifeline.die_with_parent(os.getppid(), signal.SIGKILL)
                    forget_pruned(mirror, {"cam": ["20261125_090000.mp4"]})
                    os.write(write_end, f"{os.getpid()} {_parent_death_signal()}\n".encode())
                    time.sleep(60)
                finally:
                    os._exit(0)
            os.close(write_end)  # a helper that fails gives the test EOF, not a hang
            os.read(hold_r, 1)
        finally:
            os._exit(0)
    os.close(write_end)
    os.close(hold_r)
    with os.fdopen(read_end, "rb") as pipe:
        line = pipe.readline().decode().split()
    os.close(hold_w)  # the master dies now
    os.waitpid(parent, 0)
    assert len(line) == 2, "the helper failed"
    helper = int(line[0])
    assert line[1] == str(int(signal.SIGKILL)), line
    procs.wait_for("the helper to die with its parent", lambda: not procs.alive(helper), 30)
