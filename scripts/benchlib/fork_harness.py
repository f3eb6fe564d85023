"""Fork harness: a worker's USS by what the forked child does first. Run as its own process:

    python -P scripts/benchlib/fork_harness.py STEPS warm|cold

The parent imports what the master imports, optionally *warms* some code paths once (one
``segments.newest``, one log line, one ``json.dumps``, one ``subprocess.run(['true'])``), then
collects and freezes like the master and forks. The child performs STEPS (comma-separated, from
title, log, pipe, popen, thread, json, scan) once, like a worker starting up, and idles. 1.5 s
later the parent reads the child's USS, kills it and prints one JSON line.
"""

import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import setproctitle

import mirror_supervisor.master.master  # noqa: F401  (everything the master imports)
from mirror_supervisor.footage import segments
from mirror_supervisor.plumbing import logs, wakeup

STEPS = ("title", "log", "pipe", "popen", "thread", "json", "scan")


def popen() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=dict(os.environ), close_fds=True)


def warm_up(directory: Path) -> None:
    segments.newest(directory)
    logs.for_camera("-").info("master started pid=%d", 1)
    json.dumps({"a": 1, "b": [1.5, "x"]})
    subprocess.run(["true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   env=dict(os.environ), close_fds=True)


def child(steps: list[str], directory: Path) -> None:
    keep: list = []
    for step in steps:
        try:
            if step == "title":
                setproctitle.setproctitle("mirror-supervisor: worker x gen=1 recording")
            if step == "log":
                logs.for_camera("x").info("ffmpeg started pid=%d url=%s", 1, "rtsp://***@h/x")
            if step == "pipe":
                keep.append(wakeup.SignalPipe())
                keep[-1].wait(0.01)
            if step == "popen":
                keep.append(popen())
            if step == "thread":
                proc = [k for k in keep if isinstance(k, subprocess.Popen)][-1]
                threading.Thread(target=lambda p=proc: os.read(p.stderr.fileno(), 10), daemon=True).start()
            if step == "json":
                json.dumps({"camera": "x", "state": "recording", "pid": 1, "t": time.time()})
            if step == "scan":
                segments.newest(directory)
        except Exception as exc:
            print(repr(exc), file=sys.stderr)


def main() -> None:
    steps = sys.argv[1].split(",") if sys.argv[1] else []
    warm = sys.argv[2] == "warm"
    unknown = set(steps) - set(STEPS)
    if unknown:
        sys.exit(f"unknown steps: {sorted(unknown)}")
    logs.setup("INFO", open(os.devnull, "w"))
    directory = Path(tempfile.mkdtemp())
    (directory / "20260101_000000.mp4").write_bytes(b"x")
    if warm:
        warm_up(directory)
    gc.collect()
    gc.freeze()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        child(steps, directory)
        os.write(w, b"1")
        time.sleep(30)
        os._exit(0)
    os.read(r, 1)
    time.sleep(1.5)
    uss = psutil.Process(pid).memory_full_info().uss
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    (directory / "20260101_000000.mp4").unlink()
    directory.rmdir()
    print(json.dumps({"steps": sys.argv[1], "warm": warm, "uss": uss}))


if __name__ == "__main__":
    main()
