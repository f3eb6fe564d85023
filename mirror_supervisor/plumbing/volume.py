"""The mirror volume, seen without ever blocking the master on it.

A mirror volume can be a network mount with a *hard* mount option: when its server goes away,
every system call that touches it (``stat``, ``lstat``, ``statvfs``, ``open``) sleeps in the kernel
until the server returns, possibly for hours. A master that called ``os.path.ismount`` on the
mirror every poll would then neither reap, nor answer SIGTERM, nor write its status. So:

- whether the mirror dir is a mount point, and which file system holds it, is read from
  ``/proc/self/mountinfo`` (the kernel's table, never the volume itself);
- whether the volume *answers* is asked by a short-lived child process (:func:`probe_child`),
  which the master forks, waits for with a deadline, and only reaps: a probe that hangs marks the
  volume "not responding", and the master carries on;
- the one check that must touch the volume, whether it folds case, runs once at start.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import setproctitle

from . import titles

MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class Mount:
    point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as ``\\ooo`` octal escapes."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field) - i >= 4 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of a ``/proc/<pid>/mountinfo`` text, in table order (later mounts stack on top).

    Each line: ``id parent major:minor root mount-point options [optional...] - fstype source
    super-options``; lines that do not have that shape are skipped, not guessed at.
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            dash = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < dash + 3:
            continue
        mounts.append(Mount(_unescape(fields[4]), fields[dash + 1], _unescape(fields[dash + 2])))
    return mounts


def read_mounts(path: str = MOUNTINFO) -> list[Mount]:
    """Raises OSError if the table cannot be read (no /proc): the caller decides what that means."""
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        return parse_mountinfo(handle.read())


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount that holds ``path`` (absolute, already resolved): the longest matching mount
    point, the last one listed when several share it (it is the one on top)."""
    best: Mount | None = None
    for mount in mounts:
        point = mount.point
        inside = path == point or point == "/" or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.point)):
            best = mount
    return best


def is_mount_point(path: str, mounts: list[Mount]) -> bool:
    return any(mount.point == path for mount in mounts)


def resolve_once(path: Path) -> str:
    """The absolute, symlink-free form of the mirror dir, for comparing with the mount table.

    This touches the volume (``lstat`` of each component), so it is called at start and when the
    setting changes, never on a periodic path.
    """
    return os.path.realpath(path)


