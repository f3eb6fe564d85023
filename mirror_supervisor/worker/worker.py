"""The worker: one camera, one ffmpeg at a time, until told to stop.

A forked child of the master. It never reads the database: the master hands it a camera and the
ffmpeg argv, and a changed camera means a new worker. The loop is deliberately plain and
synchronous: start ffmpeg, drain its stderr in a thread, wait, back off, repeat.

Every wait happens in :meth:`Worker._wait`, a ``poll`` of the signal wake-up pipe, so a stop
request or ffmpeg's exit (SIGCHLD) ends any wait at once: nothing here blocks without a bound.

Progress is the growth of the file ffmpeg has open, on the monotonic clock, and no segment
name is ever reused after a clock step (both in :mod:`progress`).

Reports share one pipe and are dropped when it is full, so the full report is also sent every
``REPORT_REFRESH_SECONDS``: a lost report heals by itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..cameras.camera import Camera
from ..plumbing import lifeline, proc_title, titles, wakeup
from ..plumbing.line_log import LineLog, Log
from . import backoff, ffmpeg, privileges, reachability
from .ffmpeg_stderr import StderrTail, summarize_tail
from .progress import ClockWatch, NameGuard, OpenSegment, Progress
from .report import encode_report, ffmpeg_ended, segment_done, send_line

CHECK_SECONDS = 1.0  # progress, clock steps and the report refresh: each check is O(1)
SECOND_SIGNAL_AFTER = 2.0
STALL_FLOOR_SECONDS = 60.0
REPORT_REFRESH_SECONDS = 60.0


def default_stall_timeout(segment_seconds: int) -> float:
    """Long enough that a slow source's keyframe interval or a segment switch never trips it."""
    return max(STALL_FLOOR_SECONDS, 3.0 * segment_seconds)


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, fixed at fork time."""

    camera: Camera
    argv: tuple[str, ...]
    directory: Path
    generation: int
    stop_timeout: float
    master_pid: int
    status_fd: int  # write end of the master's report pipe
    stall_timeout: float = 60.0
    run_as: str | None = None  # --user: the worker becomes this user before it starts ffmpeg
    log: tuple[str, str | None] | None = None  # level and file (None: stderr), logs.destination(); None: logging


class Worker:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.camera = spec.camera
        self.log = LineLog(spec.camera.id, *spec.log) if spec.log else _logging_log(spec.camera.id)
        self.state = "starting"
        self.ffmpeg_pid: int | None = None
        self.ffmpeg_started: float | None = None
        self.ffmpeg_starts = 0
        self.last_error: str | None = None
        self.names = NameGuard(spec.directory, self.log)  # also knows the file ffmpeg writes
        self._stopping = False
        self._signals: wakeup.SignalPipe | None = None
        self._next_report = 0.0
        self._failure: str | None = None  # reachability.classify of the last exit we did not ask for
        self._probe: reachability.PortProbe | None | bool = False  # made at the first failure that needs it
        self._input_dir: Path | None = None  # ffmpeg's input script's private directory
        self._input: Path | None = None  # the script, while it exists

    # -- set-up -------------------------------------------------------------------------------

    def install(self, inherited_fds: tuple[int, ...]) -> None:
        """Run in the child right after fork, while the stop signals are still blocked."""
        try:
            os.setpgid(0, 0)
        except OSError:
            pass  # the master already made us a group leader
        lifeline.die_with_parent(self.spec.master_pid)
        self._signals = wakeup.SignalPipe()
        lifeline.close_fds(inherited_fds)
        self._set_state("starting")

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> int:
        delay = backoff.FFMPEG_FIRST_DELAY
        while not self._stopping:
            ran = self._run_ffmpeg_once()
            if self._stopping:
                break
            probe = None
            if ran is None:  # stays in state "error" while it waits
                wait = backoff.SPAWN_FAILED_DELAY
            else:
                wait, delay = backoff.ffmpeg_delay(delay, ran)
                if self.state != "stalled":  # a stall stays visible through its back-off
                    self._set_state("backoff")
                if self._failure in (reachability.UNREACHABLE, reachability.LOST):
                    probe = self._port_probe()
            if probe is None:
                self.log.info("retrying in %.0fs", wait)
                self._sleep(wait)
            else:
                self.log.info("retrying in %.0fs, or as soon as the camera's port accepts again", wait)
                self._wait_for_camera(probe, wait)
        self._set_state("stopped")
        self.log.info("worker stopped gen=%d", self.spec.generation)
        return 0

    def _run_ffmpeg_once(self) -> float | None:
        """One ffmpeg run; returns how long it ran, or None when it could not be started."""
        if not self._prepare_directory() or self._stopping:
            return None
        input_dir = self._write_input()
        if input_dir is None:
            return None
        try:
            proc, stderr_fd = ffmpeg.start(self.spec.argv, input_dir)
        except (OSError, subprocess.SubprocessError) as exc:
            self._remove_input()
            self.last_error = f"cannot start ffmpeg {self.spec.argv[0]!r}: {exc}"
            self.log.error("%s", self.last_error)
            self._set_state("error")
            return None
        started, wall_started = time.monotonic(), time.time()
        self.ffmpeg_pid = proc.pid
        self.ffmpeg_started = wall_started
        self.ffmpeg_starts += 1
        self._set_state("connecting")  # at once: its title never says "starting" beside a running ffmpeg
        self.log.info(
            "ffmpeg started pid=%d gen=%d url=%s segment=%ds audio=%s dir=%s",
            proc.pid, self.spec.generation, self.camera.masked_url, self.camera.segment_seconds,
            "copy" if self.camera.record_audio else "off", self.spec.directory,
        )
        tail = StderrTail(stderr_fd)
        tail.start()
        stalled = self._watch(proc)
        if proc.poll() is None:
            self._end_ffmpeg(proc, "stalled" if stalled else "stopping")
        self._remove_input()
        tail.join(timeout=2.0)
        os.close(stderr_fd)
        ran = time.monotonic() - started
        self.ffmpeg_pid = self.ffmpeg_started = None
        self._log_exit(proc.returncode, ran, tail.text(), stalled)
        send_line(self.spec.status_fd, ffmpeg_ended(self.camera.id, self.spec.generation, self.names.segment,
                                                    wall_started, time.time()))  # for the index writer: complete
        return ran

    def _watch(self, proc: subprocess.Popen) -> bool:
        """Wait while ffmpeg runs; True when it stalled: alive, but its open segment did not grow
        (a silent source leaves ffmpeg alive for its whole socket timeout; with flush_packets=1
        even a 30 kbit/s camera grows its file every keyframe interval)."""
        probe = OpenSegment(proc.pid, self.spec.directory)
        clock = ClockWatch()
        last_seen = probe.read()
        last_progress = time.monotonic()
        check = min(CHECK_SECONDS, self.spec.stall_timeout / 4)
        while proc.poll() is None and not self._stopping:
            self._wait(check)
            if self._stopping or proc.poll() is not None:
                return False
            seen, now = probe.read(), time.monotonic()
            self._guard_names(seen, clock.stepped_back())
            if (seen.inode, seen.size) != (last_seen.inode, last_seen.size):
                last_seen, last_progress = seen, now
                if self.state == "connecting" and seen.size > 0:
                    self._remove_input()  # read long ago: ffmpeg is writing what it fetched
                    self._set_state("recording")
                    self.log.info("recording segment=%s", seen.segment)
            elif now - last_progress >= self.spec.stall_timeout:
                self.last_error = f"stalled: ffmpeg wrote nothing for {now - last_progress:.0f}s"
                self.log.warning("%s; restarting it", self.last_error)
                return True
        return False

    def _guard_names(self, seen: Progress, stepped_back: float) -> None:
        """Keep ffmpeg from reaching an existing name after a clock step (:class:`NameGuard`),
        keep the reported segment and any failure to move footage aside current, and tell the
        master which segment ffmpeg has just finished (its index writer indexes it)."""
        problem, previous = self.names.problem, self.names.segment
        moved_on = self.names.follow(seen.segment, stepped_back)
        if self.names.problem != problem:
            self.last_error = self.names.problem
        if moved_on:  # the previous segment is complete: the master's index writer indexes it
            send_line(self.spec.status_fd, segment_done(self.camera.id, self.spec.generation, previous,
                                                        self.names.segment, self.ffmpeg_started))
        if moved_on or self.names.problem != problem:
            self._report()

    def _end_ffmpeg(self, proc: subprocess.Popen, state: str) -> None:
        """Stop ffmpeg so the segment being written stays playable, escalating within the budget.

        ffmpeg writes the trailer on SIGTERM; a stalled one may ignore the first signal, so a
        second follows, then SIGKILL just before the master would kill the whole group.
        """
        self._set_state(state)
        begun = time.monotonic()
        kill_at = begun + max(0.5, self.spec.stop_timeout - 1.0)
        second_at = begun + min(SECOND_SIGNAL_AFTER, (kill_at - begun) / 2)
        proc.send_signal(signal.SIGTERM)
        second_sent = False
        while proc.poll() is None:
            now = time.monotonic()
            if now >= kill_at:
                self.log.warning("ffmpeg pid=%d ignored SIGTERM for %.1fs; killing it", proc.pid, now - begun)
                proc.kill()
                try:
                    proc.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    pass
                return
            if not second_sent and now >= second_at:
                proc.send_signal(signal.SIGTERM)
                second_sent = True
            self._wait((second_at if not second_sent else kill_at) - now)

    def _log_exit(self, code: int | None, ran: float, stderr: str, stalled: bool) -> None:
        how = f"signal {-code}" if code is not None and code < 0 else f"status {code}"
        if self._stopping or stalled:  # asked for: its stderr tells nothing (and a stop ends the loop)
            self._failure = None if self._stopping else reachability.classify(stderr, stalled)
            self.log.info("ffmpeg stopped %s ran=%.1fs", how, ran)
            return
        self._failure = reachability.classify(stderr, stalled)
        # ffmpeg names its input script where it used to name the URL: show the masked URL
        tail = summarize_tail(stderr, self.camera.secrets).replace(ffmpeg.input_of(self.spec.argv, self.camera),
                                                                    self.camera.masked_url)
        # ffmpeg 5.1 exits with status 0 and prints nothing when the server vanishes: every
        # exit we did not ask for is a failure, whatever the status says.
        last_line = tail.rsplit(" | ", 1)[-1][-300:] if tail else "no output (source lost or stream ended)"
        self.last_error = f"ffmpeg exited {how} after {ran:.0f}s: {last_line}"
        self.log.warning("ffmpeg exited %s ran=%.1fs stderr=%s", how, ran, tail or "(empty)")

    def _wait_for_camera(self, probe: reachability.PortProbe, wait: float) -> None:
        """The back-off of a camera that may be down, probing its port about once a second: ends
        once the port, seen down, accepts again; held while it refuses (``backoff.ProbedWait``);
        a stop ends it at once, also mid-connect (the probe polls the signal pipe too)."""
        assert self._signals is not None
        began = time.monotonic()
        plan = backoff.ProbedWait(wait, began)
        next_probe = began
        held = False
        while not self._stopping:
            now = time.monotonic()
            if plan.start_now(now):
                if plan.came_back:
                    self.log.info("camera port accepts again after %.1fs; starting ffmpeg", now - began)
                return
            if plan.holding(now) and not held:
                held = True
                self.log.info("camera port refuses; ffmpeg waits until it accepts (probing every %.0fs)",
                              backoff.PROBE_INTERVAL)
            if now < next_probe:
                until = next_probe if plan.holding(now) else min(next_probe, plan.deadline)
                self._wait(until - now)
                continue
            next_probe = now + backoff.PROBE_INTERVAL
            outcome = probe.attempt(backoff.PROBE_TIMEOUT, self._signals.read_fd)
            if outcome == reachability.INTERRUPTED:
                self._wait(0)  # take the signal: a stop ends the loop; else the next probe is due
            else:
                plan.record(outcome)

    # -- helpers ------------------------------------------------------------------------------

    def _port_probe(self) -> reachability.PortProbe | None:
        """Made at the first need: it touches ~230 KiB of shared pages ("Worker pages")."""
        if self._probe is False:
            target = reachability.target_of(self.camera.url)
            self._probe = reachability.PortProbe(target) if target is not None else None
        return self._probe if isinstance(self._probe, reachability.PortProbe) else None

    def _prepare_directory(self) -> bool:
        """Make the camera directory ready for a new ffmpeg (:meth:`NameGuard.before_start`);
        False (state error) when it is not."""
        error, wait = self.names.before_start()
        if error is not None:
            return self._directory_error(error)
        if wait > 0:
            self._sleep(wait)
        return True

    def _write_input(self) -> Path | None:
        """Write ffmpeg's input script (the camera URL, see ``ffmpeg``); returns the directory
        ffmpeg must run in, or None (state error) when it cannot be written."""
        try:
            name = ffmpeg.input_of(self.spec.argv, self.camera)  # the master's name: its key, not ours
            self._input_dir, self._input = ffmpeg.open_input(self._input_dir, self.camera, self.log,
                                                             self.spec.directory.parent, name)
        except OSError as exc:
            self.last_error = f"cannot write ffmpeg's input file: {exc.strerror or exc}"
            self.log.error("%s", self.last_error)
            self._set_state("error")
            return None
        return self._input_dir

    def _remove_input(self) -> None:
        """The script holds the password: it exists only until ffmpeg has read it."""
        path, self._input = self._input, None
        ffmpeg.remove_input(path)

    def become_user(self) -> bool:
        """``--user``: become that user before any ffmpeg (see :mod:`privileges`)."""
        error = privileges.become_user(self.spec.run_as, self.spec.directory, self.spec.master_pid, self.log)
        return True if error is None else self._directory_error(error)

    def wait_for_stop(self) -> int:
        """Stay (state error) until told to stop: never ffmpeg as root, and an exit is respawned."""
        while not self._stopping:
            self._sleep(3600.0)
        self._set_state("stopped")
        return 0

    def _directory_error(self, text: str) -> bool:
        self.last_error = text
        self.log.error("%s", text)
        self._set_state("error")
        return False

    def _set_state(self, state: str) -> None:
        self.state = state
        proc_title.set_title(
            titles.worker(self.camera.id, self.spec.generation, state)
        )
        self._report()

    def _report(self) -> None:
        """Tell the master; never block on it (a full pipe loses a report, not footage).

        A lost report is healed by the next one, sent on change and at least every
        ``REPORT_REFRESH_SECONDS`` (see :meth:`_wait`).
        """
        self._next_report = time.monotonic() + REPORT_REFRESH_SECONDS
        line = encode_report({
            "camera": self.camera.id, "generation": self.spec.generation, "pid": os.getpid(), "state": self.state,
            "ffmpeg_pid": self.ffmpeg_pid, "ffmpeg_started": self.ffmpeg_started, "ffmpeg_starts": self.ffmpeg_starts,
            "last_error": self.last_error, "segment": self.names.segment,
        })
        try:
            os.write(self.spec.status_fd, line)
        except OSError:  # full (BlockingIOError) or master gone (BrokenPipeError)
            pass

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wait(remaining)

    def _wait(self, timeout: float) -> None:
        """Block until a signal arrives or ``timeout`` passes; act on stop signals.

        Never sleeps past the next report refresh, so a report lost in a full pipe is re-sent
        within ``REPORT_REFRESH_SECONDS`` whatever the worker is waiting for.
        """
        assert self._signals is not None
        received, _ = self._signals.wait(min(timeout, max(0.0, self._next_report - time.monotonic())))
        if not self._stopping and wakeup.STOP_SIGNALS.intersection(received):
            self._stopping = True
            self.log.info("stop requested")
        if time.monotonic() >= self._next_report:
            self._report()


def _logging_log(camera_id: str) -> Log:
    """A worker given no log destination (a test's) logs through ``logging``, imported only then."""
    from ..plumbing import logs as logging_logs

    return logging_logs.for_camera(camera_id)


def run_worker(spec: WorkerSpec, inherited_fds: tuple[int, ...]) -> int:
    """Entry point in the forked child, which starts with the handled signals blocked."""
    worker = Worker(spec)
    try:
        worker.install(inherited_fds)
        wakeup.unblock_handled()
        if not worker.become_user():
            return worker.wait_for_stop()
        return worker.run()
    except Exception:
        worker.log.exception("worker crashed")
        return 1
