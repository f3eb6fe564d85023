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
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import setproctitle

from . import backoff, lifeline, logs, orphans, prune, titles, volume, wakeup
from .camera import Camera, is_safe_id, mask
from .database import DatabaseError, RowCache, fingerprint, probe, read_table
from .ffmpeg import build_command, camera_dir
from .reconcile import diff, wanted
from .settings import Settings, SettingsError
from .files import STATUS_MODE, write_atomically
from .status import STATUS_FILE, decode_reports
from .worker import WorkerSpec, default_stall_timeout, run_worker

REMAINS_POLL_SECONDS = 0.2
FULL_READ_EVERY = 60.0  # read even an unchanged-looking database this often
PRUNE_FIRST_DELAY = 30.0  # the first pass soon after start, not a whole interval later
STATUS_WRITE_INTERVAL = 0.5  # status.json at most twice a second, however busy the workers are
REMAINS_KILLED_POLL_SECONDS = 1.0  # after SIGKILL, only the kernel can keep them; look less often
FAILED_PASS_PAUSE = 1.0  # after an unexpected error, so a failure that repeats cannot spin
SHUTDOWN_GRACE = 5.0  # after the stop timeout's SIGKILL: what is still there is stuck in the kernel
VOLUME_PROBE_INTERVAL = 10.0
VOLUME_PROBE_TIMEOUT = 5.0
ZERO_TIMEOUT_LIMIT = 1000  # consecutive zero timeouts: a deadline nothing acts on, i.e. a spin


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
        self.all_cameras: list[Camera] | None = None  # every row of the last good read, for the pruner
        self.fold_case = False  # the mirror volume treats ids that differ in case as one directory
        self.reported: dict[str, str] = {}
        self.db_error: str | None = None
        self.db_error_since: float | None = None
        self.columns: frozenset[str] = frozenset()
        self.db_fingerprint: tuple | None = None
        self.row_cache: RowCache = {}
        self._keys_basis: tuple = ()
        self.next_full_read = 0.0
        self.mount_problem: str | None = None
        self._mirror_real = str(settings.mirror_dir)  # resolved at start, for the mount table
        self._mirror_setting = settings.mirror_dir
        self.volume_problem: str | None = None
        self.volume_since: float | None = None
        self.probe_pid: int | None = None
        self.probe_deadline = 0.0
        self.next_probe = 0.0
        self._failures_logged: set[tuple[str, str, int]] = set()
        self._zero_timeouts = 0
        self._kill_all_at = float("inf")  # set by shutdown: nothing outlives the stop timeout
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
        try:
            self._start()
            while not self._shutdown_requested:
                self._guarded(self._one_pass)
        finally:
            # Also when something above raised: a master never leaves workers behind.
            self._shutdown()
        return 0

    def _start(self) -> None:
        self.log.info(
            "master started pid=%d db=%s mirror_dir=%s poll=%.1fs stop_timeout=%.1fs recorder_enabled=%s",
            os.getpid(), self.settings.db, self.settings.mirror_dir, self.settings.poll_interval,
            self.settings.stop_timeout, self.settings.recorder_enabled,
        )
        self._learn_volume()
        self._guarded(self._end_orphans)
        self._guarded(self._refresh)
        if self._on_ready is not None:
            self._on_ready()
        self._guarded(self._converge)

    def _one_pass(self) -> None:
        self._publish()
        self._wait(self._next_timeout())
        self._reap()
        if self._shutdown_requested:
            return
        if self._reload_requested:
            self._reload_requested = False
            self._reload()
        elif time.monotonic() >= self.next_poll:
            self._refresh()
        self._converge()
        now = time.monotonic()
        self._maybe_prune(now)
        self._maybe_probe_volume(now)

    def _guarded(self, step: Callable[[], None]) -> None:
        """Run one step of the loop; an unexpected error is logged once and the loop carries on.

        Recording must outlive a bug or an errno nobody expected (EIO, ESTALE, EACCES...): the
        workers keep recording while the master is confused. The pause keeps a failure that
        repeats on every pass from turning into a hot loop; signals still end it at once.
        """
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - the point is to survive anything
            self._unexpected(exc)
            try:
                self._wait(FAILED_PASS_PAUSE)
            except Exception:  # noqa: BLE001
                time.sleep(FAILED_PASS_PAUSE)

    def _unexpected(self, exc: BaseException) -> None:
        frames = traceback.extract_tb(exc.__traceback__)
        where = frames[-1] if frames else None
        signature = (type(exc).__name__, where.filename if where else "", where.lineno or 0 if where else 0)
        if signature in self._failures_logged:
            return
        if len(self._failures_logged) < 100:
            self._failures_logged.add(signature)
        self.log.error("unexpected error, carrying on (logged once): %s",
                       mask("".join(traceback.format_exception(exc)).strip()))

    def _setup(self) -> None:
        if not lifeline.become_subreaper():
            self.log.warning("cannot become child subreaper; orphaned ffmpegs are polled instead")
        self._signals = wakeup.SignalPipe()
        wakeup.unblock_handled()  # the entry point held SIGHUP back until this pipe existed
        # Workers inherit the write end; O_NONBLOCK so a worker can never block on reporting.
        self._reports_r, self._reports_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._update_title()

    def _shutdown(self) -> None:
        """Stop every worker in parallel; give up on what the kernel holds after the grace time.

        A process sleeping in the kernel on a hung volume cannot die, even of SIGKILL, until
        the volume answers; waiting for it would make ``stop`` hang for as long. It is named in
        the log instead, and the master exits.
        """
        self.log.info("shutting down: stopping %d workers", len(self.workers))
        self._shutdown_requested = True
        self._kill_all_at = time.monotonic() + self.settings.stop_timeout
        give_up = self._kill_all_at + SHUTDOWN_GRACE
        self._guarded(self._stop_all)
        while self._children_left():
            now = time.monotonic()
            if now >= give_up:
                self._report_stuck()
                break
            try:
                self._reap()
                now = time.monotonic()
                self._check_remains(now)
                self._enforce_deadlines(now)
                if not self._children_left():
                    break
                self._publish()
                self._wait(min(self._next_timeout(), give_up - now))
            except Exception as exc:  # noqa: BLE001
                self._unexpected(exc)
                time.sleep(0.2)
        self._remove_status()
        self.log.info("all workers stopped; master exiting")

    def _stop_all(self) -> None:
        for record in list(self.by_camera.values()):
            if not record.stopping:
                self._stop(record, "shutdown")
        self.respawn.clear()
        if self.pruner_pid is not None:
            lifeline.signal_process(self.pruner_pid, signal.SIGTERM)  # any unlink is atomic; stop mid-pass
        if self.probe_pid is not None:
            lifeline.signal_process(self.probe_pid, signal.SIGKILL)

    def _children_left(self) -> bool:
        return bool(self.workers or self.remains or self.pruner_pid is not None or self.probe_pid is not None)

    def _report_stuck(self) -> None:
        groups = {r.pid for r in self.workers.values()} | {r.pgid for r in self.remains.values()}
        loose = {pid for pid in (self.pruner_pid, self.probe_pid) if pid is not None}
        for pid in lifeline.group_members(groups) | loose:
            self.log.error("pid=%d %s did not end after SIGKILL; left behind (stuck in the kernel, "
                           "typically on a hung volume)", pid, lifeline.describe(pid))

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
        """Until the earliest thing the loop must do.

        Each deadline here is listed only while the step that acts on it would act when it
        passes; a past deadline that nothing acts on would make this 0 on every pass (a spin).
        The last lines are a guard for a rule broken anyway: a long run of zero timeouts is
        logged once and slowed down, so a bug costs a little latency, not a core.
        """
        now = time.monotonic()
        moments = [min(r.stop_deadline, self._kill_all_at) for r in self.workers.values()
                   if r.stop_deadline and not r.killed]
        if self.remains:
            killed = all(rest.killed for rest in self.remains.values())
            moments.append(now + (REMAINS_KILLED_POLL_SECONDS if killed else REMAINS_POLL_SECONDS))
        if self._status_dirty:
            moments.append(self._next_status_write)
        if self.probe_pid is not None and self.volume_problem is None:
            moments.append(self.probe_deadline)
        if not self._shutdown_requested:  # shutting down: no polls, respawns, probes or prune passes
            moments.append(self.next_poll)
            moments += self._respawn_deadlines()
            if self.settings.prune_interval > 0 and self.pruner_pid is None:
                moments.append(self.next_prune)
            if self.probe_pid is None:
                moments.append(self.next_probe)
        timeout = max(0.0, min(moments, default=now + self.settings.poll_interval) - now)
        if timeout > 0:
            self._zero_timeouts = 0
            return timeout
        self._zero_timeouts += 1
        if self._zero_timeouts == ZERO_TIMEOUT_LIMIT:
            self.log.error("main loop found a past deadline %d times in a row; slowing down (a bug: "
                           "please report it with this log)", ZERO_TIMEOUT_LIMIT)
        return 0.05 if self._zero_timeouts >= ZERO_TIMEOUT_LIMIT else 0.0

    def _wanted_now(self) -> dict[str, Camera]:
        """The cameras that should have a worker now: the one rule for converging and waiting."""
        return {} if self.mount_problem else self.desired

    def _respawn_deadlines(self) -> list[float]:
        """A respawn entry outlives the respawn (it remembers the delay); it is a deadline only
        while the camera is wanted now and has neither a worker nor remains."""
        wanted = self._wanted_now()
        return [r.not_before for cid, r in self.respawn.items()
                if cid in wanted and cid not in self.by_camera and cid not in self.remains]

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
        try:
            mark = fingerprint(self.settings.db)
            unchanged = not force and mark == self.db_fingerprint and now < self.next_full_read
            if unchanged and self.db_error is None:
                # Nothing committed since the last good read: only check it is still readable.
                self._check_columns(probe(self.settings.db))
                return
            cameras, columns = read_table(self.settings.db, cache=self.row_cache)
            self._check_columns(columns)
        except Exception as exc:  # noqa: BLE001 - any failure to read is "no news", never "no cameras"
            self._database_failed(exc)
            return
        if self.db_error is not None:
            self.log.info("database readable again")
            self.db_error = self.db_error_since = None
        self.columns = columns
        self.db_fingerprint, self.next_full_read = mark, now + FULL_READ_EVERY
        self.all_cameras = cameras
        good, bad = wanted(cameras, True, fold_case=self.fold_case)
        self._report_rows(cameras, bad)
        self.last_reconcile = time.time()
        self._status_dirty = True
        self.unrecordable = bad
        self.desired_keys = self._keys(good)  # before self.desired changes: it compares with it
        self.desired = good

    def _database_failed(self, exc: Exception) -> None:
        """Keep the last good list; log a changed reason once. The reason is built from the
        error's kind, never from values read out of the table."""
        if isinstance(exc, DatabaseError):
            reason = str(exc)
        elif isinstance(exc, OSError):
            reason = f"cannot read database {str(self.settings.db)!r}: {exc.strerror or type(exc).__name__}"
        else:
            self._unexpected(exc)
            reason = f"unexpected {type(exc).__name__} while reading database {str(self.settings.db)!r} (see log)"
        reason = mask(reason)
        if reason != self.db_error:
            self.log.error("database unreadable; keeping %d workers as they are: %s", len(self.by_camera), reason)
            self.db_error_since = self.db_error_since or time.time()
            self._status_dirty = True
        self.db_error = reason

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
                # An id that is not a plain name may hold control characters: shown quoted.
                shown = cid if is_safe_id(cid) else repr(cid[:40])
                logs.for_camera(shown).log(level, "%s", text)
        self.reported = current

    # -- converging ---------------------------------------------------------------------------

    def _converge(self) -> None:
        now = time.monotonic()
        running = {cid: r.key for cid, r in self.by_camera.items() if not r.stopping}
        desired = self._wanted_now()
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
            # Drain the report pipe between forks: hundreds of new workers report at once and
            # the pipe holds only 64 KiB; a report that does not fit is lost.
            self._read_reports()
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
        would fork workers while that thread may hold locks. The child is handed the master's
        own view of the table (the last good read, and its columns): it never reads the
        database, so a table caught mid-migration cannot shorten anyone's retention.
        """
        if self.settings.prune_interval <= 0 or self.pruner_pid is not None or now < self.next_prune:
            return
        self.next_prune = now + self.settings.prune_interval
        cameras, columns, master_pid = self.all_cameras, self.columns, os.getpid()
        assert self.settings.mirror_dir is not None
        mirror_dir, fds = self.settings.mirror_dir, self._inherited_fds()
        try:
            self.pruner_pid = self._fork(lambda: prune.child_main(cameras, mirror_dir, fds, master_pid, columns=columns))
        except OSError as exc:
            self.log.error("cannot fork the pruner: %s", exc)

    def _stop(self, record: WorkerRecord, reason: str) -> None:
        record.stop_deadline = time.monotonic() + self.settings.stop_timeout
        self._status_dirty = True
        logs.for_camera(record.camera.id).info("stopping worker gen=%d pid=%d: %s", record.generation, record.pid, reason)
        lifeline.signal_process(record.pid, signal.SIGTERM)

    def _enforce_deadlines(self, now: float) -> None:
        for record in self.workers.values():
            if record.stop_deadline is not None and not record.killed and now >= min(record.stop_deadline, self._kill_all_at):
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
            elif pid == self.probe_pid:
                self._probe_ended(os.waitstatus_to_exitcode(status))
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
            kill_at = min(now + self.settings.stop_timeout, self._kill_all_at)
            self.remains[cid] = Remains(record.pid, record.generation, kill_at)

    def _check_remains(self, now: float) -> None:
        for cid, rest in list(self.remains.items()):
            if not lifeline.group_alive(rest.pgid):
                del self.remains[cid]
            elif now >= min(rest.kill_at, self._kill_all_at) and not rest.killed:
                logs.for_camera(cid).warning("ffmpeg of dead worker gen=%d still alive; killing it", rest.generation)
                lifeline.signal_group(rest.pgid, signal.SIGKILL)
                rest.killed = True

    # -- the mirror volume and leftovers ----------------------------------------------------------

    def _check_mount(self) -> None:
        """With --require-mount, record only onto the mounted volume, never onto what is under it.

        Asked of the kernel's mount table, not of the mirror dir itself: on a hung network
        volume ``os.path.ismount`` blocks the master for as long as the volume hangs.
        """
        if not self.settings.require_mount:
            problem = None
        else:
            try:
                mounted = volume.is_mount_point(self._mirror_path(), volume.read_mounts())
            except OSError as exc:
                self.log.warning("cannot read the mount table: %s; mount state unchanged", exc.strerror)
                return
            mirror_dir = self.settings.mirror_dir
            problem = None if mounted else f"mirror dir {mirror_dir} is not a mount point (--require-mount): not recording"
        if problem != self.mount_problem:
            if problem:
                self.log.error("%s", problem)
            elif self.mount_problem:
                self.log.info("mirror dir %s is mounted: recording", self.settings.mirror_dir)
            self.mount_problem = problem
            self._status_dirty = True

    def _mirror_path(self) -> str:
        """The resolved mirror dir; resolved again only when the setting changed (resolving
        touches the volume)."""
        if self.settings.mirror_dir != self._mirror_setting:
            self._mirror_setting = self.settings.mirror_dir
            self._mirror_real = volume.resolve_once(self.settings.mirror_dir)
        return self._mirror_real

    def _learn_volume(self) -> None:
        """What the mirror volume is, asked once at start (this may touch the volume)."""
        assert self.settings.mirror_dir is not None
        try:
            self._mirror_real = volume.resolve_once(self.settings.mirror_dir)
            self.fold_case = volume.folds_case(self.settings.mirror_dir) is True
            mounts = volume.read_mounts()
        except OSError as exc:
            self.log.warning("cannot inspect the mirror volume: %s", exc.strerror)
            return
        if self.fold_case:
            self.log.warning("mirror dir %s is on a case-insensitive file system: ids that differ only "
                             "in case are refused as duplicates", self.settings.mirror_dir)
        holder = volume.mount_of(self._mirror_real, mounts)
        if not self.settings.require_mount and holder is not None and holder.point == "/":
            self.log.warning("mirror dir %s is on the same filesystem as /: it is not a separate volume",
                             self.settings.mirror_dir)

    def _maybe_probe_volume(self, now: float) -> None:
        """Ask a child whether the volume answers; a child that does not return in time means
        the volume hangs. Never more than one probe at a time, so a hung volume costs one
        sleeping process, not one per interval."""
        if self.probe_pid is not None:
            if self.volume_problem is None and now >= self.probe_deadline:
                self._set_volume_problem(
                    f"mirror volume {self.settings.mirror_dir} not responding (no answer in {VOLUME_PROBE_TIMEOUT:.0f}s)")
            return
        if now < self.next_probe:
            return
        self.next_probe = now + VOLUME_PROBE_INTERVAL
        directory, fds, master_pid = str(self.settings.mirror_dir), self._inherited_fds(), os.getpid()
        try:
            self.probe_pid = self._fork(lambda: _probe_child(directory, fds, master_pid))
        except OSError as exc:
            self.log.error("cannot fork the volume probe: %s", exc.strerror)
            return
        self.probe_deadline = now + VOLUME_PROBE_TIMEOUT

    def _probe_ended(self, code: int) -> None:
        self.probe_pid = None
        if code == 0:
            self._set_volume_problem(None)
        else:
            self._set_volume_problem(f"mirror dir {self.settings.mirror_dir} cannot be read (stat failed)")

    def _set_volume_problem(self, problem: str | None) -> None:
        if problem == self.volume_problem:
            return
        if problem:
            self.log.error("%s", problem)
            self.volume_since = time.time()
        else:
            self.log.info("mirror volume %s responds again", self.settings.mirror_dir)
            self.volume_since = None
        self.volume_problem = problem
        self._status_dirty = True

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
            if report == record.report:
                continue  # the periodic re-send of an unchanged state: nothing to publish
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
                           segment=report.get("segment"),
                           state="stopping" if record.stopping else report.get("state", "starting"))
                row["last_error"] = report.get("last_error") or row["last_error"]
                if self.volume_problem and row["state"] == "recording":
                    # Its last word, but nothing reaches a volume that does not answer.
                    row.update(state="stalled", last_error=self.volume_problem)
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
                "columns": sorted(self.columns),
                "volume": {"state": "not responding" if self.volume_problem else "ok",
                           "error": self.volume_problem, "since": self.volume_since},
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
            write_atomically(Path(self.settings.state_dir) / STATUS_FILE, json.dumps(snapshot, indent=1), mode=STATUS_MODE)
        except OSError as exc:
            self.log.warning("cannot write status file in %s: %s", self.settings.state_dir, exc)

    def _remove_status(self) -> None:
        try:
            (Path(self.settings.state_dir) / STATUS_FILE).unlink()
        except OSError:
            pass

    def _update_title(self, snapshot: dict[str, Any] | None = None) -> None:
        states = None
        if snapshot is not None:
            states = Counter(row["state"] for row in snapshot["cameras"] if row["id"] in self.desired)
        setproctitle.setproctitle(titles.master(
            len(self.desired), states, db_error=bool(self.db_error), volume_hung=bool(self.volume_problem),
            disabled=not self.settings.recorder_enabled))


def _probe_child(directory: str, inherited_fds: tuple[int, ...], master_pid: int) -> int:
    lifeline.become_helper(titles.VOLUME_PROBE, inherited_fds, master_pid)
    return volume.probe_child(directory)


def _flush_logs() -> None:
    for handler in logging.getLogger(logs.LOGGER_NAME).handlers:
        handler.flush()
