"""The zygote's part of ``cow_map`` with one feature of the worker taken out, to price each feature.

    python -P scripts/benchlib/cow_variants.py VARIANT zygote RECORDER SEGMENT WORKDIR

A measuring tool only: the patches below replace parts of the worker in this process before it
forks the worker it measures, and nowhere else. VARIANT is ``full`` (the worker as it is), ``idle``
(a forked child that only sleeps: the price of a fork of this image), ``stripped`` (the mission's
core and nothing else: a Popen loop around the recorder and a thread draining its stderr), or
``no-<feature>``, the worker without that feature (see ``PATCHES``).
"""

import select
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cow_map  # noqa: E402

from mirror_supervisor.worker import ffmpeg_stderr, progress, reachability  # noqa: E402
from mirror_supervisor.worker import worker as W  # noqa: E402


def _idle(spec, fds):
    time.sleep(3600)
    return 0


def _stripped(spec, fds):
    """Popen, a reader thread, wait for the exit; again."""
    while True:
        proc = subprocess.Popen(list(spec.argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, close_fds=True, cwd="/tmp")
        tail = ffmpeg_stderr.StderrTail(proc.stderr.fileno())
        tail.start()
        while proc.poll() is None:
            select.poll().poll(1000)
        tail.join(2.0)
        proc.stderr.close()


def _no_input(self):
    directory = Path("/tmp")
    return directory


PATCHES = {
    "title": lambda: setattr(W.proc_title, "set_title", lambda title: None),
    "report": lambda: setattr(W.Worker, "_report", lambda self: None),
    "log": lambda: setattr(W.LineLog, "_write", lambda self, line: None),
    "thread": lambda: (setattr(ffmpeg_stderr.StderrTail, "start", lambda self: None),
                       setattr(ffmpeg_stderr.StderrTail, "join", lambda self, timeout: True)),
    "progress": lambda: setattr(progress.OpenSegment, "read", lambda self: progress.Progress()),
    "names": lambda: (setattr(progress.NameGuard, "before_start", lambda self: (None, 0.0)),
                      setattr(progress.NameGuard, "follow", lambda self, segment, stepped: False)),
    "input": lambda: setattr(W.Worker, "_write_input", _no_input),
    "probe": lambda: setattr(reachability, "target_of", lambda url, environ=None: None),
}


def apply(variant: str) -> None:
    if variant == "idle":
        W.run_worker = _idle
    elif variant == "stripped":
        W.run_worker = _stripped
    elif variant.startswith("no-"):
        PATCHES[variant[3:]]()
    elif variant != "full":
        raise SystemExit(f"unknown variant {variant!r}")


if __name__ == "__main__":
    apply(sys.argv[1])
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    cow_map.main()
