"""Finding the ffmpegs recording into the mirror, in the process table; and ending leftover ones.

One scan, :func:`recording_into`, serves both users, at two strictness levels:

- ``strict=True``, the master at start: a master that was SIGKILLed together with its workers (OOM
  killer, ``kill -9`` of the whole tree) can leave ffmpegs behind, still writing. These *leftover
  ffmpegs* must be ended before the new master starts its own, or one camera would have two
  ffmpegs and two sets of segments fighting over the same names. Since what it finds gets killed,
  the match is strict, so no other process is ever touched: argv[0] named like the ffmpeg binary,
  the last argument our output pattern directly in ``<mirror_dir>/<camera_id>/``. Paths are
  compared as text (normalised, not resolved): resolving another process's output path would stat
  it, and someone else's ffmpeg writing onto a hung network volume would then hang the master's
  start. Only the mirror dir itself is resolved, so both its spellings match. A process whose
  relative path cannot be placed (its cwd is unreadable) is left alone.
- ``strict=False``, the pruner: what it finds is *kept*, so it errs towards seeing more; seeing
  too much costs one extra kept file, seeing too little could delete the file being written. Any
  process named ffmpeg, or any process at all with an argument that is our output pattern (the
  binary is configurable and may have any name), counts; any of its arguments that lies directly
  in a camera directory marks that camera (compared as text, like the strict level), and so does
  any file it has open directly in a camera directory (``/proc/<pid>/fd``: the kernel's own path,
  so an ffmpeg writing through a symlinked spelling of the mirror counts too). A relative path
  whose cwd cannot be read marks the camera its directory names. Nothing of another process's is
  ever stat'ed or resolved: the NVR's own ffmpeg writes onto the primary disk, and when that is a
  hard-mounted share whose server died, one stat of its output path never returns. The pruner
  then hung in every pass, and with it all retention: the mirror filled up and stopped recording
  exactly when it was the only copy left.

Both levels look only at the output argument(s): ffmpeg's input is the relative name of its
private input script (``ffmpeg.py``: the camera URL is never in the command), which lies in no
camera directory and so never marks one; a recorder running as another user (``--user``) is
found the same way, its command line being readable by all.

Who owns a recorder (``Recorder.owned``: its parent is a live mirror-supervisor worker) is only
asked at the strict level; the pruner keeps a file whoever writes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..cameras.camera import is_safe_id
from ..plumbing import logs, titles
from ..worker.ffmpeg import SEGMENT_PATTERN
from ..worker.progress import PROC_ROOT, OpenSegment


@dataclass(frozen=True)
class Recorder:
    proc: psutil.Process
    camera_id: str
    owned: bool | None  # its parent is a live mirror-supervisor worker; None: not asked (strict=False)


def recording_into(mirror_dir: Path, ffmpeg: str = "ffmpeg", strict: bool = True) -> list[Recorder]:
    """Every live process recording into ``<mirror_dir>/<camera_id>/`` (see the module docstring).

    ``ffmpeg`` is the configured binary: its name counts as ffmpeg's besides ``ffmpeg`` itself.
    At the loose level one process may be listed for several cameras.
    """
    roots = {os.path.abspath(mirror_dir), os.path.realpath(mirror_dir)}
    names = {"ffmpeg", os.path.basename(ffmpeg)}
    found = []
    for proc in psutil.process_iter(["cmdline", "ppid"]):
        cmdline = proc.info.get("cmdline") or []
        named_ffmpeg = len(cmdline) >= 2 and any(name in os.path.basename(cmdline[0]) for name in names)
        if strict:
            camera_id = _strict_camera(proc, cmdline, roots) if named_ffmpeg else None
            if camera_id is not None:
                found.append(Recorder(proc, camera_id, _is_worker(proc.info["ppid"])))
        else:
            outputs = cmdline[1:] if named_ffmpeg else [a for a in cmdline[1:] if os.path.basename(a) == SEGMENT_PATTERN]
            found.extend(Recorder(proc, camera_id, None) for camera_id in _loose_cameras(proc, outputs, roots))
    return found


def recording_now(mirror_dir: Path) -> dict[str, set[str]]:
    """Cameras with a live ffmpeg writing into ``<mirror_dir>/<id>/``, each with the files it has open.

    The pruner's view, asked of the process table at the loose level, not of the master's
    bookkeeping, so that the hand-run CLI and the master's own pass agree, and an ffmpeg left
    behind by a crashed worker still counts. The open file is read from ``/proc/<pid>/fd`` as the
    worker reads it; it may be unreadable (another user's process), so the pruner keeps the
    newest files of a camera with a live ffmpeg as well.
    """
    found: dict[str, set[str]] = {}
    for recorder in recording_into(mirror_dir, strict=False):
        writing = found.setdefault(recorder.camera_id, set())
        segment = OpenSegment(recorder.proc.pid, Path(mirror_dir) / recorder.camera_id).read().segment
        if segment is not None:
            writing.add(segment)
    return found


def _strict_camera(proc: psutil.Process, cmdline: list[str], roots: set[str]) -> str | None:
    """The camera whose directory ffmpeg's output (its last argument) lies directly in, as text."""
    output = cmdline[-1]
    if os.path.basename(output) != SEGMENT_PATTERN:
        return None
    out_dir = os.path.dirname(output)
    try:
        if not os.path.isabs(out_dir):
            out_dir = os.path.join(proc.cwd(), out_dir)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    camera_dir = os.path.normpath(out_dir)
    return os.path.basename(camera_dir) if os.path.dirname(camera_dir) in roots else None


def _loose_cameras(proc: psutil.Process, outputs: list[str], roots: set[str]) -> list[str]:
    """Every camera an argument or an open file names a file directly in, assuming the worst when
    unsure; from the text of the arguments and from /proc only (see the module docstring)."""
    found: list[str] = []
    cwd: str | None = None
    for arg in outputs:
        if not arg or arg.startswith("-"):
            continue
        if not os.path.isabs(arg):
            if cwd is None:
                try:
                    cwd = proc.cwd()  # a readlink in /proc: the kernel's path, no file-system access
                except (psutil.Error, OSError):
                    cwd = ""
            if not cwd:
                # Cannot place a relative path: assume the worst for the camera it names.
                named = os.path.basename(os.path.dirname(os.path.normpath(arg)))
                if named and is_safe_id(named):
                    found.append(named)
                continue
            arg = os.path.join(cwd, arg)
        camera = _camera_of(os.path.normpath(arg), roots)
        if camera is not None:
            found.append(camera)
    found.extend(camera for camera in _open_cameras(proc.pid, roots) if camera not in found)
    return found


def _camera_of(path: str, roots: set[str]) -> str | None:
    """The camera directory ``path`` lies directly in, when that is in one of ``roots``."""
    camera_dir = os.path.dirname(path)
    camera = os.path.basename(camera_dir)
    return camera if camera and os.path.dirname(camera_dir) in roots else None


def _open_cameras(pid: int, roots: set[str]) -> list[str]:
    """Cameras a process has a file open in, by the links in ``/proc/<pid>/fd`` (not followed)."""
    fd_dir = f"{PROC_ROOT}/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:  # gone, or another user's process seen by a non-root pruner
        return []
    found = []
    for fd in fds:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        camera = _camera_of(target, roots) if target.startswith("/") else None
        if camera is not None and camera not in found:
            found.append(camera)
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


def end_leftovers(mirror_dir: Path, ffmpeg: str, timeout: float) -> None:
    """At a master's start: end the ffmpegs an earlier master left recording into this mirror
    (before ours start, so no camera ever has two); one recorded by a *live* worker means a
    second master shares the mirror, which is reported and left alone."""
    found = recording_into(mirror_dir, ffmpeg, strict=True)
    for recorder in found:
        if recorder.owned:
            logs.for_camera(recorder.camera_id).error(
                "ffmpeg pid=%d of another mirror-supervisor writes into this mirror dir; two masters "
                "share %s (their state dirs differ)", recorder.proc.pid, mirror_dir)
    leftovers = [r for r in found if not r.owned]
    for recorder in leftovers:
        logs.for_camera(recorder.camera_id).warning("ending ffmpeg pid=%d left by an earlier instance",
                                                    recorder.proc.pid)
    if leftovers and (killed := end([r.proc for r in leftovers], timeout)):
        logs.master().warning("%d leftover ffmpegs ignored SIGTERM and were killed", len(killed))
