"""The master's side of the segment index writer (master/index_child.py): events in, jobs out over
a real pipe, the child's fork, respawn and stop on a fake clock, and the master's loop wired to it.

The writer's own work is tested in tests/unit/footage/test_index_writer.py; a real master, ffmpeg
and camera in tests/integration/test_index_writer_child.py.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import fmp4
from test_master_loop import FakeSource, FakeSystem, loop  # noqa: F401 - the fixture

from mirror_supervisor.cameras.camera import Camera
from mirror_supervisor.footage import index, index_writer
from mirror_supervisor.master import index_child
from mirror_supervisor.master.index_child import CLOSE_SECONDS, IndexChild
from mirror_supervisor.master.slot import Worker
from mirror_supervisor.master.wanted import Wanted
from mirror_supervisor.plumbing import lifeline
from mirror_supervisor.worker import report
from mirror_supervisor.worker.ffmpeg import SEGMENT_PATTERN


class Slot:
    def __init__(self, mirror: Path, camera: str, generation: int = 3) -> None:
        self.worker = Worker(100, generation, ("ffmpeg", "-i", "x", str(mirror / camera / SEGMENT_PATTERN)), 0.0)


def done(camera: str, generation: int, name: str) -> bytes:
    """The worker's line when ffmpeg moved on from ``name`` to the segment 2 s later."""
    opened = time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(index.start_of(name) + 2))
    return report.segment_done(camera, generation, name, opened, 1.8e9)


def until_of(name: str) -> float:
    """A done job's look-ups end before the segment opened next began."""
    return index.start_of(name) + 2 - 1


def event(line: bytes) -> dict:
    (decoded,), _ = report.decode_reports(line)
    return decoded


def drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 1 << 21)
    except BlockingIOError:
        return b""
    finally:
        os.set_blocking(fd, True)


@pytest.fixture
def child():
    made: list[IndexChild] = []

    def make(system=None) -> IndexChild:
        made.append(IndexChild(system or FakeSystem(), None))
        return made[-1]

    yield make
    for one in made:
        lifeline.close_fds(one.fds)


def test_events_become_jobs_for_the_directory_the_worker_records_into(tmp_path, child):
    ix = child()
    slot = Slot(tmp_path, "cam")
    assert not ix.took({"camera": "cam", "generation": 3, "state": "recording"}, slot), "a report is the master's"
    assert ix.fds == (), "no pipe before the first job"
    assert ix.took(event(done("cam", 3, "20261125_100000.mp4")), slot)
    assert ix.took(event(report.ffmpeg_ended("cam", 3, None, 1.8e9, 1.8e9 + 5)), slot)
    assert ix.took(event(done("cam", 2, "20261125_100002.mp4")), slot), "an older generation's: ignored"
    assert ix.took(event(done("gone", 3, "20261125_100002.mp4")), None)
    jobs, rest = index_writer.decode_jobs(drain(ix.fds[0]))
    first = "20261125_100000.mp4"
    assert rest == b"" and jobs == [index_writer.Job(tmp_path, "cam", first, 1.8e9, until_of(first)),
                                     index_writer.Job(tmp_path, "cam", None, 1.8e9, 1.8e9 + 5)]


def test_worker_lines_are_atomic_and_never_block(tmp_path):
    read_end, write_end = os.pipe2(os.O_NONBLOCK)
    try:
        sent = 0
        while report.send_line(write_end, done("cam", 1, "20261125_100000.mp4")):
            sent += 1
        assert sent > 100 and not report.send_line(write_end, done("cam", 1, "20261125_100000.mp4"))
        assert done("c" * 4000, 1, "20261125_100000.mp4") == b"", "never a line that could interleave"
        lines = os.read(read_end, 1 << 20).split(b"\n")
        assert all(json.loads(line)[report.EVENT] == report.SEGMENT_DONE for line in lines[:-1]) and lines[-1] == b""
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_full_pipe_drops_jobs_logged_once_and_their_return_is_logged_once(tmp_path, child, caplog, monkeypatch):
    monkeypatch.setattr(index_child, "PIPE_BYTES", 4096)
    ix, slot = child(), Slot(tmp_path, "cam")
    with caplog.at_level(logging.INFO):
        for n in range(200):
            ix.took(event(done("cam", 3, f"20261125_10{n // 60:02d}{n % 60:02d}.mp4")), slot)
        assert ix.dropped > 100
        stuck = [r for r in caplog.records if "stuck or behind" in r.getMessage()]
        assert len(stuck) == 1
        os.read(ix.fds[0], 1000)  # the writer takes a few: not enough room to say it moves again
        ix.took(event(done("cam", 3, "20261125_110000.mp4")), slot)
        assert not any("takes segment events again" in r.getMessage() for r in caplog.records)
        drain(ix.fds[0])
        dropped = ix.dropped
        ix.took(event(done("cam", 3, "20261125_110001.mp4")), slot)
    again = [r.getMessage() for r in caplog.records if "takes segment events again" in r.getMessage()]
    assert len(again) == 1 and f"{dropped} were dropped" in again[0] and ix.dropped == 0
    assert [job.name for job in index_writer.decode_jobs(drain(ix.fds[0]))[0]] == ["20261125_110001.mp4"]


