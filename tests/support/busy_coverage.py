"""The real `coverage` command kept busy in its pool of parsing processes, for the tests that
signal it (tests/integration/test_coverage.py, tests/faults/test_volume.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from . import fmp4, procs

NEWEST = 1795564800  # 2026-11-25T00:00:00Z
SEGMENT = 600


def _name(epoch: float) -> str:
    return time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(epoch))


def _rfc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def start(files_in: Path, mirror: Path, state: Path, files: int = 3000) -> tuple[subprocess.Popen, list[int]]:
    """Write ``files`` segments of camera ``cam`` into ``files_in`` (the mirror, or the backing
    directory of a mirror on FUSE), all one file under many names (hard links cost no space; 600
    fragments and no trailer, so each is walked box by box); start `coverage` over ``mirror`` and
    return it and its pool's pids once the pool runs."""
    directory = files_in / "cam"
    directory.mkdir(parents=True, exist_ok=True)
    first = directory / _name(NEWEST)
    first.write_bytes(fmp4.segment(float(SEGMENT)))
    for i in range(1, files):
        os.link(first, directory / _name(NEWEST - SEGMENT * i))
    command = subprocess.Popen(
        [sys.executable, "-m", "mirror_supervisor", "coverage", "--mirror-dir", str(mirror), "--state-dir", str(state),
         "--json", "--from", _rfc(NEWEST - SEGMENT * files), "--to", _rfc(NEWEST + SEGMENT)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "HELDAR_RECORDINGS_DIR": ""})
    me = psutil.Process(command.pid)
    pool = procs.wait_for("the pool's processes", lambda: [p.pid for p in me.children()] if len(me.children()) >= 2
                          else None, 60)
    return command, pool
