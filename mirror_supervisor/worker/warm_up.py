"""The zygote's rehearsal: the steps a worker takes from its spec to a recording segment, run in the
zygote before it freezes, on a camera and in a directory of its own.

Python 3.11 rewrites a function's bytecode in place while it warms up (a counter on each call,
then each instruction specialized for the types it meets) and fills caches on first use (the type
attribute cache, interned names, lazily built tables). Done in a worker, each of those writes
copies a page it shared with the zygote, in every worker. Done once here, the pages every worker
starts from already hold the warmed code, and what a worker still copies is mostly the reference
counts of what it touches (measured: docs/benchmarks.md, "Worker memory").

It drives the real :class:`~.worker.Worker` (its start with ``true`` as the recorder, its state
changes, reports, log lines and checks), so it warms what a worker runs, not a copy of it. Nothing
of it outlives it: its files are under a temporary directory it removes, its children are reaped,
and the zygote's signal mask, handlers, wake-up descriptor and title are restored. Stop signals
stay blocked throughout (one sent meanwhile is acted on afterwards, by the zygote's own
handling); only SIGCHLD is let through, which ends the rehearsal worker's waits. A rehearsal that
fails costs memory, never a camera: :func:`rehearse` returns the error instead of raising.
"""

from __future__ import annotations

import os
import pickle
import signal
import tempfile
import time
from pathlib import Path

from ..cameras.camera import Camera
from ..plumbing import lifeline, proc_title, wakeup
from ..plumbing.line_log import LineLog
from . import ffmpeg
from .progress import ClockWatch, OpenSegment
from .worker import Worker, WorkerSpec

ROUNDS = 64  # past 3.11's warm-up delay (8 calls) and its specialization counters
STARTS = 16  # rounds that start the recorder (``true``): a fork and exec each
TRUE = "/bin/true"
STATES = ("connecting", "recording", "stopping", "backoff")
SAMPLE_STDERR = "[rtsp @ 0x1] method DESCRIBE failed: 404 Not Found\nrtsp://u:p@192.0.2.1/x: Server returned 404\n"


def rehearse(parent: int, rounds: int = ROUNDS) -> str | None:
    """Rehearse in a process that dies with ``parent`` by SIGKILL (the zygote, or a test); None
    when every step ran, else what failed."""
    title = proc_title.get_title()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, wakeup.HANDLED_SIGNALS)
    handlers = {sig: signal.getsignal(sig) for sig in (*wakeup.HANDLED_SIGNALS, *wakeup.IGNORED_SIGNALS)}
    wakeup_fd = signal.set_wakeup_fd(-1)  # each rehearsed worker sets its own
    try:
        with tempfile.TemporaryDirectory(prefix="mirror-supervisor-warm-up-") as scratch:
            _rounds(Path(scratch), parent, rounds)
    except Exception as exc:  # noqa: BLE001 - a failed rehearsal costs memory, never a camera
        return f"{type(exc).__name__}: {exc}"
    finally:
        signal.set_wakeup_fd(wakeup_fd)
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        proc_title.set_title(title)
    return None


def _rounds(scratch: Path, parent: int, rounds: int) -> None:
    camera = Camera(id="warm-up", mirrored=True, url="rtsp://user:secret@192.0.2.1:554/stream", segment_seconds=60)
    mirror = scratch / "mirror"
    mirror.mkdir()
    spec = WorkerSpec(camera=camera, argv=(TRUE,), directory=ffmpeg.camera_dir(mirror, camera.id), generation=1,
                      stop_timeout=10.0, master_pid=parent, status_fd=-1, log=("INFO", str(scratch / "worker.log")))
    pickled = pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)
    segment = time.strftime("%Y%m%d_%H%M%S", time.gmtime(time.time() - 3600)) + ".mp4"  # nothing to move aside
    can_start = os.access(TRUE, os.X_OK)
    for done in range(rounds):
        lifeline.die_with_parent(parent, signal.SIGKILL)  # as a spare does first (the zygote's own setting)
        worker = Worker(pickle.loads(pickled))
        worker._input_dir = scratch / "inputs"  # not the system's: nothing of ours is left there
        ffmpeg.input_dir(spec.directory.parent)  # the name it would have had (hashed): computed only
        worker.become_user()  # no --user here: the checks only
        worker._signals = wakeup.SignalPipe()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGCHLD,))
        try:
            _one_worker(worker, segment, start=can_start and done < STARTS)
        finally:
            signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGCHLD,))
            signal.set_wakeup_fd(-1)
            lifeline.close_fds(worker._signals.fds)
            if isinstance(worker.log, LineLog):
                worker.log.close()


def _one_worker(worker: Worker, segment: str, start: bool) -> None:
    """What a worker runs on its way to recording, then its checks and its reports."""
    if start:
        worker._run_ffmpeg_once()  # ``true``: started, watched until it exits, its exit logged
    else:
        worker._prepare_directory()
        worker._write_input()
        worker._remove_input()
        worker._log_exit(1, 1.0, SAMPLE_STDERR, False)
    for state in STATES:
        worker._set_state(state)
    with open(worker.spec.directory / segment, "ab") as held:  # the segment "ffmpeg" has open: ours
        held.write(b"\0")
        seen = OpenSegment(os.getpid(), worker.spec.directory).read()
    worker._guard_names(seen, ClockWatch().stepped_back())
    worker.log.info("recording segment=%s", seen.segment)
    worker._wait(0)
    worker._stopping = True
    worker._log_exit(0, 1.0, "", False)
