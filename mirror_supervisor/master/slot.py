"""One camera's slot in the master: everything the master knows about one camera, in one object.

What is wanted (the camera and its ffmpeg argv, or why it is refused or held back), the current
worker (pid, generation, the deadline of its stop), the process group a dead worker left behind,
the respawn back-off, the last death note, how often ffmpeg started, and the worker's latest
report. Its :class:`~.states.SlotState` changes only in :meth:`CameraSlot.set_state`, which logs
each transition.

Two methods hold the rules, and they agree by construction: :meth:`CameraSlot.step` does what is
due now, and :meth:`CameraSlot.next_deadline` names the next moment at which ``step`` would do
something. The master sleeps until the earliest of those moments, so a deadline that nothing acts
on, the cause of every 100 %-CPU spin so far, cannot arise: after ``step(now)``,
``next_deadline(now)`` is never ``now`` or earlier.
"""

from __future__ import annotations

import signal
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..cameras.camera import Camera
from ..plumbing import logs
from ..worker import backoff
from .states import SlotState, WorkerState, shown

if TYPE_CHECKING:
    from .wanted import Wanted

REMAINS_POLL_SECONDS = 0.2  # a dead worker's ffmpeg ends in well under a second after SIGTERM
REMAINS_KILLED_POLL_SECONDS = 1.0  # after SIGKILL only the kernel can keep it: look less often


@dataclass
class Worker:
    pid: int  # also its process group: the worker leads a group shared with its ffmpeg
    generation: int
    key: tuple[str, ...]
    started: float
    report: dict[str, Any] = field(default_factory=dict)  # the worker's latest word on itself


class Signals(Protocol):
    def kill(self, pid: int, sig: int) -> None: ...

    def killpg(self, pgid: int, sig: int) -> None: ...

    def group_alive(self, pgid: int) -> bool: ...


class Actions(Protocol):
    """What a slot may ask of the master: the only ways its rules touch the world."""

    kill_all_at: float  # set when shutting down: nothing outlives it

    @property
    def stop_timeout(self) -> float: ...

    @property
    def system(self) -> Signals: ...

    def spawn(self, slot: CameraSlot) -> Worker | None: ...  # None: the fork failed


