"""The worker's clock-independent progress check, name guarding, reports and lifeline, in parts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mirror_supervisor.cameras.camera import Camera
from mirror_supervisor.worker import worker as worker_module
from mirror_supervisor.worker.progress import ClockWatch, OpenSegment, Progress, describe_moves
from mirror_supervisor.worker.report import decode_reports
from mirror_supervisor.worker.worker import Worker, WorkerSpec

REPO = Path(__file__).resolve().parents[3]


def name_at(epoch: float) -> str:
    return time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(epoch))


# -- OpenSegment: what ffmpeg has open, not what the directory's names say ----------------------

@pytest.fixture
def writer(tmp_path):
    """A process that opens files on request (``open <path>``, ``write <n>``, ``unlink <path>``)."""
    script = textwrap.dedent("""
        import os, sys
        files = []
        for line in sys.stdin:
            cmd, arg = line.split(maxsplit=1)
            arg = arg.strip()
            if cmd == "open":
                files.append(open(arg, "ab", buffering=0))
            elif cmd == "write":
                files[-1].write(b"x" * int(arg))
            elif cmd == "unlink":
                os.unlink(arg)
            print("ok", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def do(command: str) -> None:
        proc.stdin.write(command + "\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ok"

    do.pid = proc.pid
    yield do
    proc.kill()
    proc.wait()


def test_the_open_segment_directly_in_the_camera_dir_is_found_and_its_growth_seen(tmp_path, writer):
    cam = tmp_path / "cam"
    (cam / "sub").mkdir(parents=True)
    probe = OpenSegment(writer.pid, cam)
    assert probe.read() == Progress()
    writer(f"open {tmp_path / 'elsewhere.mp4'}")
    writer(f"open {cam / 'sub' / '20261125_110000.mp4'}")
    writer(f"open {cam / 'notes.txt'}")
    assert probe.read().segment is None  # not directly in the camera dir, or not an .mp4
    writer(f"open {cam / '20991231_235959.mp4'}")  # named far in the future: the name does not matter
    first = probe.read()
    assert first.segment == "20991231_235959.mp4" and first.size == 0
    writer("write 100")
    assert probe.read().size == 100 and probe.read().inode == first.inode


def test_a_deleted_open_file_is_no_progress(tmp_path, writer):
    probe = OpenSegment(writer.pid, tmp_path)
    writer(f"open {tmp_path / '20261125_110000.mp4'}")
    assert probe.read().segment == "20261125_110000.mp4"
    writer(f"unlink {tmp_path / '20261125_110000.mp4'}")
    assert probe.read() == Progress()


def test_a_gone_process_has_no_segment(tmp_path):
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert OpenSegment(proc.pid, tmp_path).read() == Progress()


# -- ClockWatch --------------------------------------------------------------------------------

class FakeClocks:
    def __init__(self) -> None:
        self.wall, self.mono = 1_800_000_000.0, 100.0

    def tick(self, seconds: float, wall_step: float = 0.0) -> None:
        self.mono += seconds
        self.wall += seconds + wall_step


def test_a_step_back_is_seen_once_and_small_steps_add_up():
    clocks = FakeClocks()
    watch = ClockWatch(0.5, wall=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    clocks.tick(1)
    assert watch.stepped_back() == 0
    clocks.tick(1, wall_step=3600)  # forward: harmless
    assert watch.stepped_back() == 0
    clocks.tick(1, wall_step=-600)
    assert watch.stepped_back() == pytest.approx(600)
    clocks.tick(1)
    assert watch.stepped_back() == 0
    clocks.tick(1, wall_step=-0.3)
    assert watch.stepped_back() == 0
    clocks.tick(1, wall_step=-0.3)
    assert watch.stepped_back() == pytest.approx(0.6)


def test_a_long_move_list_is_one_line_with_first_last_and_count():
    moves = [(f"{i}.mp4", f"{i}~1.mp4") for i in range(100)]
    text = describe_moves(moves, limit=4)
    assert text == "0.mp4 -> 0~1.mp4, 1.mp4 -> 1~1.mp4, ... 96 more ..., 98.mp4 -> 98~1.mp4, 99.mp4 -> 99~1.mp4"
    assert describe_moves(moves[:2]) == "0.mp4 -> 0~1.mp4, 1.mp4 -> 1~1.mp4"


# -- a Worker without processes ------------------------------------------------------------------

class QuietSignals:
    """Stands in for the wake-up pipe: records each wait's timeout, never sleeps."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []

    def wait(self, timeout: float):
        self.timeouts.append(timeout)
        return [], []


@pytest.fixture
def make_worker(tmp_path, monkeypatch):
    monkeypatch.setattr(worker_module.proc_title, "set_title", lambda title: None)
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK)

    def make(directory: Path) -> Worker:
        spec = WorkerSpec(camera=Camera(id="cam", url="rtsp://127.0.0.1/x"), argv=("ffmpeg",), directory=directory,
                          generation=1, stop_timeout=5.0, master_pid=os.getpid(), status_fd=write_fd)
        worker = Worker(spec)
        worker._signals = QuietSignals()
        return worker

    make.read = lambda: decode_reports(_drain(read_fd))[0]
    make.write_fd = write_fd
    yield make
    os.close(read_fd)
    os.close(write_fd)


def _drain(fd: int) -> bytes:
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


def test_a_missing_mirror_dir_is_an_error_and_is_not_created(tmp_path, make_worker):
    worker = make_worker(tmp_path / "gone-volume" / "cam")
    assert worker._prepare_directory() is False
    assert worker.state == "error" and "gone-volume is missing" in worker.last_error
    assert not (tmp_path / "gone-volume").exists()
    assert make_worker.read()[-1]["state"] == "error"


def test_future_segments_are_moved_aside_before_a_start_with_their_content(tmp_path, make_worker, caplog):
    now = time.time()
    cam = tmp_path / "cam"
    cam.mkdir()
    past, future = name_at(now - 120), [name_at(now + ahead) for ahead in (10, 600)]
    for name in (past, *future):
        (cam / name).write_bytes(name.encode())
    worker = make_worker(cam)
    with caplog.at_level("WARNING", logger="mirror_supervisor"):
        assert worker._prepare_directory() is True
    assert (cam / past).read_bytes() == past.encode()
    for name in future:
        assert not (cam / name).exists()
        assert (cam / name.replace(".mp4", "~1.mp4")).read_bytes() == name.encode()
    [record] = [r for r in caplog.records if "moved aside" in r.getMessage()]
    assert record.camera == "cam" and all(name in record.getMessage() for name in future)
    assert "found before starting ffmpeg" in record.getMessage()


def test_a_clock_step_moves_aside_all_but_the_open_file_which_follows_when_closed(tmp_path, make_worker):
    now = time.time()
    cam = tmp_path / "cam"
    cam.mkdir()
    written = [name_at(now + ahead) for ahead in (100, 160, 220)]  # before the clock went back 4 min
    for name in written:
        (cam / name).write_bytes(name.encode())
    worker = make_worker(cam)
    worker.names.segment = written[-1]
    worker._guard_names(Progress(written[-1], (1, 1), 10), stepped_back=240.0)
    assert sorted(p.name for p in cam.iterdir()) == sorted(
        [written[0].replace(".mp4", "~1.mp4"), written[1].replace(".mp4", "~1.mp4"), written[-1]])
    # ffmpeg moves on to a segment named by the stepped-back clock: the one it closed goes aside too.
    fresh = name_at(now)
    (cam / fresh).write_bytes(b"")
    worker._guard_names(Progress(fresh, (1, 2), 0), stepped_back=0.0)
    assert (cam / written[-1].replace(".mp4", "~1.mp4")).read_bytes() == written[-1].encode()
    assert worker.names.segment == fresh and make_worker.read()[-1]["segment"] == fresh


def test_a_report_lost_in_a_full_pipe_is_sent_again_by_the_refresh(tmp_path, make_worker):
    worker = make_worker(tmp_path)
    while True:  # the shared pipe is full: every other worker's reports are stuck in it
        try:
            os.write(make_worker.write_fd, b"{}\n" * 1024)
        except BlockingIOError:
            break
    worker._set_state("recording")  # this report is lost
    make_worker.read()
    worker._wait(60.0)
    assert worker._signals.timeouts[-1] <= worker_module.REPORT_REFRESH_SECONDS
    worker._next_report = time.monotonic() - 1  # the refresh is due
    worker._wait(60.0)
    [report] = make_worker.read()
    assert report["state"] == "recording" and report["camera"] == "cam"
    assert worker._signals.timeouts[-1] == 0


# -- the lifeline before exec ------------------------------------------------------------------

def test_ffmpeg_is_never_started_for_a_worker_that_is_already_gone():
    """The worker's Python SIGTERM handler is inherited by the child before exec; it must not
    swallow the 'parent already died' signal (simulated with a pid that is not the parent)."""
    script = textwrap.dedent("""
        import functools, subprocess, sys
        from mirror_supervisor.plumbing import lifeline, wakeup
        wakeup.SignalPipe()  # the worker's handlers, as in a real worker
        gone = 2 ** 22 + 1   # never this child's parent
        proc = subprocess.Popen([sys.executable, "-c", "print('ffmpeg ran')"], stdout=subprocess.PIPE,
                                preexec_fn=functools.partial(lifeline.exec_child_dies_with, gone))
        out, _ = proc.communicate(timeout=30)
        print(proc.returncode, out.decode().strip())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(-signal.SIGTERM)], result.stdout


