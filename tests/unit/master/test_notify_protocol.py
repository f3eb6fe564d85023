"""notify.py against a real AF_UNIX datagram socket, and the master loop's use of it (fake system)."""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import uuid
from pathlib import Path

import pytest
from test_master_loop import loop, random_event  # noqa: F401 - the fixture

from mirror_supervisor.master import master as master_module
from mirror_supervisor.master import notify


@pytest.fixture
def receiver():
    directory = Path(tempfile.mkdtemp(prefix="notify-", dir="/tmp"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(directory / "s"))
    sock.setblocking(False)
    yield sock, str(directory / "s")
    sock.close()
    (directory / "s").unlink()
    directory.rmdir()


def received(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_without_notify_socket_nothing_is_sent():
    notifier = notify.Notifier({})
    assert not notifier.enabled and notifier.next_beat == float("inf")
    assert notifier.send("READY=1") is False
    notifier.ready()
    notifier.beat(10.0, True)


def test_messages_reach_the_socket_in_order(receiver):
    sock, path = receiver
    notifier = notify.Notifier({"NOTIFY_SOCKET": path})
    notifier.status("recording 0/2 cameras")  # before READY=1: kept for it, not sent
    notifier.ready()
    notifier.status("recording 0/2 cameras")  # unchanged: not sent
    notifier.status("recording 2/2 cameras")
    notifier.reloading()
    notifier.ready()
    notifier.stopping()
    got = received(sock)
    assert got[0] == "READY=1\nSTATUS=recording 0/2 cameras"
    assert got[1] == "STATUS=recording 2/2 cameras"
    assert got[2].startswith("RELOADING=1\nMONOTONIC_USEC=") and got[2].split("=")[-1].isdigit()
    assert got[3:] == ["READY=1\nSTATUS=recording 2/2 cameras", "STOPPING=1"]


def test_an_abstract_socket_name_is_understood():
    name = f"mirror-supervisor-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        assert notify.Notifier({"NOTIFY_SOCKET": "@" + name}).send("READY=1")
        assert sock.recv(100) == b"READY=1"


def test_a_missing_socket_is_logged_once_and_never_raises(tmp_path, caplog):
    notifier = notify.Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level("WARNING"):
        assert notifier.send("WATCHDOG=1") is False
        assert notifier.send("WATCHDOG=1") is False
    assert len([r for r in caplog.records if "NOTIFY_SOCKET" in r.getMessage()]) == 1


def test_watchdog_beats_at_half_the_interval_and_only_after_a_healthy_pass(receiver):
    sock, path = receiver
    notifier = notify.Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"})
    assert notifier.watchdog_interval == 5.0
    notifier.beat(100.0, True)
    notifier.beat(102.0, True)  # not due yet
    notifier.beat(105.0, False)  # due, but the pass failed: skipped, and still due
    notifier.beat(105.5, False)
    assert notifier.next_beat == 105.0 and received(sock) == ["WATCHDOG=1"]
    notifier.beat(106.0, True)  # the first healthy pass after it beats at once
    assert notifier.next_beat == 111.0
    notifier.beat(110.0, True)
    assert received(sock) == ["WATCHDOG=1"]


def test_watchdog_for_another_pid_is_not_ours(receiver):
    _, path = receiver
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert notify.Notifier(env).watchdog_interval is None
    env["WATCHDOG_PID"] = str(os.getpid())
    assert notify.Notifier(env).watchdog_interval == 5.0


def test_the_variables_leave_the_environment(monkeypatch, receiver):
    _, path = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    notifier = notify.Notifier()
    assert notifier.enabled and notifier.watchdog_interval == 2.0
    assert "NOTIFY_SOCKET" not in os.environ and "WATCHDOG_USEC" not in os.environ


def test_summary():
    assert notify.summary(14, 12) == "recording 12/14 cameras"
    assert notify.summary(3, 0, db_error=True, volume_hung=True) == \
        "recording 0/3 cameras, database unreadable, mirror volume not responding"
    assert notify.summary(0, 0, disabled=True) == "recorder disabled: not recording"


# -- the master's loop ------------------------------------------------------------------------

class Recorder:
    """A notifier whose datagrams land in a list, with a watchdog of ``interval`` seconds."""

    def __init__(self, interval: float | None) -> None:
        self.notifier = notify.Notifier({})
        self.notifier.address = "/nonexistent"
        self.notifier.watchdog_interval = interval
        self.notifier.next_beat = 0.0 if interval else float("inf")
        self.sent: list[str] = []
        self.beats: list[float] = []  # the fake clock at each WATCHDOG=1
        self.clock = lambda: 0.0

        def send(*lines: str) -> bool:
            self.sent.append("\n".join(lines))
            if lines == ("WATCHDOG=1",):
                self.beats.append(self.clock())
            return True

        self.notifier.send = send  # type: ignore[method-assign]

    def lifecycle(self) -> list[str]:
        return [m.split("\n")[0] for m in self.sent if not m.startswith(("STATUS=", "WATCHDOG="))]


def with_notifier(master, interval: float | None = 10.0) -> Recorder:
    recorder = Recorder(interval)
    recorder.clock = master.system.monotonic
    master.notify = recorder.notifier
    return recorder


def test_the_master_sends_ready_reloading_ready_stopping(loop):  # noqa: F811
    master, system, source = loop
    recorder = with_notifier(master)
    source.set("cam")
    master.start()
    assert recorder.sent[0].startswith("READY=1\nSTATUS=recording 0/1 cameras")
    system.signals = [signal.SIGHUP]
    master.step()
    system.signals = [signal.SIGTERM]
    system.exit(100)
    master._shutdown()
    assert recorder.lifecycle() == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]


def test_a_failed_reload_still_says_ready(loop):  # noqa: F811
    master, system, source = loop
    recorder = with_notifier(master)
    master._reload_settings = lambda: (_ for _ in ()).throw(RuntimeError("bug"))
    master.start()
    system.signals = [signal.SIGHUP]
    assert master._guarded(master.step) is False
    assert recorder.lifecycle() == ["READY=1", "RELOADING=1", "READY=1"]


def run_for(master, system, waits: int) -> None:
    """The master's real loop (``run``) for ``waits`` sleeps, then SIGTERM."""
    real_wait = system.wait

    def wait(timeout, fds=()):
        if len(system.timeouts) >= waits and not master.shutting_down:
            system.signals.append(signal.SIGTERM)
        if master.shutting_down:
            for pid in list(master.by_pid):
                system.exit(pid, 0)
        return real_wait(timeout, fds)

    system.wait = wait
    assert master.run() == 0


def test_the_loop_wakes_for_the_watchdog_and_beats_only_after_good_passes(loop):  # noqa: F811
    master, system, source = loop
    recorder = with_notifier(master, interval=2.0)
    source.set("cam")
    run_for(master, system, 30)
    gaps = {round(b - a, 6) for a, b in zip(recorder.beats, recorder.beats[1:], strict=False)}
    assert len(recorder.beats) >= 5 and gaps == {2.0}, "an idle master (poll 5 s) beats every 2 s, the interval"
    assert min(system.timeouts) > 0 and max(system.timeouts[:30]) <= 2.0
    assert recorder.lifecycle() == ["READY=1", "STOPPING=1"]


def test_no_watchdog_while_every_pass_fails(loop):  # noqa: F811
    master, system, source = loop
    recorder = with_notifier(master, interval=2.0)
    source.set("cam")

    def broken() -> None:
        raise OSError(5, "Input/output error")

    # _publish runs first in every pass (_reap only after SIGCHLD or at a poll: a pass without
    # it completes, and a completed pass may beat)
    real_start, real_publish = master._start, master._publish
    master._start = lambda: (real_start(), setattr(master, "_publish", broken))
    master._shutdown_real = master._shutdown
    master._shutdown = lambda: (setattr(master, "_publish", real_publish), master._shutdown_real())
    run_for(master, system, 20)
    assert len(recorder.beats) == 1, "only the one at READY=1: no WATCHDOG=1 while the loop fails"
    # A failing pass acts on no deadline; the 1 s pause after each failure is what keeps it slow.
    assert len(system.timeouts) < 60, "a pass that fails every time must not spin"


def test_no_sequence_of_events_makes_the_loop_spin_with_watchdog_and_metrics(loop, tmp_path):  # noqa: F811
    """The randomized no-spin test of test_master_loop, with a watchdog and a metrics file."""
    import dataclasses
    import random

    from mirror_supervisor.metrics import metrics

    master, system, source = loop
    with_notifier(master, interval=3.0)
    master.settings = dataclasses.replace(master.settings, metrics_file=tmp_path / "m.prom")
    master.metrics = metrics.Exporter(master.settings)
    rng = random.Random(20261126)
    source.set("a", "b", "c")
    master.start()
    for _ in range(300):
        random_event(rng, master, system, source)
        healthy = master._guarded(master.step)
        master.notify.beat(system.now, healthy)
        master._publish()
        assert master._next_timeout() > 0
    assert (tmp_path / "m.prom").exists()


WATCHDOG_SEC = 30.0  # the unit's WatchdogSec=: the master beats every half of it


def test_one_failing_pass_where_a_beat_is_due_does_not_cost_the_next_beat(loop):  # noqa: F811
    """One unexpected error (here: fork failing with EAGAIN in the database read) in the very pass
    where WATCHDOG=1 is due: the next healthy pass beats at once, well within WatchdogSec, so
    systemd does not abort a master that recovered. It used to beat at 1000, 1015, 1046."""
    master, system, source = loop
    recorder = with_notifier(master, interval=WATCHDOG_SEC / 2)
    source.set("cam")
    real_read, failed = source.read, []

    def read(settings, now, force=False, running=0):
        if now >= 1030.0 and not failed:
            failed.append(now)
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real_read(settings, now, force, running)

    source.read = read
    run_for(master, system, 40)
    assert failed == [1030.0], "the failure came in the pass where the second beat was due"
    gaps = [b - a for a, b in zip(recorder.beats, recorder.beats[1:], strict=False)]
    assert recorder.beats[-1] > 1060 and len(gaps) >= 3
    assert max(gaps) < WATCHDOG_SEC, f"beats at {recorder.beats}: systemd would have aborted the master"
    assert max(gaps) <= WATCHDOG_SEC / 2 + master_module.FAILED_PASS_PAUSE, recorder.beats


def test_no_watchdog_once_every_pass_fails(loop):  # noqa: F811
    """The other side of the rule: from the moment every pass fails (here the kernel refuses to
    say which children exited), no WATCHDOG=1 goes out any more, so systemd does end a master
    that cannot do its job; and the failing loop pauses instead of spinning."""
    master, system, source = loop
    recorder = with_notifier(master, interval=WATCHDOG_SEC / 2)
    source.set("cam")
    real_reap = system.reap

    def reap():
        if system.now >= 1020.0 and not master.shutting_down:
            raise OSError(5, "Input/output error")
        return real_reap()

    system.reap = reap
    run_for(master, system, 150)
    assert recorder.beats == [1000.0, 1015.0], recorder.beats
    assert system.now > 1020.0 + 2 * WATCHDOG_SEC, "long enough for systemd to act"
    failing = system.timeouts[system.timeouts.index(next(t for t in system.timeouts if t == 1.0)):]
    assert failing.count(1.0) >= len(failing) // 2, "each failure is followed by the 1 s pause"


def test_a_beat_that_could_not_be_sent_is_sent_again_soon(loop):  # noqa: F811
    """WATCHDOG=1 goes out with MSG_DONTWAIT: a full socket (EAGAIN) loses that datagram. The
    beat is tried again a second later, not a whole interval later (past WatchdogSec)."""
    master, system, source = loop
    recorder = with_notifier(master, interval=WATCHDOG_SEC / 2)
    source.set("cam")
    delivered, send = [], recorder.notifier.send

    def lossy(*lines: str) -> bool:
        if lines == ("WATCHDOG=1",) and system.now >= 1015.0 and not delivered:
            delivered.append(system.now)
            return False  # as send() answers when sendto failed
        return send(*lines)

    recorder.notifier.send = lossy  # type: ignore[method-assign]
    run_for(master, system, 40)
    assert delivered == [1015.0] and recorder.beats[:2] == [1000.0, 1016.0], recorder.beats
    gaps = [b - a for a, b in zip(recorder.beats, recorder.beats[1:], strict=False)]
    assert max(gaps) < WATCHDOG_SEC and len(recorder.beats) >= 4
