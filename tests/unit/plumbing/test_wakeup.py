"""The wake-up pipe: signals and readable descriptors end a wait, whatever their numbers."""

from __future__ import annotations

import os
import resource
import signal

import pytest

from mirror_supervisor.plumbing import wakeup

HIGH_FD = 1500  # beyond select()'s FD_SETSIZE (1024), reached by a master with hundreds of workers


@pytest.fixture
def signal_pipe():
    saved = {sig: signal.getsignal(sig) for sig in (*wakeup.HANDLED_SIGNALS, *wakeup.IGNORED_SIGNALS)}
    pipe = wakeup.SignalPipe()
    yield pipe
    signal.set_wakeup_fd(-1)
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    os.close(pipe.read_fd)
    os.close(pipe.write_fd)


def test_a_descriptor_above_1024_can_be_waited_on(signal_pipe):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= HIGH_FD:
        pytest.skip(f"the hard limit on open files ({hard}) is too low here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, HIGH_FD + 1), hard))
    read_end, write_end = os.pipe()
    try:
        os.dup2(read_end, HIGH_FD)
        os.write(write_end, b"x")
        signals, readable = signal_pipe.wait(5.0, (HIGH_FD,))
        assert readable == [HIGH_FD] and signals == []
    finally:
        for fd in (read_end, write_end, HIGH_FD):
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_burst_of_one_signal_counts_once(signal_pipe):
    for _ in range(5):
        os.kill(os.getpid(), signal.SIGHUP)
    signals, _ = signal_pipe.wait(1.0)
    assert signals == [signal.SIGHUP]


def test_sigusr1_is_ignored_not_fatal(signal_pipe):
    os.kill(os.getpid(), signal.SIGUSR1)  # would end the process with its default action
    signals, _ = signal_pipe.wait(0.05)
    assert signals == []
