"""Ending the run: stop the master gracefully, then make sure nothing it started is left."""

from __future__ import annotations

import datetime
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from bench_scale.common import log
from bench_scale.observe import Tree

STOP_BUDGET = 60.0


def stop_master(master: subprocess.Popen) -> float | None:
    """SIGTERM (the graceful path the init script uses); seconds until it exited, None if killed."""
    if master.poll() is not None:
        return 0.0
    t0 = time.monotonic()
    master.send_signal(signal.SIGTERM)
    try:
        master.wait(timeout=STOP_BUDGET)
        return round(time.monotonic() - t0, 2)
    except subprocess.TimeoutExpired:
        log(f"the master ignored SIGTERM for {STOP_BUDGET:.0f}s; killing its group")
        os.killpg(master.pid, signal.SIGKILL)
        master.wait(timeout=10)
        return None


def sweep(tree: Tree | None, tmp: Path) -> int:
    """SIGKILL what is left: processes seen under the master, then anything naming ``tmp``."""
    doomed = []
    for pid, created in (tree.seen.items() if tree else []):
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - created) < 0.01:
                doomed.append(proc)
        except psutil.Error:
            pass
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid != os.getpid() and any(str(tmp) in arg for arg in proc.info["cmdline"] or []):
            doomed.append(proc)
    for proc in doomed:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(doomed, timeout=5)
    return len({p.pid for p in doomed})


def log_tail(path: Path, lines: int = 20) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def log_summary(path: Path) -> dict[str, Any]:
    """Warning and error counts of the master's log, with the last few such lines."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    bad = [line for line in lines if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)]
    return {"lines": len(lines), "warnings_or_errors": len(bad), "last": bad[-5:], **startup_phases(lines)}


def startup_phases(lines: list[str]) -> dict[str, float | None]:
    """From the master's own timestamps: start -> first fork (the orphan scan, the first database
    read) and first -> last fork, so a slow start can be pinned on the right phase."""
    def stamp(pattern: str, last: bool = False) -> float | None:
        found = [line for line in lines if pattern in line]
        if not found:
            return None
        moment = datetime.datetime.strptime(found[-1 if last else 0][:23], "%Y-%m-%dT%H:%M:%S.%f")
        return moment.timestamp()

    started, first, final = stamp("master started"), stamp(" worker started gen=1 "), stamp(" worker started gen=", True)
    return {"start_to_first_fork_s": round(first - started, 2) if started and first else None,
            "first_to_last_fork_s": round(final - first, 2) if first and final else None}


