"""The master: forks one worker per mirrored camera and keeps that set equal to the database.

Modelled on a pre-fork arbiter. Signal handlers do nothing but let Python write the signal number
into a wake-up pipe; the main loop sleeps in ``select`` on that pipe and handles every signal
itself, so nothing complicated ever runs inside a handler. Each pass of the loop reaps exited
children with ``waitpid(WNOHANG)``, reads the database when a poll is due or SIGHUP asked for it,
and converges: stop what should not run, start what is missing.

Invariants the code is arranged around:
- At most one worker record per camera (``by_camera``), and a replacement is forked only after the
  previous worker is reaped *and* its process group (its ffmpeg) is empty, so one camera never has
  two ffmpegs writing into its directory.
- Every worker has a generation, increasing over the master's life. An exit is matched to its own
  record by pid; it can never remove or disturb a newer worker of the same camera.
- A database that cannot be read changes nothing: the last good camera list stays in force.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import setproctitle

from . import backoff, lifeline, logs, orphans, wakeup
from .camera import Camera
from .daemon import MASTER_TITLE
from .database import DatabaseError, RowCache, fingerprint, probe, read_table
from .ffmpeg import build_command, camera_dir
from .reconcile import diff, wanted
from .settings import Settings, SettingsError
from .status import STATUS_FILE, decode_reports, write_atomically
from .worker import WorkerSpec, default_stall_timeout, run_worker

REMAINS_POLL_SECONDS = 0.2
FULL_READ_EVERY = 60.0  # read even an unchanged-looking database this often
PRUNE_FIRST_DELAY = 30.0  # the first pass soon after start, not a whole interval later
STATUS_WRITE_INTERVAL = 0.5  # status.json at most twice a second, however busy the workers are


@dataclass
class WorkerRecord:
    camera: Camera
    key: tuple[str, ...]
    generation: int
    pid: int
    started: float
    stop_deadline: float | None = None
    killed: bool = False
    report: dict[str, Any] = field(default_factory=dict)  # the worker's latest word on itself

    @property
    def stopping(self) -> bool:
        return self.stop_deadline is not None


@dataclass
class Remains:
    """The process group of a worker that exited while its ffmpeg may still be alive."""

    pgid: int
    generation: int
    kill_at: float
    killed: bool = False


@dataclass
class Respawn:
    delay: float
    not_before: float


class Master:
    def __init__(
        self,
        settings: Settings,
        reload_settings: Callable[[], Settings] | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self._reload_settings = reload_settings
        self._on_ready = on_ready
        self.log = logs.master()
        self.workers: dict[int, WorkerRecord] = {}
        self.by_camera: dict[str, WorkerRecord] = {}
        self.remains: dict[str, Remains] = {}
        self.respawn: dict[str, Respawn] = {}
        self.desired: dict[str, Camera] = {}
        self.desired_keys: dict[str, tuple[str, ...]] = {}
        self.unrecordable: dict[str, Camera] = {}
        self.reported: dict[str, str] = {}
        self.db_error: str | None = None
        self.db_error_since: float | None = None
        self.columns: frozenset[str] = frozenset()
        self.db_fingerprint: tuple | None = None
        self.row_cache: RowCache = {}
        self._keys_basis: tuple = ()
        self.next_full_read = 0.0
        self.mount_problem: str | None = None
        self.last_reconcile: float | None = None
        self.started = time.time()
        self.ffmpeg_starts: Counter[str] = Counter()
        self.death_notes: dict[str, str] = {}
        self.next_generation = 1
        self.next_poll = 0.0
        self.next_prune = time.monotonic() + min(settings.prune_interval, PRUNE_FIRST_DELAY)
        self.pruner_pid: int | None = None
        self._reload_requested = False
        self._shutdown_requested = False
        self._said_disabled = False
        self._signals: wakeup.SignalPipe | None = None
        self._reports_r = self._reports_w = -1
        self._reports_buffer = b""
        self._status_dirty = True
        self._next_status_write = 0.0

    # -- life cycle ---------------------------------------------------------------------------

    def run(self) -> int:
        self._setup()
        self.log.info(
            "master started pid=%d db=%s mirror_dir=%s poll=%.1fs stop_timeout=%.1fs recorder_enabled=%s",
            os.getpid(), self.settings.db, self.settings.mirror_dir, self.settings.poll_interval,
            self.settings.stop_timeout, self.settings.recorder_enabled,
        )
        self._warn_about_volume()
        self._end_orphans()
        self._refresh()
        if self._on_ready is not None:
            self._on_ready()
        self._converge()
        while not self._shutdown_requested:
            self._publish()
            self._wait(self._next_timeout())
            self._reap()
            if self._shutdown_requested:
                break
            if self._reload_requested:
                self._reload_requested = False
                self._reload()
            elif time.monotonic() >= self.next_poll:
                self._refresh()
            self._converge()
            self._maybe_prune(time.monotonic())
        self._shutdown()
        return 0

    def _setup(self) -> None:
        if not lifeline.become_subreaper():
            self.log.warning("cannot become child subreaper; orphaned ffmpegs are polled instead")
        self._signals = wakeup.SignalPipe()
        # Workers inherit the write end; O_NONBLOCK so a worker can never block on reporting.
        self._reports_r, self._reports_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._update_title()

    def _shutdown(self) -> None:
        self.log.info("shutting down: stopping %d workers", len(self.workers))
        for record in list(self.by_camera.values()):
            if not record.stopping:
                self._stop(record, "shutdown")
        self.respawn.clear()
        if self.pruner_pid is not None:
            lifeline.signal_process(self.pruner_pid, signal.SIGTERM)  # any unlink is atomic; stop mid-pass
        while self.workers or self.remains or self.pruner_pid is not None:
            self._reap()
            now = time.monotonic()
            self._check_remains(now)
            self._enforce_deadlines(now)
            if not (self.workers or self.remains or self.pruner_pid is not None):
                break
            self._publish()
            self._wait(self._next_timeout())
        self._remove_status()
        self.log.info("all workers stopped; master exiting")

    # -- signals ------------------------------------------------------------------------------

    def _wait(self, timeout: float) -> None:
        assert self._signals is not None
        signals, readable = self._signals.wait(timeout, (self._reports_r,))
        if readable:
            self._read_reports()
        for sig in signals:
            self._handle_signal(sig)

    def _handle_signal(self, sig: int) -> None:
        if sig == signal.SIGHUP:
            if not self._shutdown_requested:
                self._reload_requested = True
        elif sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            if not self._shutdown_requested:
                self.log.info("received %s", signal.Signals(sig).name)
            self._shutdown_requested = True

    def _next_timeout(self) -> float:
        """Until the earliest thing the loop must do; every deadline here is acted on when it
        passes, or excluded once it cannot be (else the loop would spin on a past deadline)."""
        now = time.monotonic()
        moments = [r.stop_deadline for r in self.workers.values() if r.stop_deadline and not r.killed]
        if self.remains:
            moments.append(now + REMAINS_POLL_SECONDS)
        if self._status_dirty:
            moments.append(self._next_status_write)
        if not self._shutdown_requested:  # shutting down: no polls, respawns or prune passes
            moments.append(self.next_poll)
            moments += [r.not_before for cid, r in self.respawn.items() if self._awaits_respawn(cid)]
            if self.settings.prune_interval > 0 and self.pruner_pid is None:
                moments.append(self.next_prune)
        return max(0.0, min(moments, default=now + self.settings.poll_interval) - now)

    def _awaits_respawn(self, cid: str) -> bool:
        """A respawn entry outlives the respawn (it remembers the delay); it only counts as a
        deadline while the camera is wanted and has no worker and no remains."""
        return cid in self.desired and cid not in self.by_camera and cid not in self.remains

    # -- database -----------------------------------------------------------------------------

    def _reload(self) -> None:
        self.log.info("reload requested (SIGHUP)")
        if self._reload_settings is not None:
            try:
                new = self._reload_settings()
            except SettingsError as exc:
                self.log.error("reload: settings not changed: %s", exc)
            else:
                if new != self.settings:
                    self.log.info("reload: settings changed")
                self.settings = new
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        """Read the wanted cameras; on failure keep the last good list (no news is not 'none')."""
        now = time.monotonic()
        self.next_poll = now + self.settings.poll_interval
        if not self.settings.recorder_enabled:
            if not self._said_disabled:
                self.log.info("recorder disabled: no camera is mirrored")
            self._said_disabled = True
            self.desired, self.desired_keys, self.unrecordable = {}, {}, {}
            self._status_dirty = True
            return
        self._said_disabled = False
        self._check_mount()
        mark = fingerprint(self.settings.db)
        unchanged = not force and mark == self.db_fingerprint and now < self.next_full_read
        try:
            if unchanged and self.db_error is None:
                # Nothing committed since the last good read: only check it is still readable.
                self._check_columns(probe(self.settings.db))
                return
            cameras, columns = read_table(self.settings.db, cache=self.row_cache)
            self._check_columns(columns)
        except DatabaseError as exc:
            if str(exc) != self.db_error:
                self.log.error("database unreadable; keeping %d workers as they are: %s", len(self.by_camera), exc)
                self.db_error_since = self.db_error_since or time.time()
                self._status_dirty = True
            self.db_error = str(exc)
            return
        if self.db_error is not None:
            self.log.info("database readable again")
            self.db_error = self.db_error_since = None
        self.columns = columns
        self.db_fingerprint, self.next_full_read = mark, now + FULL_READ_EVERY
        good, bad = wanted(cameras, True)
        self._report_rows(cameras, bad)
        self.last_reconcile = time.time()
        self._status_dirty = True
        self.unrecordable = bad
        self.desired_keys = self._keys(good)  # before self.desired changes: it compares with it
        self.desired = good

    def _check_columns(self, columns: frozenset[str]) -> None:
        """A column that was there and is gone is a migration in progress or damage, not an
        older schema: taking defaults now could stop or restart every camera."""
        lost = self.columns - columns
        if lost:
            raise DatabaseError(f"table 'cameras' lost column(s) {', '.join(sorted(lost))} since the last read")

    def _keys(self, cameras: dict[str, Camera]) -> dict[str, tuple[str, ...]]:
        """Each camera's ffmpeg argv. An unchanged row comes back from the row cache as the very
        same object, so its argv is reused unless the ffmpeg binary or mirror dir changed."""
        basis = (self.settings.ffmpeg, self.settings.mirror_dir)
        keys = {}
        for cid, camera in cameras.items():
            if basis == self._keys_basis and self.desired.get(cid) is camera and cid in self.desired_keys:
                keys[cid] = self.desired_keys[cid]
            else:
                keys[cid] = build_command(self.settings.ffmpeg, camera, self.settings.mirror_dir)
        self._keys_basis = basis
        return keys

    def _report_rows(self, cameras: list[Camera], bad: dict[str, Camera]) -> None:
        """Log each camera's problem or warnings once, when they change, not on every poll."""
        current: dict[str, str] = {}
        for camera in cameras:
            if camera.id in bad:
                current[camera.id] = "not recorded: " + (bad[camera.id].problem or "")
            elif camera.mirrored and camera.warnings:
                current[camera.id] = "; ".join(camera.warnings)
        for cid, text in current.items():
            if self.reported.get(cid) != text:
                level = logging.ERROR if cid in bad else logging.WARNING
                logs.for_camera(cid if cid else "(empty-id)").log(level, "%s", text)
        self.reported = current

    # -- converging ---------------------------------------------------------------------------

    def _converge(self) -> None:
        now = time.monotonic()
        running = {cid: r.key for cid, r in self.by_camera.items() if not r.stopping}
        desired = {} if self.mount_problem else self.desired
        plan = diff(running, {cid: self.desired_keys[cid] for cid in desired})
        for cid in plan.stop:
            self._stop(self.by_camera[cid], self.mount_problem or "no longer mirrored")
        for cid in plan.restart:
            self._stop(self.by_camera[cid], "recording settings changed; restarting")
        self._check_remains(now)
        for cid, camera in desired.items():
            if cid in self.by_camera or cid in self.remains:
                continue
            pending = self.respawn.get(cid)
            if pending is not None and now < pending.not_before:
                continue
            self._spawn(camera, self.desired_keys[cid])
        for cid in [cid for cid in self.respawn if cid not in self.desired]:
            del self.respawn[cid]
        self._enforce_deadlines(now)

    def _spawn(self, camera: Camera, key: tuple[str, ...]) -> None:
        generation = self.next_generation
        self.next_generation += 1
        spec = WorkerSpec(
            camera=camera,
            argv=key,
            directory=camera_dir(self.settings.mirror_dir, camera.id),
            generation=generation,
            stop_timeout=self.settings.stop_timeout,
            master_pid=os.getpid(),
            status_fd=self._reports_w,
            stall_timeout=self.settings.stall_timeout or default_stall_timeout(camera.segment_seconds),
        )
        try:
            pid = self._fork(lambda: run_worker(spec, self._inherited_fds()))
        except OSError as exc:
            self.log.error("cannot fork a worker for %s: %s", camera.id, exc)
            self.respawn[camera.id] = Respawn(backoff.SPAWN_FAILED_DELAY, time.monotonic() + backoff.SPAWN_FAILED_DELAY)
            return
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the worker did it first, or already exited
        record = WorkerRecord(camera, key, generation, pid, time.monotonic())
        self.workers[pid] = record
        self.by_camera[camera.id] = record
        self._status_dirty = True
        logs.for_camera(camera.id).info("worker started gen=%d pid=%d", generation, pid)

    def _fork(self, child: Callable[[], int]) -> int:
        """Fork a child that runs ``child()`` and exits with its result; it never returns here."""
        _flush_logs()
        # Objects that exist now are shared with the child; frozen, the child's garbage collector
        # never writes to them, so their pages stay shared instead of being copied.
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

    def _inherited_fds(self) -> tuple[int, ...]:
        """The master's own descriptors, which a child closes (the report pipe's write end stays)."""
        assert self._signals is not None
        return (*self._signals.fds, self._reports_r)

    # -- pruning ------------------------------------------------------------------------------

    def _maybe_prune(self, now: float) -> None:
        """Start a retention pass in a short-lived child when one is due.

        A child process, not a thread: a pass over 100 cameras x 1,440 files is about 1.5 s of
        file I/O that must never delay signals, reaping or reconcile, and a master with a thread
        would fork workers while that thread may hold locks. The child reads the database itself
        (a worker never does); an unreadable database skips the pass.
        """
        if self.settings.prune_interval <= 0 or self.pruner_pid is not None or now < self.next_prune:
            return
        self.next_prune = now + self.settings.prune_interval
        settings, master_pid = self.settings, os.getpid()
        try:
            self.pruner_pid = self._fork(lambda: _prune_child(settings, self._inherited_fds(), master_pid))
        except OSError as exc:
            self.log.error("cannot fork the pruner: %s", exc)

    def _stop(self, record: WorkerRecord, reason: str) -> None:
        record.stop_deadline = time.monotonic() + self.settings.stop_timeout
        self._status_dirty = True
        logs.for_camera(record.camera.id).info("stopping worker gen=%d pid=%d: %s", record.generation, record.pid, reason)
        lifeline.signal_process(record.pid, signal.SIGTERM)

    def _enforce_deadlines(self, now: float) -> None:
        for record in self.workers.values():
            if record.stop_deadline is not None and not record.killed and now >= record.stop_deadline:
                logs.for_camera(record.camera.id).warning(
                    "worker gen=%d pid=%d did not stop within %.1fs; killing its process group",
                    record.generation, record.pid, self.settings.stop_timeout,
                )
                lifeline.signal_group(record.pid, signal.SIGKILL)
                record.killed = True

    # -- reaping ------------------------------------------------------------------------------

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            record = self.workers.pop(pid, None)
            if record is not None:
                self._worker_exited(record, os.waitstatus_to_exitcode(status))
            elif pid == self.pruner_pid:
                self.pruner_pid = None
                if os.waitstatus_to_exitcode(status) != 0:
                    self.log.warning("prune pass ended with %s", os.waitstatus_to_exitcode(status))
            # anything else: an adopted ffmpeg of a worker that died before it

    def _worker_exited(self, record: WorkerRecord, code: int) -> None:
        cid = record.camera.id
        log = logs.for_camera(cid)
        if self.by_camera.get(cid) is record:
            del self.by_camera[cid]
        self._status_dirty = True
        now = time.monotonic()
        how = f"signal {-code}" if code < 0 else f"status {code}"
        if record.stopping:
            log.info("worker exited gen=%d pid=%d %s", record.generation, record.pid, how)
            self.respawn.pop(cid, None)
        else:
            lived = now - record.started
            previous = self.respawn.get(cid)
            delay = backoff.worker_respawn_delay(previous.delay if previous else 0.0, lived)
            self.respawn[cid] = Respawn(delay, now + delay)
            self.death_notes[cid] = f"worker gen={record.generation} died unexpectedly ({how}) after {lived:.0f}s"
            log.error(
                "worker died unexpectedly gen=%d pid=%d %s after %.1fs; replacing it in %.0fs",
                record.generation, record.pid, how, lived, delay,
            )
        if lifeline.group_alive(record.pid):
            # Its ffmpeg outlived it (it was SIGKILLed, or crashed): end that first, then replace.
            lifeline.signal_group(record.pid, signal.SIGTERM)
            self.remains[cid] = Remains(record.pid, record.generation, now + self.settings.stop_timeout)

    def _check_remains(self, now: float) -> None:
        for cid, rest in list(self.remains.items()):
            if not lifeline.group_alive(rest.pgid):
                del self.remains[cid]
            elif now >= rest.kill_at and not rest.killed:
                logs.for_camera(cid).warning("ffmpeg of dead worker gen=%d still alive; killing it", rest.generation)
                lifeline.signal_group(rest.pgid, signal.SIGKILL)
                rest.killed = True

    # -- the mirror volume and leftovers ----------------------------------------------------------

    def _check_mount(self) -> None:
        """With --require-mount, record only onto the mounted volume, never onto what is under it."""
        mirror_dir = self.settings.mirror_dir
        problem = None
        if self.settings.require_mount and not os.path.ismount(mirror_dir):
            problem = f"mirror dir {mirror_dir} is not a mount point (--require-mount): not recording"
        if problem != self.mount_problem:
            if problem:
                self.log.error("%s", problem)
            else:
                self.log.info("mirror dir %s is mounted: recording", mirror_dir)
            self.mount_problem = problem
            self._status_dirty = True

    def _warn_about_volume(self) -> None:
        if self.settings.require_mount:
            return
        try:
            same = os.stat(self.settings.mirror_dir).st_dev == os.stat("/").st_dev
        except OSError:
            return
        if same:
            self.log.warning("mirror dir %s is on the same filesystem as /: it is not a separate volume",
                             self.settings.mirror_dir)

    def _end_orphans(self) -> None:
        found = orphans.recorders(self.settings.mirror_dir, self.settings.ffmpeg)
        for recorder in found:
            if recorder.owned:
                logs.for_camera(recorder.camera_id).error(
                    "ffmpeg pid=%d of another mirror-supervisor writes into this mirror dir; two masters "
                    "share %s (their state dirs differ)", recorder.proc.pid, self.settings.mirror_dir)
        leftovers = [r for r in found if not r.owned]
        if not leftovers:
            return
        for recorder in leftovers:
            logs.for_camera(recorder.camera_id).warning(
                "ending ffmpeg pid=%d left by an earlier instance", recorder.proc.pid)
        killed = orphans.end([r.proc for r in leftovers], self.settings.stop_timeout)
        if killed:
            self.log.warning("%d leftover ffmpegs ignored SIGTERM and were killed", len(killed))

    # -- reports and presentation -------------------------------------------------------------

    def _read_reports(self) -> None:
        while True:
            try:
                chunk = os.read(self._reports_r, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._reports_buffer += chunk
        reports, self._reports_buffer = decode_reports(self._reports_buffer)
        for report in reports:
            record = self.by_camera.get(report["camera"])
            if record is None or record.generation != report.get("generation"):
                continue  # a report from an older generation never describes the current worker
            starts = report.get("ffmpeg_starts") or 0
            self.ffmpeg_starts[record.camera.id] += max(0, starts - (record.report.get("ffmpeg_starts") or 0))
            record.report = report
            self._status_dirty = True

    def _snapshot(self) -> dict[str, Any]:
        cameras = []
        for cid in sorted(set(self.desired) | set(self.by_camera) | set(self.unrecordable)):
            record = self.by_camera.get(cid)
            row: dict[str, Any] = {"id": cid, "state": "starting", "generation": None, "worker_pid": None,
                                   "ffmpeg_pid": None, "ffmpeg_started": None,
                                   "restarts": max(0, self.ffmpeg_starts[cid] - 1),
                                   "last_error": self.death_notes.get(cid)}
            if record is not None:
                report = record.report
                row.update(generation=record.generation, worker_pid=record.pid,
                           ffmpeg_pid=report.get("ffmpeg_pid"), ffmpeg_started=report.get("ffmpeg_started"),
                           state="stopping" if record.stopping else report.get("state", "starting"))
                row["last_error"] = report.get("last_error") or row["last_error"]
            elif cid in self.unrecordable:
                row.update(state="error", last_error=self.unrecordable[cid].problem)
            elif self.mount_problem:
                row.update(state="error", last_error=self.mount_problem)
            elif cid in self.respawn or cid in self.remains:
                row["state"] = "backoff"
            cameras.append(row)
        return {
            "version": 1,
            "updated": time.time(),
            "master": {
                "pid": os.getpid(),
                "started": self.started,
                "recorder_enabled": self.settings.recorder_enabled,
                "mirror_dir": str(self.settings.mirror_dir),
                "db_path": str(self.settings.db),
                "db": {"state": "error" if self.db_error else "ok", "error": self.db_error, "since": self.db_error_since},
                "last_reconcile": self.last_reconcile,
            },
            "cameras": cameras,
        }

    def _publish(self) -> None:
        """Write status.json and the title when something changed, at most twice a second."""
        now = time.monotonic()
        if not self._status_dirty or now < self._next_status_write:
            return
        self._status_dirty = False
        self._next_status_write = now + STATUS_WRITE_INTERVAL
        snapshot = self._snapshot()
        self._update_title(snapshot)
        try:
            write_atomically(Path(self.settings.state_dir) / STATUS_FILE, json.dumps(snapshot, indent=1))
        except OSError as exc:
            self.log.warning("cannot write status file in %s: %s", self.settings.state_dir, exc)

    def _remove_status(self) -> None:
        try:
            (Path(self.settings.state_dir) / STATUS_FILE).unlink()
        except OSError:
            pass

    def _update_title(self, snapshot: dict[str, Any] | None = None) -> None:
        title = f"{MASTER_TITLE} cameras={len(self.desired)}"
        if snapshot is not None:
            states = Counter(row["state"] for row in snapshot["cameras"] if row["id"] in self.desired)
            title += "".join(f" {state}={states[state]}" for state in sorted(states))
        if self.db_error:
            title += " db=error"
        if not self.settings.recorder_enabled:
            title += " disabled"
        setproctitle.setproctitle(title)


def _prune_child(settings: Settings, inherited_fds: tuple[int, ...], master_pid: int) -> int:
    """The pruner process: default signal handling, dies with the master, one pass, exit."""
    from .prune import log_report, run_pass

    signal.set_wakeup_fd(-1)
    for sig in wakeup.HANDLED_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    lifeline.close_fds(inherited_fds)
    lifeline.die_with_parent(master_pid, signal.SIGKILL)
    wakeup.unblock_handled()
    setproctitle.setproctitle("mirror-supervisor: prune")
    assert settings.mirror_dir is not None
    log_report(run_pass(settings.db, settings.mirror_dir))
    return 0


def _flush_logs() -> None:
    for handler in logging.getLogger(logs.LOGGER_NAME).handlers:
        handler.flush()
