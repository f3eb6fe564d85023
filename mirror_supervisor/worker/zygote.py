"""The zygote: a small process that makes the workers, so that each is a copy of it, not of the master.

A forked child shares its parent's pages until either writes them. A worker forked from the master
kept the master's whole heap (the database code, psutil, argparse, the slots of every camera) and,
as the master went on changing its own pages, each worker was left holding a private copy of the
pages as they were at its fork: at 500 cameras that was 6.2 MiB of private memory per worker
(docs/benchmarks.md). The zygote is started once by the master (``python -m``, a fresh
interpreter), imports only what a worker runs, freezes it (``gc.freeze``) and from then on only
forks, so every worker shares one unchanging image.

Workers are made ahead of need as *spares* (docs/design.md, "Zygote"):

1. The master asks for a spare (one byte on a socket pair). The zygote forks a *go-between*, which
   forks the spare, makes it a process group leader, and sends the master the spare's pid with the
   write end of a pipe only that spare reads (``SCM_RIGHTS``), then lets the spare go and exits.
   The zygote itself reads nothing but that byte, so its memory stays as it was.
2. The go-between's exit re-parents the spare to the master, which is a child subreaper: the
   master reaps its workers and sees their exits exactly as when it forked them itself. The spare
   waits for that, then asks for SIGKILL at the master's death (``PR_SET_PDEATHSIG`` follows the
   parent of the moment, so asked earlier it would fire at the go-between's exit) and checks that
   the master is its parent.
3. To start a worker, the master writes the pickled :class:`~.worker.WorkerSpec` into the spare's
   pipe and closes it: the spare becomes that worker at once (a pipe write instead of two forks
   on the way from a reload to ffmpeg). A spare whose pipe closes without a spec (the master
   discards it, or dies) exits; one that is never used costs one idle process.

The zygote dies with the master (SIGKILL) and ends when the master closes its socket.
"""

from __future__ import annotations

import array
import gc
import os
import pickle
import signal
import socket
import struct
import sys
import time
from typing import Any

from ..plumbing import lifeline, proc_title, wakeup
from ..plumbing.files import read_exact
from . import heap_fill, warm_up
from .worker import run_worker

REQUEST = struct.Struct("!I")  # the length of the pickled spec that follows, in a spare's pipe
ANNOUNCE = struct.Struct("!qq")  # (kind, pid or -errno) from the zygote's side of the socket pair
READY, SPARE, FAILED, UNREHEARSED = 0, 1, 2, 3  # UNREHEARSED (before READY): warm_up.rehearse failed
ASK = b"s"  # the master's request: one more spare
ASK_LATER = b"l"  # the same, not urgent: a worker may be starting from a spare, let it have the CPU first
LATER_WAIT = 0.25  # how long a request that is not urgent waits, unless another request comes
REPARENT_WAIT = 5.0  # the go-between exits right after "go": its exit takes microseconds
TITLE = "mirror-supervisor: zygote"
SPARE_TITLE = "mirror-supervisor: spare worker"


def encode_request(spec: Any) -> bytes:
    body = pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)
    return REQUEST.pack(len(body)) + body


# -- the zygote ------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """``python -m mirror_supervisor.worker.zygote SOCKET_FD MASTER_PID``."""
    sock_fd, master_pid = int(argv[0]), int(argv[1])
    lifeline.die_with_parent(master_pid, signal.SIGKILL)
    proc_title.set_title(TITLE)
    failed = _preload(master_pid)
    sock = socket.socket(fileno=sock_fd)
    if failed is not None:
        os.write(2, f"mirror-supervisor zygote: the rehearsal of a worker's start failed: {failed}\n".encode())
        sock.sendall(ANNOUNCE.pack(UNREHEARSED, 0))
    gc.collect()
    _kept = heap_fill.fill()  # held while we serve: a worker's allocations go to pools of its own
    gc.freeze()  # the image every worker shares: no collection of ours ever writes to it again
    sock.sendall(ANNOUNCE.pack(READY, os.getpid()))
    while True:
        try:
            asked = sock.recv(1)
        except InterruptedError:
            continue
        except OSError:
            return 0  # the master closed its end with a request unread (ECONNRESET): it stops
        if not asked:
            return 0  # the master closed its end
        if asked == ASK_LATER:
            wakeup.readable(sock.fileno(), LATER_WAIT)
        try:
            pid = os.fork()
        except OSError as exc:
            sock.sendall(ANNOUNCE.pack(FAILED, -(exc.errno or 1)))
            continue
        if pid == 0:
            _go_between(sock, master_pid)  # never returns
        _wait_for(pid)


def _preload(master_pid: int) -> str | None:
    """Everything a worker imports, now, so that no worker imports anything of its own, and what
    the modules set up on first use (the temporary directory, found by writing a file into it)."""
    import encodings.idna  # noqa: F401 - only if a camera names its host; cheap shared, dear per worker
    import tempfile

    tempfile.gettempdir()
    return warm_up.rehearse(master_pid)  # failed, it costs memory, never a camera (None: every step ran)


def _wait_for(pid: int) -> None:
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except InterruptedError:
            continue
        except ChildProcessError:
            return


# -- the go-between ----------------------------------------------------------------------------


def _go_between(sock: socket.socket, master_pid: int) -> None:
    code = 1
    try:
        code = _make_spare(sock, master_pid)
    finally:
        os._exit(code)


def _make_spare(sock: socket.socket, master_pid: int) -> int:
    spec_r, spec_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    me = os.getpid()
    wakeup.block_handled()  # a worker starts with them blocked, as run_worker expects
    try:
        pid = os.fork()
    except OSError as exc:
        sock.sendall(ANNOUNCE.pack(FAILED, -(exc.errno or 1)))
        return 0
    if pid == 0:
        code = 1
        try:
            code = _spare(sock.fileno(), spec_r, (spec_w, go_w), go_r, me, master_pid)
        finally:
            os._exit(code)
    os.close(spec_r)
    os.close(go_r)
    try:
        os.setpgid(pid, pid)  # before the master hears of it: its group exists when it does
    except OSError:
        pass  # the spare did it first
    try:
        sock.sendmsg([ANNOUNCE.pack(SPARE, pid)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [spec_w]))])
        os.write(go_w, b"g")
    except OSError:
        os.kill(pid, signal.SIGKILL)  # the master may not know it: it must not linger
        return 1
    return 0


# -- the spare ---------------------------------------------------------------------------------


def _spare(sock_fd: int, spec_r: int, others: tuple[int, ...], go_r: int, go_between: int, master_pid: int) -> int:
    """In the new process (handled signals blocked): wait for "go" and for the master to be our
    parent, then for a spec, and run it as a worker the master forked itself."""
    for fd in others:
        os.close(fd)
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    try:
        go = os.read(go_r, 1)
    except OSError:
        go = b""
    os.close(go_r)
    if go != b"g":
        return 0  # the master never learnt of us
    deadline = time.monotonic() + REPARENT_WAIT
    while os.getppid() == go_between:
        if time.monotonic() > deadline:
            return 1
        time.sleep(0.0002)
    lifeline.die_with_parent(master_pid, signal.SIGKILL)  # the worker asks for SIGTERM instead
    proc_title.set_title(SPARE_TITLE)
    try:
        (size,) = REQUEST.unpack(read_exact(spec_r, REQUEST.size))
        spec = pickle.loads(read_exact(spec_r, size))
    except (OSError, EOFError):
        return 0  # discarded, or the master is gone
    os.close(spec_r)
    return run_worker(spec, (sock_fd,))  # asks for SIGTERM at the master's death, checks the parent



if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
