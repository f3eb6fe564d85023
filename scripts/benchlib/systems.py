"""What the scenarios need from a system under test; ``ours`` and ``supervisord`` adapt each one.

An adapter starts its supervisor on a given NVR database and mirror directory, makes it take the
database as it is now (``apply``), names its own processes (never ffmpeg), and whatever happened
leaves nothing running (``stop_everything``).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import psutil

from . import procs
from .nvr import Nvr


class System:
    name = "?"
    has_workers = False  # a per-camera process between the supervisor and ffmpeg
    has_rpc = False  # an alternative, cheaper way to apply a change (see Supervisord)
    has_gentle_reload = False  # a reload other than SIGHUP that keeps unchanged cameras running

    def __init__(self, work: Path, nvr: Nvr, mirror_dir: Path, ffmpeg: str, poll_interval: float,
                 stop_timeout: float) -> None:
        self.work = work
        self.nvr = nvr
        self.mirror_dir = mirror_dir
        self.ffmpeg = ffmpeg
        self.poll_interval = poll_interval
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen | None = None
        self.tree = procs.Tree(mirror_dir)
        self._log_file: IO[bytes] | None = None
        work.mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        self.tree = procs.Tree(self.mirror_dir)
        self._log_file = open(self.work / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        procs.remember(self.proc.pid)

    def wait_ready(self) -> None:
        """Block until the system accepts ``apply``."""

    def apply(self) -> dict[str, float]:
        """Make the running system take the database as it is now (blocking); returns timings."""
        raise NotImplementedError

    def sighup(self) -> None:
        os.kill(self.root, signal.SIGHUP)

    def supervisor_pids(self) -> dict[str, list[int]]:
        """{'master': [...], 'workers': [...]}: the supervisor's own processes, never ffmpeg."""
        raise NotImplementedError

    def all_pids(self) -> list[int]:
        """The supervisor first, then everything under it."""
        try:
            pids = [self.root] + [p.pid for p in psutil.Process(self.root).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        for pid in pids:
            procs.remember(pid)
        return pids

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop_everything(self, extra: Iterable[int] = ()) -> None:
        """Whatever happened: no supervisor, worker or ffmpeg of this system is left."""
        pids = self.all_pids() if self.alive() else []
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for pid in pids[1:] + list(extra) + procs.machine_ffmpegs(str(self.mirror_dir) + "/"):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        try:
            return (self.work / f"{self.name}.log").read_text(errors="replace")
        except OSError:
            return ""

