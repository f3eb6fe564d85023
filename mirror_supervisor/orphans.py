"""ffmpegs writing into the mirror that no live worker owns: left by an earlier master.

A master that was SIGKILLed together with its workers (OOM killer, ``kill -9`` of the whole tree)
can leave ffmpegs behind, still writing. A new master must end them before starting its own, or
one camera would have two ffmpegs and two sets of segments fighting over the same names. The
match is strict, so no other process is ever touched: an ffmpeg whose output pattern lies directly
in ``<mirror_dir>/<camera_id>/`` and whose parent is not a live mirror-supervisor worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil

from . import titles
from .ffmpeg import SEGMENT_PATTERN



@dataclass(frozen=True)
class Recorder:
    proc: psutil.Process
    camera_id: str
    owned: bool  # its parent is a live mirror-supervisor worker


def recorders(mirror_dir: Path, ffmpeg: str = "ffmpeg") -> list[Recorder]:
    """Every live process recording into ``mirror_dir`` with our output pattern.

    Paths are compared as text (normalised, not resolved): resolving another process's output
    path would stat it, and an ffmpeg of someone else's writing onto a hung network volume would
    then hang this scan. Only the mirror dir itself is resolved, so both its spellings match.
    """
    roots = {os.path.abspath(mirror_dir), os.path.realpath(mirror_dir)}
    names = {"ffmpeg", os.path.basename(ffmpeg)}
    found = []
    for proc in psutil.process_iter(["cmdline", "ppid"]):
        cmdline = proc.info["cmdline"] or []
        if len(cmdline) < 2 or not any(name in os.path.basename(cmdline[0]) for name in names):
            continue
        output = cmdline[-1]
        if os.path.basename(output) != SEGMENT_PATTERN:
            continue
        out_dir = os.path.dirname(output)
        try:
            if not os.path.isabs(out_dir):
                out_dir = os.path.join(proc.cwd(), out_dir)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        camera_dir = os.path.normpath(out_dir)
        if os.path.dirname(camera_dir) not in roots:
            continue
        found.append(Recorder(proc, os.path.basename(camera_dir), _is_worker(proc.info["ppid"])))
    return found


def _is_worker(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        parent = psutil.Process(pid)
        return parent.status() != psutil.STATUS_ZOMBIE and titles.is_worker(" ".join(parent.cmdline()))
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def end(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """SIGTERM (ffmpeg writes its trailer), then SIGKILL what is left after ``timeout``."""
    for proc in processes:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    return alive
