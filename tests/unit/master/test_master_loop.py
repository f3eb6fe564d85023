"""The master's loop with a fake operating system: no processes, no signals, a fake clock.

The real master runs against real processes in tests/integration and tests/faults; here the
rules of its loop (docs/design.md, "Master rules") are driven step by step through
:class:`~mirror_supervisor.master.system.System`'s seam: respawn back-off, stop deadlines, leftover
process groups, shutdown with stuck workers, a burst of SIGHUPs, a stale exit, and the rule that
every deadline the loop sleeps towards is one some step acts on (never a zero timeout).
"""

from __future__ import annotations

import dataclasses
import random
import signal
from pathlib import Path

import pytest

from mirror_supervisor.cameras.camera import Camera
from mirror_supervisor.master import master as master_module
from mirror_supervisor.master.master import Master
from mirror_supervisor.master.prune_schedule import PRUNE_TIMEOUT, PruneSchedule
from mirror_supervisor.master.slot import SlotState
from mirror_supervisor.master.wanted import Wanted
from mirror_supervisor.settings import Settings

STOP_TIMEOUT = 8.0


class FakeSystem:
    """Processes are pids in sets; time moves only when the master sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.signals: list[int] = []
        self.exits: list[tuple[int, int]] = []
        self.alive_groups: set[int] = set()
        self.sent: list[tuple[str, int, int]] = []
        self.forked: list[int] = []
        self.timeouts: list[float] = []
        self.next_pid = 100

    own_fds: tuple[int, ...] = ()

    def install(self) -> bool:
        return True

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1.8e9 + self.now

    def wait(self, timeout: float, fds: tuple[int, ...] = ()) -> tuple[list[int], list[int]]:
        self.timeouts.append(timeout)
        if self.signals:
            received, self.signals = self.signals, []
            return received, []
        self.now += timeout
        return [], []

    def fork(self, child) -> int:
        pid, self.next_pid = self.next_pid, self.next_pid + 1
        self.forked.append(pid)
        self.alive_groups.add(pid)
        return pid

    def prepare_workers(self, report_fd: int, close_in_child: tuple[int, ...]) -> None:
        pass

    def fork_worker(self, spec, inherited_fds: tuple[int, ...]) -> int:
        return self.fork(None)

    def close_workers(self) -> None:
        pass

    def reap(self) -> tuple[int, int] | None:
        return self.exits.pop(0) if self.exits else None

    def make_group_leader(self, pid: int) -> None:
        pass

    def kill(self, pid: int, sig: int) -> None:
        self.sent.append(("kill", pid, sig))

    def killpg(self, pgid: int, sig: int) -> None:
        self.sent.append(("killpg", pgid, sig))

    def group_alive(self, pgid: int) -> bool:
        return pgid in self.alive_groups

    def pipe(self) -> tuple[int, int]:
        return -1, -1

    def read(self, fd: int) -> bytes:
        return b""

    # -- test helpers ---------------------------------------------------------------------

    def exit(self, pid: int, code: int = 0, group_too: bool = True) -> None:
        """A child exits: the kernel sends SIGCHLD, which wakes the loop at once."""
        self.exits.append((pid, code))
        self.signals.append(signal.SIGCHLD)
        if group_too:
            self.alive_groups.discard(pid)


class FakeSource:
    """The wanted set as the test says; ``None`` answers play "database unreadable"."""

    def __init__(self) -> None:
        self.answer: Wanted | None = Wanted(rows=[])
        self.error: str | None = None
        self.error_since: float | None = None
        self.columns: frozenset[str] = frozenset()
        self.held: str | None = None
        self.last_read: float | None = None
        self.table: dict | None = None  # where the camera table comes from (camera_cache.py): not modelled here
        self.reads: list[bool] = []

    def read(self, settings, now, force=False, running=0):
        self.reads.append(force)
        return self.answer

    def learn_volume(self, settings) -> None:
        pass

    def settle(self) -> None:
        pass

    def reaped(self, pid: int) -> bool:
        return False

    def set(self, *ids: str, key: str = "v1") -> None:
        cameras = {cid: Camera(cid, mirrored=True, url=f"rtsp://h/{cid}") for cid in ids}
        self.answer = Wanted(cameras, {cid: (key, cid) for cid in ids}, {}, list(cameras.values()))


@pytest.fixture
def loop(tmp_path: Path, monkeypatch):
    """A master set up and started against fakes; ``loop.step()`` runs one pass."""
    monkeypatch.setattr(master_module.setproctitle, "setproctitle", lambda title: None)
    system, source = FakeSystem(), FakeSource()
    (tmp_path / "mirror").mkdir()
    settings = Settings(db=tmp_path / "db", mirror_dir=tmp_path / "mirror", state_dir=tmp_path,
                        poll_interval=5.0, stop_timeout=STOP_TIMEOUT, prune_interval=0.0)
    master = Master(settings, system=system, source=source)
    master.probe.next_at = float("inf")  # the volume probe forks: kept out of these tests
    master.step = lambda: master._one_pass()
    master.start = lambda: (master._setup(), master._start())
    return master, system, source


def slot_of(master: Master, cid: str):
    return master.slots[cid]


def test_a_new_camera_gets_one_worker_and_an_idle_master_sleeps(loop):
    master, system, source = loop
    source.set("cam")
    master.start()
    assert system.forked == [100] and slot_of(master, "cam").state is SlotState.RUNNING
    for _ in range(5):
        master.step()
    assert system.forked == [100], "an unchanged camera is left alone"
    assert min(system.timeouts) > 0


def test_quick_deaths_are_respawned_with_growing_delays(loop):
    master, system, source = loop
    source.set("cam")
    master.start()
    delays = []
    for _ in range(4):
        died_at = system.now
        system.exit(system.forked[-1], -9)
        before = len(system.forked)
        while len(system.forked) == before:
            master.step()
        delays.append(round(system.now - died_at, 3))
    assert delays == [1.0, 2.0, 4.0, 8.0]
    assert [master.slots["cam"].worker.generation] == [5]


def test_a_stop_escalates_to_sigkill_of_the_group_at_the_deadline(loop):
    master, system, source = loop
    source.set("cam")
    master.start()
    pid = system.forked[0]
    source.set()  # the camera is no longer mirrored
    system.signals = [signal.SIGHUP]
    started = system.now
    master.step()
    assert ("kill", pid, signal.SIGTERM) in system.sent
    assert slot_of(master, "cam").state is SlotState.STOPPING
    while ("killpg", pid, signal.SIGKILL) not in system.sent:
        master.step()
    assert system.now - started == pytest.approx(STOP_TIMEOUT)
    system.exit(pid, -9)
    master.step()
    assert "cam" not in master.slots and system.forked == [pid]


def test_a_replacement_waits_for_the_leftover_group_of_a_dead_worker(loop):
    master, system, source = loop
    source.set("cam")
    master.start()
    pid = system.forked[0]
    system.now += 60  # a healthy life: the replacement is due at once
    system.exit(pid, -9, group_too=False)  # its ffmpeg lives on
    master.step()
    assert ("killpg", pid, signal.SIGTERM) in system.sent
    assert slot_of(master, "cam").state is SlotState.REMAINS
    while ("killpg", pid, signal.SIGKILL) not in system.sent:
        master.step()
        assert system.forked == [pid], "no second ffmpeg while the first one's group lives"
    system.alive_groups.discard(pid)
    master.step()
    assert len(system.forked) == 2 and slot_of(master, "cam").state is SlotState.RUNNING


def test_a_changed_argv_restarts_only_that_camera_after_its_worker_is_gone(loop):
    master, system, source = loop
    source.set("a", "b")
    master.start()
    a, b = slot_of(master, "a").worker.pid, slot_of(master, "b").worker.pid
    source.set("a", "b")
    source.answer.keys["a"] = ("v2", "a")  # a's recording settings changed, b's did not
    system.signals = [signal.SIGHUP]
    master.step()
    assert ("kill", a, signal.SIGTERM) in system.sent and ("kill", b, signal.SIGTERM) not in system.sent
    master.step()
    assert len(system.forked) == 2, "the replacement waits until the old worker is gone"
    system.exit(a, 0)
    master.step()
    assert len(system.forked) == 3 and slot_of(master, "a").worker.key == ("v2", "a")
    assert slot_of(master, "b").worker.pid == b


def test_a_burst_of_sighups_is_one_reload(loop):
    master, system, source = loop
    source.set("cam")
    master.start()
    reads = len(source.reads)
    system.signals = [signal.SIGHUP] * 5
    master.step()
    assert source.reads[reads:] == [True]
    assert system.forked == [100]


def test_an_exit_nobody_owns_changes_nothing(loop):
    master, system, source = loop
    source.set("cam")
    master.start()
    system.exits.append((4242, 0))  # an adopted ffmpeg of a worker that died before it
    master.step()
    assert slot_of(master, "cam").state is SlotState.RUNNING and system.forked == [100]


def test_a_report_of_an_older_generation_never_describes_the_current_worker(loop):
    master, system, source = loop
    source.set("cam")
    master.start()
    slot = slot_of(master, "cam")
    assert not slot.take_report({"camera": "cam", "generation": 99, "state": "recording"})
    assert slot.take_report({"camera": "cam", "generation": 1, "state": "recording"})
    assert slot.status_row()["state"] == "recording"


def test_a_status_row_carries_the_cameras_name_for_the_status_page(loop):
    master, _, source = loop
    source.set("cam")
    master.start()
    slot = slot_of(master, "cam")
    assert slot.camera is not None
    slot.camera.name = "<img src=x onerror=alert(1)>"  # as the NVR's table holds it; the page escapes it
    assert slot.status_row()["name"] == "<img src=x onerror=alert(1)>"
    slot.refuse("no URL")
    assert slot.status_row()["name"] is None


def test_an_unreadable_database_keeps_every_worker(loop):
    master, system, source = loop
    source.set("cam")
    master.start()
    source.answer = None
    for _ in range(5):
        master.step()
    assert slot_of(master, "cam").state is SlotState.RUNNING and system.forked == [100]
    assert min(system.timeouts) > 0


def test_a_respawn_due_while_recording_is_held_is_no_deadline(loop):
    """The third spin: a respawn came due while --require-mount held recording back."""
    master, system, source = loop
    source.set("cam")
    master.start()
    system.exit(100, -9)
    source.held = "mirror dir is not a mount point"
    system.signals.append(signal.SIGHUP)  # seen in the same pass as the death
    system.timeouts.clear()
    started = system.now
    for _ in range(20):
        master.step()
    assert min(system.timeouts) > 0, "the loop must sleep, not spin"
    assert system.now - started >= 15 * 5.0, "mostly a poll interval per pass"
    assert system.forked == [100]
    source.held = None
    for _ in range(3):
        master.step()
    assert len(system.forked) == 2


def test_shutdown_with_a_stuck_worker_ends_within_the_grace(loop, caplog):
    master, system, source = loop
    source.set("cam", "stuck")
    master.start()
    good, stuck = system.forked
    system.signals = [signal.SIGTERM]

    def wait(timeout, fds=()):
        system.timeouts.append(timeout)
        if system.signals:
            received, system.signals = system.signals, []
            return received, []
        system.now += timeout
        if ("kill", good, signal.SIGTERM) in system.sent and not any(p == good for p, _ in system.exits):
            system.exit(good, 0)  # the good worker stops at once; "stuck" never does
        return [], []

    system.wait = wait
    started = system.now
    with caplog.at_level("ERROR"):
        assert master.run() == 0
    assert ("killpg", stuck, signal.SIGKILL) in system.sent
    assert system.now - started <= STOP_TIMEOUT + master_module.SHUTDOWN_GRACE + 0.01
    assert min(system.timeouts) > 0


def random_event(rng: random.Random, master, system, source) -> None:
    """One of: a worker dies (its group left alive or not), the rows change and SIGHUP comes,
    recording is held or released, the database stops or starts answering, a leftover group
    ends, or nothing (3 in 8)."""
    event = rng.randrange(8)
    live = list(master.by_pid)
    if event == 0 and live:
        system.exit(rng.choice(live), rng.choice([0, -9, 1]), group_too=rng.random() < 0.6)
    elif event == 1:
        source.set(*rng.sample(["a", "b", "c", "d"], rng.randrange(5)), key=rng.choice(["v1", "v2"]))
        system.signals.append(signal.SIGHUP)
    elif event == 2:
        source.held = rng.choice([None, "not mounted"])
    elif event == 3:
        source.answer = None if rng.random() < 0.5 else source.answer
    elif event == 4 and system.alive_groups:
        system.alive_groups.discard(rng.choice(sorted(system.alive_groups)))


@pytest.mark.parametrize("prune", [False, True], ids=["no-retention", "retention"])
def test_no_sequence_of_events_makes_the_loop_spin(loop, prune):
    """Random deaths, leftovers, reloads, holds and database faults: after every pass, the
    next timeout is positive (some step acts on every deadline the loop waits for). With
    retention on, the passes never end by themselves: each is killed at its deadline."""
    master, system, source = loop
    if prune:
        pruning(master, system)
    rng = random.Random(20261125)
    source.set("a", "b", "c")
    master.start()
    for _ in range(1500 if prune else 400):  # with retention: fake time for passes to overrun
        random_event(rng, master, system, source)
        master.step()
        master._publish()  # as the loop does before it computes its sleep
        assert master._next_timeout() > 0, f"zero timeout with slots {[(s.camera_id, s.state) for s in master.slots.values()]}"
        for slot in master.slots.values():
            deadline = slot.next_deadline(system.now, master)
            assert deadline is None or deadline > system.now
        assert len({s.camera_id for s in master.slots.values() if s.worker}) == len(master.by_pid)
        if prune and master.pruner.pid is not None and ("kill", master.pruner.pid, signal.SIGKILL) in system.sent:
            system.exit(master.pruner.pid, -9)
    if prune:
        assert sum(sent[2] == signal.SIGKILL and sent[0] == "kill" for sent in system.sent) >= 1


def step_until(master, done, what: str, steps: int = 2000) -> None:
    """Step the loop until ``done()``; fail (never hang) after ``steps`` passes (5 s of fake time each)."""
    for _ in range(steps):
        if done():
            return
        master.step()
    raise AssertionError(f"{what}: not after {steps} passes")


def pruning(master, system) -> None:
    """Turn retention on for a loop fixture (off there): the first pass 30 s after start."""
    master.settings = dataclasses.replace(master.settings, prune_interval=600.0)
    master.pruner = PruneSchedule(600.0, system.now)


def test_a_prune_pass_that_never_ends_is_killed_and_the_next_one_runs(loop, caplog):
    """One pass at a time: a pass stuck in the kernel would otherwise end retention for good."""
    master, system, source = loop
    pruning(master, system)
    source.set("cam")
    master.start()
    step_until(master, lambda: master.pruner.pid is not None, "a first prune pass")
    pruner, began = master.pruner.pid, system.now
    with caplog.at_level("ERROR"):
        for _ in range(2000):  # 5 s a step: hours of fake time
            if ("kill", pruner, signal.SIGKILL) in system.sent:
                break
            master.step()
            assert system.forked[-1] == pruner, "a second pass while one runs"
    assert system.now - began == pytest.approx(PRUNE_TIMEOUT)
    assert f"prune pass pid={pruner} still running after 1800s" in caplog.text
    for _ in range(20):  # the kernel holds it a while longer: killed once, and no second pass
        master.step()
    assert system.sent.count(("kill", pruner, signal.SIGKILL)) == 1 and master.pruner.pid == pruner
    system.exit(pruner, -9)
    master.step()
    assert master.pruner.pid not in (None, pruner), "the next pass starts once the stuck one is reaped"


def test_a_prune_pass_that_ends_in_time_is_left_alone(loop):
    master, system, source = loop
    pruning(master, system)
    source.set("cam")
    master.start()
    for _ in range(3):
        before = len(system.forked)
        step_until(master, lambda before=before: len(system.forked) > before, "the next prune pass")
        system.exit(master.pruner.pid, 0)
        master.step()
        assert master.pruner.pid is None
    assert not any(sent[0] == "kill" for sent in system.sent)
    assert min(system.timeouts) > 0
