"""The timeline reader (web/reader.py): blocks read in windows, newest first; a real forked child
whose answers arrive line by line; one past its time limit is killed; a failure is said; and the
child holds none of the listener's sockets."""

from __future__ import annotations

import datetime
import os
import socket
import time

import pytest
from support import fmp4

from mirror_supervisor.web import reader
from mirror_supervisor.web.blocks import BLOCK, Store
from mirror_supervisor.web.reader import Job, Reader

T0 = datetime.datetime(2026, 11, 25, 10, tzinfo=datetime.UTC).timestamp()


name, record = fmp4.segment_name, fmp4.record


@pytest.fixture
def mirror(tmp_path):
    """One camera: recording across two hours with a 10-minute outage in the second, one invalid file."""
    record(tmp_path / "cam", T0 - 300, T0 + BLOCK + 600)
    record(tmp_path / "cam", T0 + BLOCK + 1200, T0 + 2 * BLOCK)
    (tmp_path / "cam" / name(T0 + BLOCK + 900)).write_bytes(b"not an mp4")
    return tmp_path


def test_neighbouring_blocks_are_read_together_newest_first_at_most_a_days_window_at_once():
    """A day's window that does not start on the hour touches 25 blocks: one read."""
    hours = [T0 + i * BLOCK for i in range(30)]
    assert reader.runs(hours[:3] + hours[5:6]) == [(hours[5], hours[6]), (hours[0], hours[3])]
    day = reader.runs(hours)
    assert day == [(hours[5], hours[29] + BLOCK), (hours[0], hours[5])] and (day[0][1] - day[0][0]) == 25 * BLOCK


def test_a_run_answers_each_block_with_its_own_stretches(mirror):
    job = Job(str(mirror), None, (T0, T0 + BLOCK), ("cam",))
    second, first = reader.read_run(job, T0, T0 + 2 * BLOCK)
    assert (first["start"], second["start"]) == (T0, T0 + BLOCK)
    assert first["known_until"] == T0 + BLOCK and second["known_until"] == T0 + 2 * BLOCK
    assert first["cameras"]["cam"]["covered"] == [[T0, T0 + BLOCK]], "cut at the block's end"
    assert second["cameras"]["cam"]["covered"] == [[T0 + BLOCK, T0 + BLOCK + 600], [T0 + BLOCK + 1200, T0 + 2 * BLOCK]]
    assert first["cameras"]["cam"]["invalid"] == []
    assert second["cameras"]["cam"]["invalid"] == [[name(T0 + BLOCK + 900), T0 + BLOCK + 900]]
    assert first["cameras"]["cam"]["first"] <= T0, "footage before the block: no \"before\" stretch"
    assert first["known_from"] == T0 and second["known_from"] == T0 + BLOCK


def test_the_reader_writes_nothing_into_the_index(mirror):
    from mirror_supervisor.footage import index

    with index.SegmentIndex(mirror, make_dir=True):
        pass  # as the workers leave it: there, and knowing none of these files
    job = Job(str(mirror), None, (T0,), ("cam",))
    (answer,) = reader.read_run(job, T0, T0 + BLOCK)
    assert answer["cameras"]["cam"]["covered"] == [[T0, T0 + BLOCK]], "every file parsed instead"
    with index.SegmentIndex(mirror, write=False) as db:
        assert db.rows("cam", "", "\x7f") == {}, "the rows of the files it parsed are left to the workers"


def test_the_oldest_block_is_read_from_the_windows_start(mirror):
    job = Job(str(mirror), None, (T0,), ("cam",), since=T0 + 600)
    (answer,) = reader.read_run(job, T0, T0 + BLOCK)
    assert answer["known_from"] == T0 + 600 and answer["cameras"]["cam"]["covered"] == [[T0 + 600, T0 + BLOCK]]


def test_a_forked_reader_fills_the_store(mirror):
    store, read = Store(str(mirror), None), Reader()
    assert read.start(Job(str(mirror), None, (T0 + BLOCK, T0), ("cam", "../etc")))
    assert not read.start(Job(str(mirror), None, (T0,), ("cam",))), "one at a time"
    for answer in read.wait(30):
        store.take(answer, mono=0.0)
    assert not read.running and read.failure is None
    drawn, problem = store.timeline("cam", T0, T0 + 2 * BLOCK)
    assert problem is None
    assert [(s.kind, s.start - T0, s.end - T0) for s in drawn.stretches if s.kind != "covered"] == [
        ("gap", BLOCK + 600, BLOCK + 1200), ("invalid", BLOCK + 900, BLOCK + 900)]
    assert set(store.blocks[T0].cameras) == {"cam"}, "an id that is no camera id is never read"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sleeper(child) -> int:
    """A fork whose child hangs, as one stuck on a hung volume would (until killed)."""
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    return pid


def test_a_reader_past_its_time_limit_is_killed_and_reaped():
    clock = Clock()
    read = Reader(fork=sleeper, clock=clock)
    assert read.start(Job("/nowhere", None, (T0,), ("cam",)))
    pid = read.pid
    assert read.collect() == [] and read.running
    clock.now = reader.TIME_LIMIT + 1
    read.collect()
    assert read.killed and "was killed" in (read.failure or "")
    read.wait(5)
    assert not read.running
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_a_failure_in_the_child_is_said(mirror, monkeypatch):
    def broken(job, start, end):
        raise RuntimeError("the index broke")

    monkeypatch.setattr(reader, "read_run", broken)
    read = Reader()
    assert read.start(Job(str(mirror), None, (T0,), ("cam",)))
    assert read.wait(30) == [] and not read.running
    assert read.failure == "the timeline reader failed: RuntimeError: the index broke"


def links(pid: int) -> set[str]:
    """What a process's descriptors lead to (one closed meanwhile is left out)."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            continue
    return found


def test_the_child_holds_none_of_the_listeners_sockets(mirror, monkeypatch):
    def slow(job, start, end):
        time.sleep(3)
        return []

    monkeypatch.setattr(reader, "read_run", slow)
    server = socket.create_server(("127.0.0.1", 0))
    try:
        read = Reader()
        assert read.start(Job(str(mirror), None, (T0,), ("cam",)))
        ours = f"socket:[{os.fstat(server.fileno()).st_ino}]"
        deadline = time.monotonic() + 2
        held = None
        while time.monotonic() < deadline:  # the child closes them as it starts
            held = links(read.pid)
            if ours not in held and any("memfd:" in link for link in held):
                break
            time.sleep(0.05)
        assert held is not None and ours not in held
        read.wait(10)
    finally:
        server.close()
