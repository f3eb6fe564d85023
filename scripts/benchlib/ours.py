"""The adapter for mirror-supervisor: ``mirror-supervisor run`` on the benchmark's database."""

from __future__ import annotations

import sys

from . import procs
from .common import VENV_BIN
from .systems import System


class Ours(System):
    name = "ours"
    has_workers = True

    def argv(self) -> list[str]:
        script = VENV_BIN / "mirror-supervisor"
        head = [str(script)] if script.exists() else [sys.executable, "-m", "mirror_supervisor"]
        state = self.work / "state"
        state.mkdir(exist_ok=True)
        return head + [
            "run", "--db", str(self.nvr.path), "--mirror-dir", str(self.mirror_dir),
            "--ffmpeg", self.ffmpeg, "--poll-interval", str(self.poll_interval),
            "--stop-timeout", str(self.stop_timeout), "--state-dir", str(state), "--cache-dir", str(self.work / "cache"),
        ]

    def apply(self) -> dict[str, float]:
        """The NVR's side of a change: one SIGHUP."""
        self.sighup()
        return {}

    def supervisor_pids(self) -> dict[str, list[int]]:
        workers = []
        for pid in procs.children(self.root):
            if procs.WORKER_TITLE.match(" ".join(procs.cmdline(pid))) and procs.running(pid):
                workers.append(pid)
        return {"master": [self.root], "workers": workers}
