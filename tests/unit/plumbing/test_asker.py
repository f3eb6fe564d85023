"""The kept asking child (plumbing/asker.py), with real processes: it answers, is reused, and one
that does not answer in time is killed and replaced."""

import os
import signal
import time

import psutil

from mirror_supervisor.plumbing.asker import Asker


def test_it_answers_and_is_kept_between_asks(tmp_path):
    asker = Asker()
    try:
        assert asker.ask(tmp_path, 5.0).answered
        first = asker.pid
        assert asker.ask(tmp_path / "missing", 5.0).answered, "an error is an answer"
        assert asker.pid == first, "one child for every ask"
        child = psutil.Process(first)
        assert "volume probe" in " ".join(child.cmdline())
        assert len(os.listdir(f"/proc/{first}/fd")) == 2, "only its two pipe ends: no lock, no socket of ours"
    finally:
        asker.close()


def test_a_child_that_does_not_answer_is_killed_and_the_next_ask_forks_another(tmp_path):
    asker = Asker()
    try:
        assert asker.ask(tmp_path, 5.0).answered
        stopped = asker.pid
        os.kill(stopped, signal.SIGSTOP)  # as if asleep on a hung volume (SIGKILL still ends it)
        began = time.monotonic()
        asked = asker.ask(tmp_path, 0.3)
        assert not asked.answered and asked.stuck is None and time.monotonic() - began < 5
        assert not psutil.pid_exists(stopped) or psutil.Process(stopped).status() == psutil.STATUS_ZOMBIE
        assert asker.ask(tmp_path, 5.0).answered and asker.pid != stopped
    finally:
        asker.close()


def test_a_child_that_died_is_replaced_at_the_next_ask(tmp_path):
    asker = Asker()
    try:
        assert asker.ask(tmp_path, 5.0).answered
        dead = asker.pid
        os.kill(dead, signal.SIGKILL)
        os.waitpid(dead, 0)  # the master's loop reaps it ...
        assert asker.reaped(dead)  # ... and tells the asker
        assert asker.pid is None
        assert asker.ask(tmp_path, 5.0).answered and asker.pid not in (None, dead)
    finally:
        asker.close()


def test_a_child_that_died_unnoticed_is_replaced_by_the_same_ask(tmp_path):
    asker = Asker()
    try:
        assert asker.ask(tmp_path, 5.0).answered
        dead = asker.pid
        os.kill(dead, signal.SIGKILL)
        os.waitpid(dead, 0)
        assert asker.ask(tmp_path, 5.0).answered, "the write to a dead child fails; a new one answers"
    finally:
        asker.close()
