"""The zygote's rehearsal (worker/warm_up.py): the worker's real steps run, and nothing of them
outlives the rehearsal in the process that ran it (signal mask, handlers, wake-up descriptor,
title, descriptors, children, files). Run in a forked child, as in the zygote."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import setproctitle
from support.forked import in_fork

from mirror_supervisor.plumbing import wakeup
from mirror_supervisor.worker import warm_up


def _state() -> dict:
    handlers = {sig: str(signal.getsignal(sig)) for sig in (*wakeup.HANDLED_SIGNALS, *wakeup.IGNORED_SIGNALS)}
    wake = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wake)
    return {"mask": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])), "handlers": handlers,
            "wakeup_fd": wake, "title": setproctitle.getproctitle(), "fds": sorted(os.listdir("/proc/self/fd")),
            "temp": sorted(n for n in os.listdir(tempfile.gettempdir()) if n.startswith("mirror-supervisor-warm-up-"))}


def test_the_rehearsal_runs_every_step_and_leaves_the_process_as_it_was():
    def body():
        signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGHUP,))  # a mask of its own, to be kept
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        setproctitle.setproctitle("test: rehearsal")
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK)  # a wake-up descriptor of its own, to be kept
        signal.set_wakeup_fd(wake_w)
        before = _state()
        error = warm_up.rehearse(os.getppid(), rounds=20)
        after = _state()
        try:
            os.waitpid(-1, os.WNOHANG)
            children = True
        except ChildProcessError:
            children = False
        return {"error": error, "before": before, "after": after, "children": children}

    got = in_fork(body)
    assert got["error"] is None
    assert got["after"] == got["before"]
    assert not got["children"]


def test_the_rehearsal_starts_a_real_child_and_logs_what_a_worker_logs(tmp_path: Path):
    def body():
        signal.pthread_sigmask(signal.SIG_BLOCK, wakeup.HANDLED_SIGNALS)
        warm_up._rounds(tmp_path, os.getppid(), 2)
        return (tmp_path / "worker.log").read_text().splitlines()

    lines = in_fork(body)
    text = "\n".join(lines)
    assert "ffmpeg started pid=" in text and "url=rtsp://***@192.0.2.1:554/stream" in text
    assert "ffmpeg exited status 0" in text  # ``true`` ran and was reaped
    assert "recording segment=" in text
    assert "ffmpeg stopped status 0" in text
    assert "secret" not in text


def test_a_failing_step_is_reported_not_raised(monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    def body():
        monkeypatch.setattr(warm_up, "_rounds", broken)
        before = _state()
        return {"error": warm_up.rehearse(os.getppid(), rounds=1), "same": _state() == before}

    got = in_fork(body)
    assert got["error"] == "OSError: [Errno 28] No space left on device"
    assert got["same"]


def test_a_recorder_starts_with_no_signal_blocked_whatever_its_starter_blocked(tmp_path: Path):
    """The zygote rehearses with the stop signals blocked; a recorder inherits no such mask (else
    SIGTERM would not stop it), here or in a worker."""
    from mirror_supervisor.worker import ffmpeg

    def body():
        signal.pthread_sigmask(signal.SIG_BLOCK, wakeup.HANDLED_SIGNALS)
        proc, fd = ffmpeg.start(("/bin/sleep", "60"), tmp_path)
        os.close(fd)
        with open(f"/proc/{proc.pid}/status") as status:
            blocked = next(line.split()[1] for line in status if line.startswith("SigBlk:"))
        proc.send_signal(signal.SIGTERM)
        return {"blocked": blocked, "code": proc.wait(timeout=10)}

    got = in_fork(body)
    assert int(got["blocked"], 16) == 0
    assert got["code"] == -signal.SIGTERM
