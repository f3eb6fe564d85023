"""The master: forks one worker per mirrored camera and keeps that set equal to the database.

A pre-fork arbiter: signals arrive as bytes in a wake-up pipe and are handled in the main loop,
which sleeps on that pipe and the workers' report pipe, reaps with ``waitpid(WNOHANG)``, asks the
camera source for the wanted set on a poll or SIGHUP, and lets each camera's
:class:`~.slot.CameraSlot` take the step that is due. Every OS call goes through
:class:`~.system.System`. Invariants: docs/design.md, "Master rules".
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import setproctitle

from ..cameras import cache as camera_cache
from ..metrics import metrics
from ..plumbing import lifeline, logs, status_file, titles, volume
from ..plumbing.status_file import STATUS_FILE
from ..retention import prune, recorders
from ..settings import Settings, SettingsError
from ..worker.ffmpeg import camera_dir
from ..worker.report import decode_reports
from ..worker.worker import WorkerSpec, default_stall_timeout
from . import notify, publish
from .cluster_node import Node as ClusterNode
from .index_child import IndexChild
from .prune_schedule import PruneSchedule
from .slot import CameraSlot, SlotState, Worker, apply_wanted
from .system import System
from .wanted import CameraSource, Wanted

FAILED_PASS_PAUSE = 1.0  # after an unexpected error, so a failure that repeats cannot spin
SHUTDOWN_GRACE = 5.0  # after the stop timeout's SIGKILL: what is still there is stuck in the kernel
ZERO_TIMEOUT_LIMIT = 1000  # consecutive zero timeouts: a deadline nothing acts on, i.e. a spin
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


class Master:
    def __init__(self, settings: Settings, reload_settings: Callable[[], Settings] | None = None,
                 on_ready: Callable[[], None] | None = None, system: System | None = None,
                 source: CameraSource | None = None, notifier: notify.Notifier | None = None) -> None:
        self.settings = settings
        self._reload_settings = reload_settings
        self._on_ready = on_ready
        self.system = system or System()
        self.source = source or CameraSource()
        self.log = logs.master()
        self.notify = notifier or notify.Notifier()  # systemd's NOTIFY_SOCKET, if any
        self.metrics = metrics.Exporter(settings)
        self.slots: dict[str, CameraSlot] = {}
        self.by_pid: dict[int, CameraSlot] = {}
        self.wanted = Wanted()
        self.next_generation = 1
        now = self.system.monotonic()
        self.started = self.system.time()
        self.cluster = self.metrics.cluster = ClusterNode(settings, self.system, self.slots)  # --shard: this host's share
        self.index = IndexChild(self.system, settings.user)  # the segment index writer child, fed from the reports
        self.next_poll = 0.0
        self.pruner = PruneSchedule(settings.prune_interval, now)
        self.probe = volume.VolumeProbe(now)
        self.kill_all_at = float("inf")  # set by shutdown: nothing outlives the stop timeout
        self.shutting_down = False
        self._reload_requested = False
        self._reports_r = self._reports_w = -1
        self._reports_buffer = b""
        self.pacing = publish.Pacing()
        self._slots_due: float | None = None  # the earliest deadline of any slot, as of the last converge
        self._failures_logged: set[tuple[str, str, int]] = set()
        self._zero_timeouts = 0
        self._child_exited = True  # reap at the first pass whatever happened before it

    stop_timeout = property(lambda self: self.settings.stop_timeout)  # read by the slots' rules

    # -- life cycle ---------------------------------------------------------------------------

    def run(self) -> int:
        self._setup()
        try:
            self._start()
            while not self.shutting_down:
                healthy = self._guarded(self._one_pass)
                self.cluster.pass_ended(healthy)
                self.notify.beat(self.system.monotonic(), healthy)  # WATCHDOG=1 only after a good pass
        finally:
            self._shutdown()  # also when something above raised: never leave workers behind
        return 0

    def _setup(self) -> None:
        if not self.system.install():
            self.log.warning("cannot become child subreaper; orphaned ffmpegs are polled instead")
        self._reports_r, self._reports_w = self.system.pipe()
        self.system.prepare_workers(self._reports_w, self._inherited_fds())
        setproctitle.setproctitle(titles.master(0))

    def _start(self) -> None:
        s = self.settings
        self.log.info("master started pid=%d db=%s mirror_dir=%s poll=%.1fs stop_timeout=%.1fs recorder_enabled=%s",
                      os.getpid(), s.db, s.mirror_dir, s.poll_interval, s.stop_timeout, s.recorder_enabled)
        self.source.learn_volume(s)
        # ffmpegs an earlier master left recording here end before ours start (one per camera)
        mirror_dir = s.mirror_dir
        assert mirror_dir is not None
        healthy = self._guarded(lambda: recorders.end_leftovers(mirror_dir, s.ffmpeg, s.stop_timeout))
        healthy &= self._guarded(self._refresh)
        if self._on_ready is not None:
            self._on_ready()
        healthy &= self._guarded(self._converge) & self._guarded(self._publish)
        self.notify.ready()  # after the first reconcile
        self.notify.beat(self.system.monotonic(), healthy)  # a failed start beats at the first good pass

    def _one_pass(self) -> None:
        self._publish()
        self._wait(self._next_timeout())
        # waitpid after SIGCHLD (and each poll, should one be lost), not on every report's wake
        reap, self._child_exited = self._child_exited or self.system.monotonic() >= self.next_poll, False
        changed = self._reap() if reap else False
        if self.shutting_down:
            return
        share_moved = self.cluster.tick(self._inherited_fds())  # peers up or down, a camera handed back
        if self._reload_requested:
            self._reload_requested = False
            self._reload()
            changed = True
        elif self.system.monotonic() >= self.next_poll or share_moved:
            self._refresh()
            changed = True
        # slots change only on these events and at their own deadlines, not on a report's wake
        if changed or (self._slots_due is not None and self.system.monotonic() >= self._slots_due):
            self._converge()
        now = self.system.monotonic()
        self._maybe_prune(now)
        self._maybe_probe_volume(now)
        self.metrics.tick(now, self.system.fork, self._inherited_fds())
        self.index.tick(self._inherited_fds(), self.settings.mirror_dir)

    def _guarded(self, step: Callable[[], None]) -> bool:
        """Run one step; an unexpected error is logged once and the loop carries on after a pause."""
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - the point is to survive anything
            self._unexpected(exc)
            self._zero_timeouts = 0  # a watchdog beat left due by this pass is no spin: we pause
            try:
                self._wait(FAILED_PASS_PAUSE)
            except Exception:  # noqa: BLE001
                time.sleep(FAILED_PASS_PAUSE)
            return False
        return True

    def _unexpected(self, exc: BaseException) -> None:
        logs.once_per_place(self.log, exc, self._failures_logged, "unexpected error, carrying on (logged once)")

    def _shutdown(self) -> None:
        """Stop every worker in parallel. What the kernel still holds after the grace time (a
        process on a hung volume cannot die, even of SIGKILL) is named in the log, and we exit."""
        self.log.info("shutting down: stopping %d workers", len(self.by_pid))
        self.notify.stopping()
        self.shutting_down = True
        self.kill_all_at = self.system.monotonic() + self.settings.stop_timeout
        give_up = self.kill_all_at + SHUTDOWN_GRACE
        now = self.system.monotonic()
        stopped = [stop for slot in self.slots.values() if (stop := slot.stop(now, self, "shutdown"))]
        for camera, generation, pid in stopped:  # after every SIGTERM: no worker waits for these lines
            logs.for_camera(camera).info("stopping worker gen=%d pid=%d: shutdown", generation, pid)
        self.system.close_workers()
        for pid in self._helpers():
            self.system.kill(pid, signal.SIGKILL if pid != self.pruner.pid else signal.SIGTERM)  # unlinks are atomic
        while self._children_left():
            now = self.system.monotonic()
            if now >= give_up:
                groups = set(self.by_pid) | {s.leftover for s in self.slots.values() if s.leftover}
                lifeline.report_stuck(self.log, groups, self._helpers() | self.index.pids())
                break
            try:
                self._reap()
                self._converge()
                self.index.stop(bool(self.by_pid), self._inherited_fds(), self.settings.mirror_dir)  # after the workers
                if not self._children_left():
                    break
                self._publish()
                self._wait(min(self._next_timeout(), give_up - now))
            except Exception as exc:  # noqa: BLE001
                self._unexpected(exc)
                time.sleep(0.2)
        status_file.remove(self.settings.state_dir)
        self.metrics.remove_files()
        self.cluster.remove_files()
        self.log.info("all workers stopped; master exiting")

    def _helpers(self) -> set[int]:
        return {pid for pid in (self.pruner.pid, self.probe.pid) if pid is not None} | self.metrics.pids() | self.cluster.pids()

    def _children_left(self) -> bool:
        return bool(self.by_pid or any(s.leftover for s in self.slots.values()) or self._helpers() or self.index.pids())

    # -- signals and deadlines ----------------------------------------------------------------

    def _wait(self, timeout: float) -> None:
        signals, readable = self.system.wait(timeout, (self._reports_r,))
        if readable:
            self._read_reports()
        for sig in signals:
            if sig == signal.SIGCHLD:
                self._child_exited = True
            elif sig == signal.SIGHUP and not self.shutting_down:
                self._reload_requested = True  # a burst of SIGHUPs is one reload
            elif sig in STOP_SIGNALS:
                if not self.shutting_down:
                    self.log.info("received %s", signal.Signals(sig).name)
                self.shutting_down = True

    def _next_timeout(self) -> float:
        """Until the earliest moment a step will act on; a long run of zero timeouts all the same
        (a bug) is logged once and slowed down: it costs latency, not a core."""
        now = self.system.monotonic()
        moments = [d for d in (self._slots_due, self.index.next_deadline()) if d is not None]
        if (moment := self.pacing.next_moment()) is not None:
            moments.append(moment)
        if self.probe.pid is not None and self.probe.problem is None:
            moments.append(self.probe.deadline)
        if not self.shutting_down:  # shutting down: no polls, probes or prune passes
            moments.append(self.next_poll)
            if self.probe.pid is None:
                moments.append(self.probe.next_at)
            helpers = (self.pruner.next_moment(self.settings.prune_interval), self.notify.next_beat,
                       self.metrics.next_deadline(), self.cluster.next_deadline())
            moments += [d for d in helpers if d is not None and d < float("inf")]
        timeout = max(0.0, min(moments, default=now + self.settings.poll_interval) - now)
        self._zero_timeouts = 0 if timeout > 0 else self._zero_timeouts + 1
        if self._zero_timeouts == ZERO_TIMEOUT_LIMIT:
            self.log.error("main loop found a past deadline %d times in a row; slowing down (a bug: "
                           "please report it with this log)", ZERO_TIMEOUT_LIMIT)
        return 0.05 if self._zero_timeouts >= ZERO_TIMEOUT_LIMIT else timeout

    # -- the wanted set -----------------------------------------------------------------------

    def _reload(self) -> None:
        self.log.info("reload requested (SIGHUP)")
        self.notify.reloading()
        try:
            if self._reload_settings is not None:
                try:
                    new = self._reload_settings()
                except SettingsError as exc:
                    self.log.error("reload: settings not changed: %s", exc)
                else:
                    if new != self.settings:
                        self.log.info("reload: settings changed")
                    self.settings = new
                    self.metrics.configure(new)
            self._refresh(force=True)
        finally:
            self.notify.ready()  # also after a failed reload: the old settings stay in force

    def _refresh(self, force: bool = False) -> None:
        """Ask for the wanted set; no news keeps the last one (a fault is never 'no cameras')."""
        self.next_poll = self.system.monotonic() + self.settings.poll_interval
        error, held = self.source.error, self.source.held
        wanted = self.cluster.select(self.source.read(self.settings, self.system.monotonic(), force, running=len(self.by_pid)))
        if (error, held) != (self.source.error, self.source.held):
            self.pacing.changed(urgent=True)
        if wanted is not None and wanted is not self.wanted:
            self.wanted = wanted
            self.pacing.changed(urgent=True)
            apply_wanted(self.slots, wanted)
        for slot in self.slots.values():
            slot.held = self.source.held

    # -- converging: every slot takes the step that is due -------------------------------------

    def _converge(self) -> None:
        now = self.system.monotonic()
        for cid, slot in list(self.slots.items()):
            before = slot.state
            slot.step(now, self)
            if slot.state is not before:
                self.pacing.changed(urgent=True)
            if slot.state is SlotState.GONE:
                del self.slots[cid]
        now = self.system.monotonic()
        self._slots_due = min((d for slot in self.slots.values() if (d := slot.next_deadline(now, self)) is not None),
                              default=None)
        self.source.settle()  # what a read left for later (the camera cache): after the forks, never before

    def spawn(self, slot: CameraSlot) -> Worker | None:
        """Fork a worker for ``slot`` (the slot asks, when one is due); None if fork failed."""
        assert slot.camera is not None and slot.key is not None and self.settings.mirror_dir is not None
        generation, self.next_generation = self.next_generation, self.next_generation + 1
        spec = WorkerSpec(
            camera=slot.camera, argv=slot.key, directory=camera_dir(self.settings.mirror_dir, slot.camera_id),
            generation=generation, stop_timeout=self.settings.stop_timeout, master_pid=os.getpid(),
            status_fd=self._reports_w, run_as=self.settings.user, log=logs.destination(),
            stall_timeout=self.settings.stall_timeout or default_stall_timeout(slot.camera.segment_seconds),
        )
        fds = self._inherited_fds()
        try:
            pid = self.system.fork_worker(spec, fds)
        except OSError as exc:
            self.log.error("cannot fork a worker for %s: %s", slot.camera_id, exc)
            return None
        self.system.make_group_leader(pid)
        worker = Worker(pid, generation, slot.key, self.system.monotonic())
        self.by_pid[pid] = slot
        logs.for_camera(slot.camera_id).info("worker started gen=%d pid=%d", generation, pid)
        self._read_reports()  # between forks: hundreds of new workers fill the 64 KiB pipe at once
        return worker

    def _inherited_fds(self) -> tuple[int, ...]:
        """The master's own descriptors, which a child closes (the report pipe's write end stays)."""
        return (*self.system.own_fds, self._reports_r, *self.index.fds)

    # -- reaping ------------------------------------------------------------------------------

    def _reap(self) -> bool:
        """Reap every exited child; True when a worker was among them (its slot changed)."""
        workers = False
        self._read_reports()  # a worker's last lines (its last segments) before its exit is taken
        while (exited := self.system.reap()) is not None:
            pid, code = exited
            slot = self.by_pid.pop(pid, None)
            if slot is not None:
                slot.worker_exited(code, self.system.monotonic(), self)
                self.pacing.changed(urgent=True)
                workers = True
            elif pid == self.probe.pid:
                self.metrics.probe_ended(code)
                if self.probe.ended(code, self.settings.mirror_dir, self.system.time()):
                    self._volume_changed()
            elif pid == self.pruner.pid:
                self.pruner.ended()
                if code != 0:
                    self.log.warning("prune pass ended with %s", code)
            elif not (self.source.reaped(pid) or self.cluster.reaped(pid, code) or self.index.reaped(pid, code)):
                self.metrics.reaped(pid, code, self.system.monotonic())  # metrics, or a dead worker's ffmpeg
        return workers

    # -- helpers: retention, the volume, leftovers ---------------------------------------------

    def _maybe_prune(self, now: float) -> None:
        """A retention pass in a child (not a thread: the master forks), handed the master's view of
        the table (one caught mid-migration cannot shorten a retention); one stuck past its deadline
        is killed (``prune_schedule``)."""
        rows, columns, master_pid, fds = self.wanted.rows, self.source.columns, os.getpid(), self._inherited_fds()
        mirror_dir = self.settings.mirror_dir
        assert mirror_dir is not None
        self.pruner.tick(now, self.settings.prune_interval, self.system, self.log,
                         lambda: prune.child_main(rows, mirror_dir, fds, master_pid, columns=columns))

    def _maybe_probe_volume(self, now: float) -> None:
        if self.probe.overdue(now, self.settings.mirror_dir, self.system.time()):
            self._volume_changed()
        if not self.probe.due(now):
            return
        directory, fds, master_pid = str(self.settings.mirror_dir), self._inherited_fds(), os.getpid()
        try:
            self.probe.started(self.system.fork(self.metrics.probe_child(directory, fds, master_pid)), now)
        except OSError as exc:
            self.log.error("cannot fork the volume probe: %s", exc.strerror)
            self.probe.next_at = now + volume.PROBE_INTERVAL

    def _volume_changed(self) -> None:
        self.log.log(*self.probe.change_line(self.settings.mirror_dir))
        self.pacing.changed(urgent=True)

    # -- reports and presentation -------------------------------------------------------------

    def _read_reports(self) -> None:
        self._reports_buffer += self.system.read(self._reports_r)
        reports, self._reports_buffer = decode_reports(self._reports_buffer)
        for report in reports:
            slot = self.slots.get(report["camera"])
            if self.index.took(report, slot):  # a segment is complete: for the index writer, not a report
                continue
            before = slot.worker.report if slot is not None and slot.worker is not None else {}
            if slot is not None and slot.take_report(report):
                self.cluster.took_report(report)  # which cameras have a complete segment
                self.pacing.changed(urgent=publish.urgent(before, report))

    def _publish(self) -> None:
        """Write status.json and the title when something changed, at most twice a second."""
        now = self.system.monotonic()
        if not self.pacing.due(now):
            return
        rows = [self.slots[cid].status_row() for cid in sorted(self.slots)]
        snapshot = publish.snapshot(publish.master_section(self.started, self.settings, self.source, self.probe.problem,
                                                          self.probe.since), rows, self.probe.problem, self.cluster.status())
        states, trouble = publish.headline(rows, {cid: slot.wanted for cid, slot in self.slots.items()},
                                           bool(self.source.error), self.probe.problem, self.settings.recorder_enabled)
        setproctitle.setproctitle(titles.master(len(self.wanted.cameras), states, **trouble))
        self.notify.status(notify.summary(len(self.wanted.cameras), states["recording"], **trouble)
                           + camera_cache.note(self.source.table))
        self.metrics.observe(now, rows, self.slots, database_up=not self.source.error, table=self.source.table)
        status_file.write(Path(self.settings.state_dir) / STATUS_FILE, snapshot, self.log)

