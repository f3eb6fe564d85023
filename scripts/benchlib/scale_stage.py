"""The scale suite's stage: descriptor limits, disk space, the NVR database, the master process,
and the end of the run (the master stopped gracefully, then nothing it started left behind)."""

from __future__ import annotations

import datetime
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from . import procs
from .common import ROOT, log
from .nvr import Nvr

STOP_BUDGET = 60.0


def child_env(**extra: str) -> dict[str, str]:
    """Our environment without MIRROR_SUPERVISOR_* settings (they would override the flags' intent)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRROR_SUPERVISOR_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def raise_fd_limit(cameras: int) -> dict[str, int]:
    """Lift RLIMIT_NOFILE to the hard limit when N could come near it; children inherit it.

    The master itself holds few descriptors per worker, but the limit is inherited by every
    worker and recorder, and a short limit would make the benchmark measure the limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * cameras + 1024
    if soft < wanted and soft != hard:
        new = hard if hard == resource.RLIM_INFINITY else min(hard, max(wanted, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        log(f"raised RLIMIT_NOFILE soft limit {soft} -> {new} (hard {hard})")
        soft = new
    if soft < wanted:
        log(f"WARNING: RLIMIT_NOFILE {soft} is below the {wanted} wanted for {cameras} cameras")
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if nproc != resource.RLIM_INFINITY and nproc < 4 * cameras + 256:
        log(f"WARNING: RLIMIT_NPROC {nproc} may be too low for {cameras} workers, threads and recorders")
    return {"nofile_soft": soft, "nofile_hard": hard, "nproc_soft": nproc}


def check_disk(directory: Path, cameras: int, seconds: float, bytes_per_second: int) -> int:
    """The run writes about N x seconds x bytes; refuse to start when that would fill the disk."""
    need = int(cameras * seconds * bytes_per_second * 1.2)
    free = shutil.disk_usage(directory).free
    if free < need + (1 << 30):
        raise SystemExit(f"scale suite: {directory} has {free >> 20} MiB free, the run needs ~{need >> 20} MiB + 1 GiB")
    return need


def make_database(path: Path, cameras: int, segment_seconds: int) -> list[str]:
    """N mirrored cameras with explicit URLs nobody listens on (the stand-in never connects)."""
    cams = [f"cam{i:04d}" for i in range(cameras)]
    Nvr(path).add_many([(c, f"rtsp://127.0.0.1:1/{c}", segment_seconds, True) for c in cams])
    return cams


def start_master(tmp: Path, recorder: Path, bytes_per_second: int, poll_interval: float) -> subprocess.Popen:
    """The real master in the foreground, in its own session so Ctrl-C reaches only us."""
    env = child_env(STAND_IN_BYTES=str(bytes_per_second), MIRROR_SUPERVISOR_CACHE_DIR=str(tmp / "cache"))
    argv = [sys.executable, "-m", "mirror_supervisor", "run", "--db", str(tmp / "nvr.db"),
            "--mirror-dir", str(tmp / "mirror"), "--state-dir", str(tmp / "state"),
            "--ffmpeg", str(recorder), "--poll-interval", f"{poll_interval:g}"]
    with open(tmp / "master.log", "wb") as out:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop_master(master: subprocess.Popen, seen: dict[int, float] | None = None) -> dict[str, float | None]:
    """SIGTERM (the graceful path the init script uses): seconds until the master exited and
    until every process seen under it (pid -> create time) was gone; None where it was killed."""
    if master.poll() is not None:
        return {"exited_s": 0.0, "all_gone_s": None}
    t0 = time.monotonic()
    master.send_signal(signal.SIGTERM)
    try:
        master.wait(timeout=STOP_BUDGET)
    except subprocess.TimeoutExpired:
        log(f"the master ignored SIGTERM for {STOP_BUDGET:.0f}s; killing its group")
        os.killpg(master.pid, signal.SIGKILL)
        master.wait(timeout=10)
        return {"exited_s": None, "all_gone_s": None}
    exited = round(time.monotonic() - t0, 3)
    gone: float | None = None
    while seen and time.monotonic() - t0 < STOP_BUDGET:
        if not _any_alive(seen):
            gone = round(time.monotonic() - t0, 3)
            break
        time.sleep(0.005)
    return {"exited_s": exited, "all_gone_s": gone if seen else exited}


def _any_alive(seen: dict[int, float]) -> bool:
    """Is any process of ``seen`` (pid -> psutil create time) still alive (zombies are not)?
    Read from /proc/<pid>/stat directly: a pass over a thousand pids takes a few ms instead of
    psutil's tens, which the shutdown time would otherwise include."""
    boot, tick = psutil.boot_time(), os.sysconf("SC_CLK_TCK")
    for pid, created in seen.items():
        fields = procs.stat_fields(pid)
        if fields is not None and fields[0] not in ("Z", "X") and abs(int(fields[19]) / tick + boot - created) < 0.01:
            return True
    return False


def left_behind(seen: dict[int, float], tmp: Path) -> list[psutil.Process]:
    """Processes seen under the master (pid -> create time, so a reused pid never counts) that are
    still alive, and any other process whose command line names ``tmp``."""
    found: dict[int, psutil.Process] = {}
    for pid, created in seen.items():
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - created) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
                found[pid] = proc
        except psutil.Error:
            pass
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid != os.getpid() and any(str(tmp) in arg for arg in proc.info["cmdline"] or []):
            found.setdefault(proc.pid, proc)
    return list(found.values())


def sweep(seen: dict[int, float], tmp: Path) -> int:
    """SIGKILL whatever ``left_behind`` finds; how many there were."""
    doomed = left_behind(seen, tmp)
    for proc in doomed:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(doomed, timeout=5)
    return len(doomed)


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
    stop = next((i for i, line in enumerate(lines) if "received SIGTERM" in line), len(lines))
    # Each recorder's own exit on SIGTERM (its last segment finished) or a SIGKILL after the budget.
    shutdown = {"recorders_stopped": sum(" ffmpeg stopped " in line for line in lines[stop:]),
                "recorders_killed": sum("ignored SIGTERM" in line for line in lines[stop:])}
    return {"lines": len(lines), "warnings_or_errors": len(bad), "last": bad[-5:], **shutdown,
            **startup_phases(lines)}


def startup_phases(lines: list[str]) -> dict[str, float | None]:
    """From the master's own timestamps: start -> first fork (the orphan scan, the first database
    read) and first -> last fork, so a slow start can be pinned on the right phase."""
    def stamp(pattern: str, last: bool = False) -> float | None:
        found = [line for line in lines if pattern in line and " zz" not in line]  # zz...: the reload probe's
        if not found:
            return None
        try:
            moment = datetime.datetime.strptime(found[-1 if last else 0][:23], "%Y-%m-%dT%H:%M:%S.%f")
        except ValueError:
            return None
        return moment.timestamp()

    started, first, final = stamp("master started"), stamp(" worker started gen=1 "), stamp(" worker started gen=", True)
    return {"start_to_first_fork_s": round(first - started, 2) if started and first else None,
            "first_to_last_fork_s": round(final - first, 2) if first and final else None}