@dataclass
class CameraSlot:
    camera_id: str
    camera: Camera | None = None  # wanted and recordable
    key: tuple[str, ...] | None = None  # the ffmpeg argv it is wanted with
    refused: str | None = None  # why its row cannot be recorded
    held: str | None = None  # why recording is held back (the mirror volume is not mounted)
    state: SlotState = SlotState.IDLE
    worker: Worker | None = None
    deadline: float | None = None  # STOPPING: SIGKILL of the group; REMAINS: SIGKILL of the leftovers
    leftover: int | None = None  # process group of a dead worker whose ffmpeg still lives
    leftover_generation: int = 0
    leftover_killed: bool = False
    respawn_at: float | None = None
    respawn_delay: float = 0.0
    death_note: str | None = None
    ffmpeg_starts: int = 0
    # For the metrics (metrics.py), over the slot's life: ffmpeg restarts by reason (exit, stall,
    # stop_timeout, spawn_error), segments begun, and why the next worker is a restart.
    restarts: Counter[str] = field(default_factory=Counter)
    segments_opened: int = 0
    restart_reason: str | None = None
    last_segment: str | None = None
    ffmpeg_stalled: bool = False  # the current worker ended a stalled ffmpeg since its last start

    # -- what is wanted ----------------------------------------------------------------------

    @property
    def wanted(self) -> bool:
        return self.key is not None

    def want(self, camera: Camera, key: tuple[str, ...]) -> None:
        self.camera, self.key, self.refused = camera, key, None

    def refuse(self, problem: str) -> None:
        self.camera, self.key, self.refused = None, None, problem

    def unwant(self) -> None:
        self.camera, self.key, self.refused = None, None, None

    # -- the one place the state changes -----------------------------------------------------

    def set_state(self, new: SlotState, why: str) -> None:
        if new is not self.state:
            logs.for_camera(self.camera_id).debug("slot %s -> %s: %s", self.state, new, why)
            self.state = new

    # -- the rules ---------------------------------------------------------------------------

    def step(self, now: float, act: Actions) -> None:
        """Do what is due now to move towards what is wanted."""
        if self.state is SlotState.RUNNING:
            self._check_running(now, act)
        elif self.state is SlotState.STOPPING:
            assert self.worker is not None and self.deadline is not None
            if now >= min(self.deadline, act.kill_all_at):
                logs.for_camera(self.camera_id).warning(
                    "worker gen=%d pid=%d did not stop within %.1fs; killing its process group",
                    self.worker.generation, self.worker.pid, act.stop_timeout)
                act.system.killpg(self.worker.pid, signal.SIGKILL)
                self.restart_reason = "stop_timeout"  # counted if a replacement follows
                self.set_state(SlotState.KILLED, "stop deadline passed")
        elif self.state is SlotState.REMAINS:
            self._check_leftover(now, act)
        if self.state in (SlotState.IDLE, SlotState.BACKOFF, SlotState.HELD, SlotState.REFUSED):
            self._settle(now, act)

    def next_deadline(self, now: float, act: Actions) -> float | None:
        """When :meth:`step` next has something to do on its own; None: only an event can."""
        if self.state is SlotState.STOPPING:
            assert self.deadline is not None
            return min(self.deadline, act.kill_all_at)
        if self.state is SlotState.REMAINS:
            assert self.deadline is not None
            if self.leftover_killed:
                return now + REMAINS_KILLED_POLL_SECONDS
            return min(now + REMAINS_POLL_SECONDS, self.deadline, act.kill_all_at)
        if self.state is SlotState.BACKOFF and self.wanted and not self.held:
            return self.respawn_at
        return None

    def worker_exited(self, code: int, now: float, act: Actions) -> None:
        """The master reaped this slot's worker (matched by pid: never another generation's)."""
        worker = self.worker
        assert worker is not None
        self.worker = None
        log = logs.for_camera(self.camera_id)
        how = f"signal {-code}" if code < 0 else f"status {code}"
        if self.state in (SlotState.STOPPING, SlotState.KILLED):
            log.info("worker exited gen=%d pid=%d %s", worker.generation, worker.pid, how)
            self.respawn_at, self.respawn_delay = None, 0.0
            if self.state is SlotState.STOPPING:
                self.restart_reason = None  # it stopped when asked: a replacement is no failure
        else:
            lived = now - worker.started
            self.respawn_delay = backoff.worker_respawn_delay(self.respawn_delay, lived)
            self.respawn_at = now + self.respawn_delay
            self.death_note = f"worker gen={worker.generation} died unexpectedly ({how}) after {lived:.0f}s"
            self.restart_reason = "exit"
            log.error("worker died unexpectedly gen=%d pid=%d %s after %.1fs; replacing it in %.0fs",
                      worker.generation, worker.pid, how, lived, self.respawn_delay)
        if act.system.group_alive(worker.pid):
            # Its ffmpeg outlived it (it was SIGKILLed, or crashed): end that first, then replace.
            act.system.killpg(worker.pid, signal.SIGTERM)
            self.leftover, self.leftover_generation, self.leftover_killed = worker.pid, worker.generation, False
            self.deadline = min(now + act.stop_timeout, act.kill_all_at)
            self.set_state(SlotState.REMAINS, "worker exited, its process group did not")
        else:
            self.set_state(SlotState.BACKOFF if self.respawn_at is not None else SlotState.IDLE, "worker exited")

    def take_report(self, report: dict[str, Any]) -> bool:
        """Keep the current worker's latest report; True when it says something new."""
        worker = self.worker
        if worker is None or report.get("generation") != worker.generation or report == worker.report:
            return False  # an older generation's report never describes the current worker
        starts, before = report.get("ffmpeg_starts") or 0, worker.report.get("ffmpeg_starts") or 0
        self.ffmpeg_starts += max(0, starts - before)
        self._count(report, worker.report, max(0, starts - 1) - max(0, before - 1))
        worker.report = report
        return True

    def _count(self, report: dict[str, Any], previous: dict[str, Any], restarts: int) -> None:
        """The metrics' counters from a new report: a restart within the worker is a stall when
        the worker ended ffmpeg as stalled since the last start, else an exit; entering ``error``
        is a failed start."""
        state = report.get("state")
        if state == WorkerState.STALLED:
            self.ffmpeg_stalled = True
        elif state == WorkerState.ERROR and previous.get("state") != WorkerState.ERROR:
            self.restarts["spawn_error"] += 1
        if restarts > 0:
            self.restarts["stall" if self.ffmpeg_stalled else "exit"] += 1
            self.restarts["exit"] += restarts - 1  # reports lost in a full pipe: the causes are unknown
            self.ffmpeg_stalled = False
        segment = report.get("segment")
        if segment and segment != self.last_segment:
            self.segments_opened += 1
            self.last_segment = segment

    def status_row(self) -> dict[str, Any]:
        """This camera's row in status.json."""
        worker = self.worker
        report = worker.report if worker is not None else {}
        row: dict[str, Any] = {
            "id": self.camera_id,
            "name": self.camera.name if self.camera is not None else None,  # the NVR's, shown escaped
            "state": shown(self.state, report.get("state")),
            "generation": worker.generation if worker else None,
            "worker_pid": worker.pid if worker else None,
            "ffmpeg_pid": report.get("ffmpeg_pid"),
            "ffmpeg_started": report.get("ffmpeg_started"),
            "segment": report.get("segment"),
            "restarts": max(0, self.ffmpeg_starts - 1),
            "last_error": report.get("last_error") or self.death_note,
        }
        if self.state in (SlotState.REFUSED, SlotState.HELD):
            row["last_error"] = self.refused or self.held
        return row

    # -- helpers -----------------------------------------------------------------------------

    def _check_running(self, now: float, act: Actions) -> None:
        assert self.worker is not None
        if not self.wanted or self.held:
            self._stop(now, act, self.held or "no longer mirrored")
        elif self.worker.key != self.key:
            self._stop(now, act, "recording settings changed; restarting")

    def stop(self, now: float, act: Actions, reason: str) -> tuple[str, int, int] | None:
        """Nothing is wanted any more (shutdown): stop what runs, start nothing. Returns what the
        log line would say (camera, generation, pid) instead of writing it: the master signals
        every worker before it writes a line about any (hundreds of lines would delay the last)."""
        self.unwant()
        if self.state is not SlotState.RUNNING:
            return None
        assert self.worker is not None
        stopped = (self.camera_id, self.worker.generation, self.worker.pid)
        self._stop(now, act, reason, quiet=True)
        return stopped

    def _stop(self, now: float, act: Actions, reason: str, quiet: bool = False) -> None:
        assert self.worker is not None
        if not quiet:
            logs.for_camera(self.camera_id).info(
                "stopping worker gen=%d pid=%d: %s", self.worker.generation, self.worker.pid, reason)
        act.system.kill(self.worker.pid, signal.SIGTERM)
        self.deadline = now + act.stop_timeout
        self.set_state(SlotState.STOPPING, reason)

    def _check_leftover(self, now: float, act: Actions) -> None:
        assert self.leftover is not None and self.deadline is not None
        if not act.system.group_alive(self.leftover):
            self.leftover = None
            waiting = self.respawn_at is not None and now < self.respawn_at
            self.set_state(SlotState.BACKOFF if waiting else SlotState.IDLE, "leftover process group gone")
        elif now >= min(self.deadline, act.kill_all_at) and not self.leftover_killed:
            logs.for_camera(self.camera_id).warning(
                "ffmpeg of dead worker gen=%d still alive; killing it", self.leftover_generation)
            act.system.killpg(self.leftover, signal.SIGKILL)
            self.leftover_killed = True

    def _settle(self, now: float, act: Actions) -> None:
        """Nothing runs: decide what the slot is, and start a worker when one is due."""
        if self.refused is not None:
            self.set_state(SlotState.REFUSED, self.refused)
        elif not self.wanted:
            self.set_state(SlotState.GONE, "not wanted and nothing runs")
        elif self.held is not None:
            self.set_state(SlotState.HELD, self.held)
        elif self.respawn_at is not None and now < self.respawn_at:
            self.set_state(SlotState.BACKOFF, "respawn back-off")
        else:
            worker = act.spawn(self)
            if worker is None:
                self.restarts["spawn_error"] += 1
                self.respawn_delay = backoff.SPAWN_FAILED_DELAY
                self.respawn_at = now + backoff.SPAWN_FAILED_DELAY
                self.set_state(SlotState.BACKOFF, "fork failed")
            else:
                self.worker, self.respawn_at, self.ffmpeg_stalled = worker, None, False
                if self.restart_reason is not None:
                    self.restarts[self.restart_reason] += 1
                    self.restart_reason = None
                self.set_state(SlotState.RUNNING, "worker started")


__all__ = ["Actions", "CameraSlot", "SlotState", "Worker", "WorkerState"]


def apply_wanted(slots: dict[str, CameraSlot], wanted: Wanted) -> None:
    """A new wanted set (from the database or, at a start without one, the camera cache): every
    camera in it or with a slot is told what is wanted of it now; each slot's own rules decide
    whether that means a start, a stop, a restart or nothing (docs/design.md, "Master rules")."""
    for cid in set(slots) | set(wanted.cameras) | set(wanted.refused):
        slot = slots.setdefault(cid, CameraSlot(cid))
        if cid in wanted.cameras:
            slot.want(wanted.cameras[cid], wanted.keys[cid])
        elif cid in wanted.refused:
            slot.refuse(wanted.refused[cid])
        else:
            slot.unwant()
