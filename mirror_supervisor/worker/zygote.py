"""The zygote: a small process that forks the workers, so that each is a copy of it, not of the master.

A forked child shares its parent's pages until either writes them. A worker forked from the master
kept the master's whole heap (the database code, psutil, argparse, the slots of every camera) and,
as the master went on changing its own pages, each worker was left holding a private copy of the
pages as they were at its fork: at 500 cameras that was 5.5 MiB of private memory per worker
(docs/benchmarks.md). The zygote is started once by the master (``python -m`` with a fresh
interpreter), imports only what a worker runs, freezes it (``gc.freeze``) and from then on does
nothing but fork, so every worker shares one unchanging image.

How one worker is made (docs/design.md, "Zygote"):

1. The master writes a request (the pickled :class:`~.worker.WorkerSpec`) into the request pipe
   and waits for the answer on the reply pipe (:mod:`..master.zygote_client`).
2. The zygote forks a *go-between*, which reads the request, forks the worker, makes it a process
   group leader, writes ``(generation, pid)`` to the master, then tells the worker to go and
   exits. The zygote itself never reads a request, so its memory stays as it was.
3. The go-between's exit re-parents the worker to the master, which is a child subreaper: the
   master reaps its workers and sees their exits exactly as when it forked them itself.
4. The worker waits for "go" (no "go" means its pid never reached the master: it exits, so no
   worker the master does not know can ever record), then for the re-parenting, and only then asks
   for SIGTERM at the master's death (``PR_SET_PDEATHSIG`` follows the parent of the moment, so
   asked earlier it would fire at the go-between's exit) and checks the master is its parent.

The zygote dies with the master (SIGKILL) and ends when the master closes the request pipe.
"""

from __future__ import annotations

import gc
import os
import pickle
import select
import signal
import struct
import sys
import time
from typing import Any

REQUEST = struct.Struct("!I")  # the length of the pickled spec that follows
REPLY = struct.Struct("!qq")  # (generation, worker pid); generation 0 = "ready", pid < 0 = -errno
READY = 0
REPARENT_WAIT = 5.0  # the go-between exits right after "go": its exit takes microseconds
TITLE = "mirror-supervisor: zygote"


def encode_request(spec: Any) -> bytes:
    body = pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)
    return REQUEST.pack(len(body)) + body


def _read_exact(fd: int, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = os.read(fd, size - got)
        if not chunk:
            raise EOFError(f"pipe closed after {got} of {size} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- the zygote ------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """``python -m mirror_supervisor.worker.zygote REQUEST_FD REPLY_FD MASTER_PID``."""
    request_fd, reply_fd, master_pid = (int(arg) for arg in argv[:3])
    from ..plumbing import lifeline

    lifeline.die_with_parent(master_pid, signal.SIGKILL)
    import setproctitle

    setproctitle.setproctitle(TITLE)
    _preload()
    gc.collect()
    gc.freeze()  # the image every worker shares: no collection of ours ever writes to it again
    _write_all(reply_fd, REPLY.pack(READY, os.getpid()))
    poller = select.poll()
    poller.register(request_fd, select.POLLIN)
    while True:
        events = poller.poll()
        if not any(mask & select.POLLIN for _, mask in events):
            return 0  # the master closed the request pipe (POLLHUP with nothing to read)
        try:
            pid = os.fork()
        except OSError as exc:
            _fail_one(request_fd, reply_fd, exc.errno or 1)
            continue
        if pid == 0:
            _go_between(request_fd, reply_fd, master_pid)  # never returns
        _wait_for(pid)


def _preload() -> None:
    """Everything a worker imports, now, so that no worker imports anything of its own, and what
    the modules set up on first use (the temporary directory, found by writing a file into it)."""
    import encodings.idna  # noqa: F401 - only if a camera names its host; cheap shared, dear per worker
    import tempfile

    from . import worker  # noqa: F401 - and through it ffmpeg, progress, backoff, reachability, report

    tempfile.gettempdir()
    from ..plumbing import lifeline

    lifeline.setpriv()  # looked up on PATH once, not in every worker


def _wait_for(pid: int) -> None:
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except InterruptedError:
            continue
        except ChildProcessError:
            return


def _fail_one(request_fd: int, reply_fd: int, errno: int) -> None:
    """The zygote could not fork: consume the request and tell the master, which backs off."""
    try:
        (size,) = REQUEST.unpack(_read_exact(request_fd, REQUEST.size))
        spec = pickle.loads(_read_exact(request_fd, size))
        _write_all(reply_fd, REPLY.pack(spec.generation, -errno))
    except (OSError, EOFError, pickle.UnpicklingError):
        os._exit(1)  # out of step with the master: it starts a new zygote


# -- the go-between ----------------------------------------------------------------------------


def _go_between(request_fd: int, reply_fd: int, master_pid: int) -> None:
    code = 1
    try:
        code = _make_worker(request_fd, reply_fd, master_pid)
    finally:
        os._exit(code)


def _make_worker(request_fd: int, reply_fd: int, master_pid: int) -> int:
    from ..plumbing import wakeup

    (size,) = REQUEST.unpack(_read_exact(request_fd, REQUEST.size))
    spec = pickle.loads(_read_exact(request_fd, size))
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    me = os.getpid()
    zygote_fds = (request_fd, reply_fd)
    wakeup.block_handled()  # the worker starts with them blocked, as run_worker expects
    try:
        pid = os.fork()
    except OSError as exc:
        _write_all(reply_fd, REPLY.pack(spec.generation, -(exc.errno or 1)))
        return 0
    if pid == 0:
        code = 1
        try:
            code = _worker(spec, go_r, go_w, me, zygote_fds)
        finally:
            os._exit(code)
    os.close(go_r)
    try:
        os.setpgid(pid, pid)  # before the master hears of it: its group exists when it does
    except OSError:
        pass  # the worker did it first
    try:
        _write_all(reply_fd, REPLY.pack(spec.generation, pid))
        os.write(go_w, b"g")
    except OSError:
        os.kill(pid, signal.SIGKILL)  # its pid may not have reached the master: it must not run
        return 1
    return 0


# -- the worker's first steps ---------------------------------------------------------------------


def _worker(spec: Any, go_r: int, go_w: int, go_between: int, zygote_fds: tuple[int, ...]) -> int:
    """In the new worker (signals still blocked): wait for "go" and for the master to be our
    parent, then run the worker as if the master had forked it."""
    os.close(go_w)
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
        return 0  # the master never learnt our pid
    deadline = time.monotonic() + REPARENT_WAIT
    while os.getppid() == go_between:
        if time.monotonic() > deadline:
            return 1
        time.sleep(0.0002)
    from .worker import run_worker

    return run_worker(spec, zygote_fds)  # asks for SIGTERM at the master's death, checks the parent


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
