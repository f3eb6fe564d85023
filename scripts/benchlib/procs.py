"""Observing the process table: supervisors' subtrees, read directly from /proc.

Latencies are taken by walking ``/proc/<pid>/task/<pid>/children`` and reading
``/proc/<pid>/cmdline`` (what psutil reads, without scanning all of /proc), so the observer stays
cheap on a small machine. Every process seen under a supervisor is remembered with its start time,
so that the end of the run can check that none of them is left.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import psutil

WORKER_TITLE = re.compile(r"mirror-supervisor: worker (\S+) gen=(\d+)")

# Every process this run saw under a supervisor: pid -> start time in clock ticks.
SEEN: dict[int, int] = {}


def children(pid: int) -> list[int]:
    """Children forked by ``pid``'s main thread (both supervisors fork only from it)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            data = f.read()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in data.split(b"\0") if a]


def stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: state first, start time at index 19."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def remember(pid: int) -> None:
    if pid not in SEEN:
        fields = stat_fields(pid)
        if fields is not None:
            SEEN[pid] = int(fields[19])


def still_alive_seen() -> list[int]:
    alive = []
    for pid, ticks in SEEN.items():
        fields = stat_fields(pid)
        if fields is not None and int(fields[19]) == ticks and fields[0] not in ("Z", "X"):
            alive.append(pid)
    return alive


def is_ffmpeg(args: list[str], prefix: str) -> bool:
    """An exec'd recorder (ffmpeg or the stand-in) whose output pattern lies under ``prefix``."""
    return bool(args) and any("ffmpeg" in os.path.basename(a) for a in args[:3]) and args[-1].startswith(prefix)


class Tree:
    """Finds workers and ffmpegs (by their output directory) under a supervisor's pid.

    A pid is classified once it shows a stable identity (a worker title on a direct child of the
    supervisor, or an exec'd ffmpeg writing under the mirror dir); a freshly forked child that has
    not exec'd or set its title yet is re-read on every pass. (A worker's child between fork and
    exec still carries the worker's title: hence "direct child" for workers.)
    """

    def __init__(self, mirror_dir: Path) -> None:
        self.prefix = str(mirror_dir) + "/"
        self.cache: dict[int, tuple[str, str]] = {}

    def classify(self, pid: int, depth: int) -> tuple[str, str | None]:
        known = self.cache.get(pid)
        if known is not None:
            return known
        args = cmdline(pid)
        if not args:
            return "gone", None
        match = WORKER_TITLE.match(" ".join(args))
        if match:
            if depth != 1:
                return "other", None
            known = ("worker", match.group(1))
        elif is_ffmpeg(args, self.prefix):
            known = ("ffmpeg", args[-1][len(self.prefix):].split("/", 1)[0])
        else:
            return "other", None
        self.cache[pid] = known
        remember(pid)
        return known

    def scan(self, root: int) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        """(live ffmpeg pids by camera, worker pids by camera) under ``root``."""
        ffmpegs: dict[str, list[int]] = {}
        workers: dict[str, list[int]] = {}
        seen: set[int] = set()
        stack = [(root, 0)]
        while stack:
            parent, depth = stack.pop()
            for pid in children(parent):
                seen.add(pid)
                kind, cam = self.classify(pid, depth + 1)
                if kind == "ffmpeg":
                    if running(pid):
                        ffmpegs.setdefault(cam, []).append(pid)
                elif kind == "worker":
                    workers.setdefault(cam, []).append(pid)
                    stack.append((pid, depth + 1))
                elif kind == "other":
                    stack.append((pid, depth + 1))
        for pid in [p for p in self.cache if p not in seen]:
            del self.cache[pid]
        return ffmpegs, workers

    def cam_ffmpegs(self, root: int, cam: str) -> list[int]:
        """Live ffmpegs of one camera; does not descend into other cameras' workers."""
        found = []
        stack = [(root, 0)]
        while stack:
            parent, depth = stack.pop()
            for pid in children(parent):
                kind, owner = self.classify(pid, depth + 1)
                if owner is not None and owner != cam:
                    continue
                if kind == "ffmpeg":
                    if running(pid):
                        found.append(pid)
                elif kind != "gone":
                    stack.append((pid, depth + 1))
        return found


def machine_ffmpegs(prefix: str) -> list[int]:
    """Every live ffmpeg on the machine writing under ``prefix``, orphans included."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if is_ffmpeg(proc.info["cmdline"] or [], prefix) and running(proc.pid):
            found.append(proc.pid)
    return found


def _mentioning(needle: str) -> list[int]:
    """Live processes other than this one whose command line mentions ``needle``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if needle in " ".join(proc.info["cmdline"] or []) and proc.pid != os.getpid() and running(proc.pid):
            found.append(proc.pid)
    return found


def kill_leftovers(work: Path) -> None:
    """SIGKILL whatever this run started that is still there."""
    for pid in still_alive_seen() + _mentioning(str(work)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def count_leftovers(work: Path) -> int:
    """Processes of this run still alive: any seen under a supervisor, or whose command line
    mentions the work dir."""
    return len(set(still_alive_seen()) | set(_mentioning(str(work))))