def test_the_writer_is_forked_at_the_first_job_and_again_after_a_back_off(tmp_path, child):
    system = FakeSystem()
    ix = child(system)
    ix.tick((), tmp_path)
    assert system.forked == [] and ix.next_deadline() is None, "nothing to write, no writer"
    ix.took(event(done("cam", 3, "20261125_100000.mp4")), Slot(tmp_path, "cam"))
    ix.tick((), tmp_path)
    assert system.forked == [100] and ix.pids() == {100} and ix.next_deadline() is None
    system.now += 5
    assert ix.reaped(100, -9)  # a quick death
    assert ix.next_deadline() == system.now + 1.0 and not ix.reaped(100, -9)
    ix.tick((), tmp_path)
    assert system.forked == [100], "not before its back-off"
    system.now += 1.0
    ix.tick((), tmp_path)
    assert system.forked == [100, 101]
    system.now += 60
    assert ix.reaped(101, 0)
    ix.tick((), tmp_path)
    assert system.forked == [100, 101, 102], "after a healthy life: at once"


def test_at_a_stop_the_writer_gets_its_moment_after_the_last_worker_then_sigkill(tmp_path, child):
    system = FakeSystem()
    ix = child(system)
    ix.took(event(done("cam", 3, "20261125_100000.mp4")), Slot(tmp_path, "cam"))
    ix.tick((), tmp_path)
    writers_copy = os.dup(ix.fds[0])  # what the forked writer holds
    try:
        ix.stop(True, (), tmp_path)
        assert ix.fds != () and ix.next_deadline() is None, "workers still stopping: their last jobs may come"
        ix.took(event(report.ffmpeg_ended("cam", 3, "20261125_100001.mp4", 1.8e9, 1.8e9 + 3)), Slot(tmp_path, "cam"))
        system.now += 2
        ix.stop(False, (), tmp_path)
        assert ix.fds == () and ix.next_deadline() == system.now + CLOSE_SECONDS
        data = os.read(writers_copy, 1 << 16)
        assert [job.name for job in index_writer.decode_jobs(data)[0]] == ["20261125_100000.mp4", "20261125_100001.mp4"]
        assert os.read(writers_copy, 100) == b"", "end of file: the writer ends once it has written the rest"
    finally:
        os.close(writers_copy)
    system.now += CLOSE_SECONDS - 0.01
    ix.stop(False, (), tmp_path)
    assert system.sent == []
    system.now += 0.02
    ix.stop(False, (), tmp_path)
    ix.stop(False, (), tmp_path)
    assert system.sent == [("kill", 100, signal.SIGKILL)] and ix.next_deadline() is None
    assert ix.reaped(100, -9) and ix.pids() == set() and system.forked == [100], "not replaced at a stop"


def test_a_stop_forks_a_writer_for_jobs_that_have_none(tmp_path, child):
    system = FakeSystem()
    ix = child(system)
    ix.took(event(done("cam", 3, "20261125_100000.mp4")), Slot(tmp_path, "cam"))
    ix.stop(False, (), tmp_path)
    assert system.forked == [100] and ix.fds == ()
    other = child(FakeSystem())
    other.stop(False, (), tmp_path)
    assert other.system.forked == [], "nothing was ever sent: no writer at all"


