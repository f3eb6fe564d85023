"""Run the real ``mirror-supervisor run`` as a child of the test, and look at what it does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from . import procs


class Supervisor:
    def __init__(self, tmp: Path, db: Path, mirror_dir: Path, *args: str, env: dict[str, str] | None = None,
                 mirror_flag: bool = True) -> None:
        """``mirror_flag=False`` leaves --mirror-dir out (the test sets it in a --config file)."""
        self.mirror_flag = mirror_flag
        self.db = db
        self.mirror_dir = mirror_dir
        self.log_path = tmp / "supervisor.log"
        self.state_dir = tmp / "state"
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> Supervisor:
        argv = [sys.executable, "-m", "mirror_supervisor", "run", "--db", str(self.db),
                "--state-dir", str(self.state_dir), *self.args]
        if self.mirror_flag:
            argv += ["--mirror-dir", str(self.mirror_dir)]
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, env=self.env)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def workers(self) -> dict[str, list[procs.WorkerView]]:
        return procs.workers(self.pid)

    def one_each(self, cameras: set[str]) -> dict[str, procs.WorkerView] | None:
        """The worker table when exactly ``cameras`` each have one worker with one ffmpeg."""
        table = self.workers()
        if set(table) != cameras:
            return None
        if any(len(views) != 1 or len(views[0].ffmpeg_pids) != 1 for views in table.values()):
            return None
        return {camera: views[0] for camera, views in table.items()}

    def wait_one_each(self, cameras: set[str], timeout: float = 30) -> dict[str, procs.WorkerView]:
        try:
            return procs.wait_for(f"one worker+ffmpeg for each of {sorted(cameras)}", lambda: self.one_each(cameras),
                                  timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the workers then: {self.workers()!r}") from None

    def wait_log(self, text: str, timeout: float = 30) -> str:
        return procs.wait_for(f"log line containing {text!r}", lambda: text in self.log() and self.log(), timeout)

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill_everything(self) -> None:
        """Test teardown: whatever happened, leave no master, worker or ffmpeg behind."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                tree = psutil.Process(self.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                tree = []
            self.proc.kill()
            self.proc.wait(timeout=10)
            for child in tree:
                try:
                    child.kill()
                except psutil.NoSuchProcess:
                    pass
        for pid in procs.ffmpegs_writing(self.mirror_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if getattr(self, "_log_file", None):
            self._log_file.close()
