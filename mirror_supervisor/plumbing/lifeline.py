"""Linux process plumbing that keeps children from outliving their parents (docs/design.md, "Master rules").

- A worker asks for SIGTERM when the master dies, and ffmpeg asks for SIGTERM when its worker
  dies (``PR_SET_PDEATHSIG``). The signal is tied to the *thread* that forked, so workers start
  ffmpeg from their main thread only.
- The master is a child subreaper: an ffmpeg whose worker died is re-parented to the master, which
  then reaps it and knows when it is gone.
- Each worker leads its own process group, shared with its ffmpeg, so one ``killpg`` ends both and
  "is anything of this worker still alive?" is one ``killpg(pgid, 0)``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import proc_title, wakeup

if TYPE_CHECKING:
    import logging

PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def die_with_parent(expected_parent: int, sig: int = signal.SIGTERM) -> None:
    """Ask for ``sig`` when the parent dies; if it already died, deliver it now."""
    _prctl(PR_SET_PDEATHSIG, sig)
    if os.getppid() != expected_parent:
        os.kill(os.getpid(), sig)


def parent_death_signal() -> int:
    """The signal asked for with :func:`die_with_parent`, or 0. A change of effective ids clears
    it, so code that switches ids (:mod:`owner`) asks for it again afterwards."""
    value = ctypes.c_int(0)
    if _libc.prctl(PR_GET_PDEATHSIG, ctypes.byref(value), 0, 0, 0) != 0:
        return 0
    return value.value


def become_subreaper() -> bool:
    try:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    except OSError:
        return False
    return True


def close_fds(fds: tuple[int, ...]) -> None:
    """In a forked child: close the parent's descriptors it must not hold (already closed is fine)."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def group_alive(pgid: int) -> bool:
    """True while any process (zombies included) is still in the group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_process(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_members(pgids: set[int]) -> set[int]:
    """Pids of every process whose process group is one of ``pgids`` (read from /proc)."""
    found: set[int] = set()
    if not pgids:
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) in pgids:
                found.add(int(entry))
        except OSError:
            continue
    return found


def describe(pid: int) -> str:
    """``comm=... state=... wchan=...`` of a process, from /proc, for a log line about it."""
    parts = []
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            stat = handle.read()
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        parts += [f"comm={comm}", f"state={stat[stat.rindex(')') + 2:].split(' ', 1)[0]}"]
    except (OSError, ValueError):
        return "(gone)"
    try:
        with open(f"/proc/{pid}/wchan", encoding="utf-8", errors="replace") as handle:
            parts.append(f"wchan={handle.read().strip() or '-'}")
    except OSError:
        pass
    return " ".join(parts)


def become_helper(title: str, inherited_fds: tuple[int, ...], master_pid: int) -> None:
    """In a forked helper of the master (pruner, volume probe): default signal handling (the
    master's handlers only write into its wake-up pipe, which is closed here), die with the
    master, and be recognisable in ``ps``."""
    signal.set_wakeup_fd(-1)
    for sig in wakeup.HANDLED_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    close_fds(inherited_fds)
    die_with_parent(master_pid, signal.SIGKILL)
    wakeup.unblock_handled()
    proc_title.set_title(title)


def fork_child(child: Callable[[], int]) -> int:
    """Fork a child that runs ``child()`` and exits with its result; it never returns there.

    Log buffers are flushed first (a child would write them again); objects that exist now are
    frozen, so the child's garbage collector never writes to them and their pages stay shared
    instead of being copied; the handled signals are blocked across the fork, so a signal
    arriving before the child has its own wake-up pipe waits instead of going to the parent's.
    """
    _flush_logs()
    gc.collect()
    gc.freeze()
    wakeup.block_handled()
    try:
        pid = os.fork()
    except OSError:
        wakeup.unblock_handled()
        raise
    if pid == 0:
        code = 1
        try:
            code = child()
        finally:
            _flush_logs()
            os._exit(code)
    wakeup.unblock_handled()
    return pid


def _flush_logs() -> None:
    """``logging`` is the master's: imported here, not by the workers that import this module."""
    import logging

    from .logs import LOGGER_NAME

    for handler in logging.getLogger(LOGGER_NAME).handlers:
        handler.flush()


def report_stuck(log: logging.LoggerAdapter, groups: set[int], loose: set[int]) -> None:
    """Name every process of ``groups`` (and the ``loose`` pids) still alive after SIGKILL: it
    sleeps in the kernel, typically on a hung volume, and is left behind."""
    for pid in sorted(group_members(groups) | loose):
        log.error("pid=%d %s did not end after SIGKILL; left behind (stuck in the kernel, "
                  "typically on a hung volume)", pid, describe(pid))


def exec_child_dies_with(parent: int) -> None:
    """In a forked child just before exec (ffmpeg): die with ``parent``, even if it is gone.

    The child inherits its parent's Python SIGTERM handler, which only notes the signal for a
    Python loop that never runs again before exec: a SIGTERM sent to it here would be swallowed
    and a leftover ffmpeg would record on. With the default action restored first (exec would
    restore it anyway), both the parent-death signal and the already-dead check really kill. The
    signal mask, which exec keeps, is emptied: a recorder started while its starter had signals
    blocked (the zygote's rehearsal, ``worker/warm_up.py``) still stops on SIGTERM.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    wakeup.unblock_all()
    die_with_parent(parent, signal.SIGTERM)