def test_a_writer_stuck_on_the_index_never_holds_up_the_master(tmp_path, child, monkeypatch, caplog):
    """The master never waits on the index: a real writer child stuck on the index (here: an
    exclusive lock held by another connection, and a busy timeout per try) leaves ``took`` to
    return at once; past the pipe's bound jobs are dropped, logged once; once the lock is gone the
    writer goes on, and at the stop it writes what is left and ends."""
    monkeypatch.setattr(index_child, "PIPE_BYTES", 4096)
    cam = tmp_path / "cam"
    names = [f"20261125_10{n // 60:02d}{n % 60:02d}.mp4" for n in range(120)]
    for name in names:
        fmp4.write_segment(cam / name, 1.0)
    with index.SegmentIndex(tmp_path, make_dir=True) as db:
        db.put("cam", [])
    holder = subprocess.Popen(  # another process: a connection open across the writer's fork would share its locks
        [sys.executable, "-c", "import sqlite3, sys; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
         "db.execute('BEGIN EXCLUSIVE'); print('held', flush=True); sys.stdin.read()", str(index.index_path(tmp_path))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdin is not None and holder.stdout.readline() == "held\n"

    class Real:
        monotonic = staticmethod(time.monotonic)
        kill = staticmethod(os.kill)

        @staticmethod
        def fork(main) -> int:
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = main()
                finally:
                    os._exit(code)
            return pid

    ix, slot = child(Real()), Slot(tmp_path, "cam")
    ix.took(event(done("cam", 3, names[0])), slot)
    ix.tick((), tmp_path)
    (pid,) = ix.pids()
    try:
        time.sleep(0.3)  # it took the first job and waits on the lock
        began = time.monotonic()
        with caplog.at_level(logging.INFO):
            for name in names[1:-1]:
                ix.took(event(done("cam", 3, name)), slot)
            assert time.monotonic() - began < 0.5, "took() never waits for the writer"
            assert ix.dropped > 0 and sum("stuck or behind" in r.getMessage() for r in caplog.records) == 1
            holder.kill()  # the lock goes with it (its pipes' ends are in the writer too: no end of file)
            holder.wait(timeout=30)
            deadline = time.monotonic() + 60
            while ix._room() is False or drained_not(ix):  # noqa: SLF001
                assert time.monotonic() < deadline
                time.sleep(0.1)
            ix.took(event(done("cam", 3, names[-1])), slot)
            assert any("takes segment events again" in r.getMessage() for r in caplog.records)
        ix.stop(False, (), tmp_path)
        _, status = os.waitpid(pid, 0)
        assert ix.reaped(pid, os.waitstatus_to_exitcode(status)) and ix.pids() == set()
        assert os.waitstatus_to_exitcode(status) == 0, "ended at the end of its pipe"
    finally:
        holder.kill()
        holder.wait()
        if ix.pids():
            lifeline.signal_process(pid, signal.SIGKILL)
    with index.SegmentIndex(tmp_path, write=False) as db:
        assert names[-1] in db.rows("cam", "", "~"), "the writer went on after the lock was gone"


def drained_not(ix: IndexChild) -> bool:
    """Jobs still wait in the pipe."""
    import fcntl
    import struct
    import termios

    return struct.unpack("i", fcntl.ioctl(ix.fds[1], termios.FIONREAD, b"\0\0\0\0"))[0] > 0


def test_the_master_forwards_events_and_stops_the_writer_after_its_workers(loop, tmp_path):  # noqa: F811
    """The master's loop with the fake system: an event line among the reports reaches the index
    child (not the slot's report), the writer is forked, and at SIGTERM the worker's last line,
    still in the pipe when its exit is reaped, is forwarded first; the writer is asked to end only
    once the last worker is gone, and SIGKILLed CLOSE_SECONDS later, not sooner."""
    master, system, source = loop
    mirror = tmp_path / "mirror"
    camera = Camera("cam", mirrored=True, url="rtsp://h/cam")
    source.answer = Wanted({"cam": camera}, {"cam": ("ffmpeg", str(mirror / "cam" / SEGMENT_PATTERN))}, {}, [camera])
    lines: list[bytes] = []
    moments: dict[str, float] = {}
    system.read = lambda fd: lines.pop(0) if lines else b""
    real_kill = system.kill

    def kill(pid: int, sig: int) -> None:
        real_kill(pid, sig)
        moments.setdefault(f"{pid} {sig}", system.now)

    def wait(timeout, fds=()):
        system.timeouts.append(timeout)
        if system.signals:  # a signal alone: the worker's last line waits in the pipe, unread
            received, system.signals = system.signals, []
            return received, []
        if lines:
            return [], list(fds)
        system.now += timeout
        asked = moments.get(f"{worker} {signal.SIGTERM}")
        if asked is not None and "exit" not in moments and system.now >= asked + 0.3:
            lines.append(report.ffmpeg_ended("cam", generation, "20261125_100001.mp4", 1.8e9, 1.8e9 + 9))
            moments["exit"] = system.now
            system.exit(worker, 0)  # its last line was written before it exited
        if f"{writer} {signal.SIGKILL}" in moments and "writer" not in moments:
            moments["writer"] = system.now
            system.exit(writer, -9)
        return [], []

    system.kill, system.wait = kill, wait
    master.start()
    (worker,) = system.forked
    generation = master.slots["cam"].worker.generation
    lines.append(report.encode_report({"camera": "cam", "generation": generation, "pid": worker, "state": "recording"})
                 + done("cam", generation, "20261125_100000.mp4"))
    master.step()
    assert master.slots["cam"].worker.report["state"] == "recording", "a report is still the slot's"
    writer = master.index.child.pid
    assert writer is not None and system.forked == [worker, writer]
    copy = os.dup(master.index.fds[0])
    try:
        assert index_writer.decode_jobs(drain(copy))[0] == [
            index_writer.Job(mirror, "cam", "20261125_100000.mp4", 1.8e9, until_of("20261125_100000.mp4"))]
        system.signals = [signal.SIGTERM]
        assert master.run() == 0
        jobs = index_writer.decode_jobs(drain(copy))[0]
        assert [job.name for job in jobs] == ["20261125_100001.mp4"], "the last line was forwarded before the reap"
        assert os.read(copy, 10) == b"", "the pipe was closed once the worker was gone"
    finally:
        os.close(copy)
    assert f"{writer} {signal.SIGTERM}" not in moments, "the writer is not stopped with the other helpers"
    assert moments[f"{writer} {signal.SIGKILL}"] - moments["exit"] == pytest.approx(CLOSE_SECONDS)
    assert master.index.pids() == set() and system.forked == [worker, writer]