def folds_case(directory: Path) -> bool | None:
    """Does the file system of ``directory`` treat ``a`` and ``A`` as one name (vfat, exFAT)?

    Creates and removes one hidden probe file; None when that cannot be done (read-only,
    permission): the caller then assumes case matters, as on every Linux file system.
    """
    name = f".case-probe-{uuid.uuid4().hex}"
    lower = Path(directory) / name
    try:
        fd = os.open(lower, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError:
        return None
    os.close(fd)
    try:
        return os.path.lexists(Path(directory) / name.upper())
    finally:
        try:
            os.unlink(lower)
        except OSError:
            pass


def probe_main(directory: str, inherited_fds: tuple[int, ...], master_pid: int) -> int:
    """The probe process, forked by the master: 0 when the volume answered, 1 when it answered
    with an error.

    ``statvfs`` and ``stat`` both reach the file system's server (FUSE daemon, NFS server); when
    the volume hangs, this process sleeps in the kernel and the master's deadline notices.
    """
    from . import lifeline, titles

    lifeline.become_helper(titles.VOLUME_PROBE, inherited_fds, master_pid)
    try:
        os.statvfs(directory)
        os.stat(directory)
    except OSError:
        return 1
    return 0


PROBE_INTERVAL = 10.0
PROBE_TIMEOUT = 5.0
START_TIMEOUT = 15.0  # at start: a mount that is slow to wake (automount, a disk spinning up) answers well within


@dataclass(frozen=True)
class Asked:
    answered: bool
    stuck: int | None = None  # a child that did not answer and the kernel would not let go of
    refused: str | None = None  # no child could be forked to ask (EAGAIN, ENOMEM): ask again soon


def answers_within(path: Path, timeout: float) -> bool:
    """Does the volume holding ``path`` answer a ``stat`` within ``timeout``? See :func:`ask`."""
    return ask(path, timeout).answered


def ask(path: Path, timeout: float) -> Asked:
    """Ask a volume from a child, as the master's probe does, for the moments a caller would
    otherwise stat it itself: ``run`` before there is a master (an init script that never returns
    holds up the boot, possibly the NVR's own start), the master before it reads the NVR's
    database. An answer that is an error counts as an answer (the caller meets and reports it).
    A child that does not answer is SIGKILLed and, if the kernel holds it even against that, left
    behind and named in the result: it ends by itself when the volume answers. A fork the kernel
    refuses (the process limit, EAGAIN; memory, ENOMEM) is no answer *now*, never an exception:
    in the master it would fail the whole pass, and with it the systemd watchdog's beat."""
    max_fd = os.sysconf("SC_OPEN_MAX")
    try:
        pid = os.fork()
    except OSError as exc:
        return Asked(False, refused=f"cannot fork to ask: {exc.strerror or exc}")
    if pid == 0:  # pragma: no cover - the child (no imports here: a lock held at fork); exit status answers
        # Hold nothing: a child stuck on a hung volume must keep no pipe (a caller reading the
        # command's output would wait for it), no lock and no socket (a restarted master would
        # find its state dir or mirror dir still claimed) open.
        os.closerange(0, max_fd)
        setproctitle.setproctitle(titles.VOLUME_PROBE)  # if it stays stuck, ps says what it is
        code = 0
        try:
            os.stat(path)
        except OSError:
            code = 1
        os._exit(code)
    if _exited_within(pid, timeout):
        return Asked(True)
    os.kill(pid, signal.SIGKILL)
    for _ in range(25):  # a killable wait ends now; an unkillable one is not waited for
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return Asked(False)
        time.sleep(0.02)
    return Asked(False, stuck=pid)


def _exited_within(pid: int, timeout: float) -> bool:
    """Reap ``pid`` if it exits within ``timeout``: a pidfd turns readable at its exit, so the
    answer is taken the moment it comes (polling only where pidfd_open is missing)."""
    deadline = time.monotonic() + timeout
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        while True:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if pidfd is None:
                time.sleep(min(left, 0.005))
            else:
                select.select([pidfd], [], [], left)
    finally:
        if pidfd is not None:
            os.close(pidfd)


class VolumeProbe:
    """Whether the mirror volume answers, asked of one short-lived child at a time.

    The master forks :func:`probe_child` every :data:`PROBE_INTERVAL`; a probe that has not
    returned within :data:`PROBE_TIMEOUT` marks the volume "not responding". While it hangs,
    no new probe starts: a hung volume costs one sleeping process, not one per interval.
    """

    def __init__(self, now: float) -> None:
        self.pid: int | None = None
        self.deadline = 0.0
        self.next_at = now
        self.problem: str | None = None
        self.since: float | None = None

    def due(self, now: float) -> bool:
        return self.pid is None and now >= self.next_at

    def started(self, pid: int, now: float) -> None:
        self.pid, self.deadline, self.next_at = pid, now + PROBE_TIMEOUT, now + PROBE_INTERVAL

    def overdue(self, now: float, mirror_dir: object, wall: float) -> bool:
        """True when the running probe just ran out of time (the volume hangs)."""
        if self.pid is None or self.problem is not None or now < self.deadline:
            return False
        return self._set(f"mirror volume {mirror_dir} not responding (no answer in {PROBE_TIMEOUT:.0f}s)", wall)

    def ended(self, code: int, mirror_dir: object, wall: float) -> bool:
        """The probe exited; True when that changed what is known about the volume."""
        self.pid = None
        return self._set(None if code == 0 else f"mirror dir {mirror_dir} cannot be read (stat failed)", wall)

    def change_line(self, mirror_dir: object) -> tuple[int, str]:
        """The log level and line for a change :meth:`overdue` or :meth:`ended` just reported."""
        if self.problem:
            return logging.ERROR, self.problem
        return logging.INFO, f"mirror volume {mirror_dir} responds again"

    def next_deadline(self) -> float | None:
        if self.pid is None:
            return self.next_at
        return self.deadline if self.problem is None else None

    def _set(self, problem: str | None, wall: float) -> bool:
        if problem == self.problem:
            return False
        self.problem, self.since = problem, (wall if problem else None)
        return True
