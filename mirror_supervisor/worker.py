"""The worker: one camera, one ffmpeg at a time, until told to stop.

A forked child of the master. It never reads the database: the master hands it a camera and the
ffmpeg argv, and a changed camera means a new worker. The loop is deliberately plain and
synchronous: start ffmpeg, drain its stderr in a thread, wait, back off, repeat.

Every wait happens in :meth:`Worker._wait`, a ``select`` on the signal wake-up pipe, so a stop
request (SIGTERM/SIGINT) or ffmpeg's exit (SIGCHLD) ends any wait at once and nothing here can
block without a bound.

Progress and the clock. Whether ffmpeg is recording is judged by the file it has open and that
file's size growing, timed with the monotonic clock (:mod:`progress`). ffmpeg names segments by
the wall clock and truncates a file whose name it reuses. So a segment named in the future is
moved aside (``segments.move_aside``) before ffmpeg starts (or waited out, if at most
``segments.MAX_CLOCK_SKEW_WAIT`` ahead), whenever a check (every second) sees the wall clock
stepped back against the monotonic clock, and when ffmpeg closes a segment whose name is in the
future. Residual race: a step back that happens less than one check interval (1 s) before ffmpeg
opens its next segment can let that segment take an existing name before the worker has moved it.

Reports to the master go into one pipe shared by all workers and are dropped when it is full, so
the full report is sent again every ``REPORT_REFRESH_SECONDS`` as well as on every change: a lost
report heals by itself.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import setproctitle

from . import backoff, lifeline, logs, segments, titles, wakeup
from .camera import Camera
from .ffmpeg import environment
from .ffmpeg_stderr import StderrTail, summarize_tail
from .index import Indexer
from .progress import ClockWatch, OpenSegment, Progress, describe_moves
from .status import encode_report

CHECK_SECONDS = 1.0  # progress, clock steps and the report refresh: each check is O(1)
SECOND_SIGNAL_AFTER = 2.0
STALL_FLOOR_SECONDS = 60.0
REPORT_REFRESH_SECONDS = 30.0


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


def ffmpeg_preexec(worker_pid: int) -> None:
    """In the forked child just before exec: die with the worker, even if it is already gone.

    The child inherits the worker's Python SIGTERM handler, which only notes the signal for a
    Python loop that never runs again before exec: a SIGTERM sent to it here would be swallowed
    and a leftover ffmpeg would record on. With the default action restored first (exec would
    restore it anyway), both the parent-death signal and the already-dead check really kill.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    lifeline.die_with_parent(worker_pid, signal.SIGTERM)


class Worker:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.camera = spec.camera
        self.log = logs.for_camera(spec.camera.id)
        self.state = "starting"
        self.ffmpeg_pid: int | None = None
        self.ffmpeg_started: float | None = None
        self.ffmpeg_starts = 0
        self.last_error: str | None = None
        self.segment: str | None = None  # the file ffmpeg writes, or last wrote
        self._stopping = False
        self._signals: wakeup.SignalPipe | None = None
        self._next_report = 0.0
        self._indexer = Indexer(spec.directory, spec.camera.id, self.log)  # complete segments -> index

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
            if ran is None:  # stays in state "error" while it waits
                wait = backoff.SPAWN_FAILED_DELAY
            else:
                wait, delay = backoff.ffmpeg_delay(delay, ran)
                if self.state != "stalled":  # a stall stays visible through its back-off
                    self._set_state("backoff")
            self.log.info("retrying in %.0fs", wait)
            self._sleep(wait)
        self._set_state("stopped")
        self.log.info("worker stopped gen=%d", self.spec.generation)
        return 0

    def _run_ffmpeg_once(self) -> float | None:
        """One ffmpeg run; returns how long it ran, or None when it could not be started."""
        if not self._prepare_directory() or self._stopping:
            return None
        try:
            proc = subprocess.Popen(
                self.spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=environment(dict(os.environ)),
                close_fds=True,
                preexec_fn=functools.partial(ffmpeg_preexec, os.getpid()),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            self.last_error = f"cannot start ffmpeg {self.spec.argv[0]!r}: {exc}"
            self.log.error("%s", self.last_error)
            self._set_state("error")
            return None
        assert proc.stderr is not None
        tail = StderrTail(proc.stderr.fileno())
        tail.start()
        started = time.monotonic()
        wall_started = time.time()
        self.ffmpeg_pid = proc.pid
        self.ffmpeg_started = wall_started
        self.ffmpeg_starts += 1
        self._set_state("connecting")
        self.log.info(
            "ffmpeg started pid=%d gen=%d url=%s segment=%ds audio=%s dir=%s",
            proc.pid, self.spec.generation, self.camera.masked_url, self.camera.segment_seconds,
            "copy" if self.camera.record_audio else "off", self.spec.directory,
        )
        stalled = self._watch(proc)
        if proc.poll() is None:
            self._end_ffmpeg(proc, "stalled" if stalled else "stopping")
        tail.join(timeout=2.0)
        proc.stderr.close()
        ran = time.monotonic() - started
        self.ffmpeg_pid = None
        self.ffmpeg_started = None
        self._log_exit(proc.returncode, ran, tail.text(), stalled)
        self._indexer.ended(self.segment, wall_started)  # ffmpeg ended: its last segments are complete
        return ran

    def _watch(self, proc: subprocess.Popen) -> bool:
        """Wait while ffmpeg runs; True when it stalled: alive but writing nothing.

        Progress is what ffmpeg gets to the disk (its open segment and that file's size), not
        ffmpeg's liveness: a source that keeps its TCP session open and sends nothing leaves
        ffmpeg alive for its whole socket timeout. With flush_packets=1 each fragment is written
        as it completes, so even a 30 kbit/s camera grows its file every keyframe interval.
        """
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
                    self._set_state("recording")
                    self.log.info("recording segment=%s", seen.segment)
            elif now - last_progress >= self.spec.stall_timeout:
                self.last_error = f"stalled: ffmpeg wrote nothing for {now - last_progress:.0f}s"
                self.log.warning("%s; restarting it", self.last_error)
                return True
        return False

    def _guard_names(self, seen: Progress, stepped_back: float) -> None:
        """Keep ffmpeg from ever reaching an existing name after the wall clock went back.

        On a step back, every segment now named in the future is moved aside but the open one;
        when ffmpeg moves on from a segment named in the future (the open one at the step), that
        one is moved aside too. Also keeps the reported segment current.
        """
        if stepped_back:
            self._move_aside_future(f"wall clock stepped back {stepped_back:.1f}s", keep=seen.segment)
        if seen.segment is None or seen.segment == self.segment:
            return
        previous, self.segment = self.segment, seen.segment
        start = segments.parse_name(previous) if previous else None
        if start is not None and start > time.time():
            self._move_aside_future("ffmpeg closed a segment named in the future", keep=seen.segment)
        self._report()
        self._indexer.done(previous)  # ffmpeg moved on: the previous segment is complete

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
        tail = summarize_tail(stderr, self.camera.secrets)
        if self._stopping or stalled:
            self.log.info("ffmpeg stopped %s ran=%.1fs", how, ran)
            return
        # ffmpeg 5.1 exits with status 0 and prints nothing when the server vanishes: every
        # exit we did not ask for is a failure, whatever the status says.
        last_line = tail.rsplit(" | ", 1)[-1][-300:] if tail else "no output (source lost or stream ended)"
        self.last_error = f"ffmpeg exited {how} after {ran:.0f}s: {last_line}"
        self.log.warning("ffmpeg exited %s ran=%.1fs stderr=%s", how, ran, tail or "(empty)")

    # -- helpers ------------------------------------------------------------------------------

    def _prepare_directory(self) -> bool:
        """Make the camera directory ready for a new ffmpeg; False (state error) when it is not.

        Only ``<mirror_dir>/<id>`` is ever created, never its parents: a mirror volume that is
        gone must not be re-created on the root filesystem. Then no existing segment may be
        reachable by ffmpeg's names: those named more than ``MAX_CLOCK_SKEW_WAIT`` ahead are moved
        aside, and the start waits for the second of the newest remaining name to pass.
        """
        directory = self.spec.directory
        if not directory.parent.is_dir():
            return self._directory_error(f"mirror directory {directory.parent} is missing (volume not mounted?); "
                                         "not creating it")
        try:
            directory.mkdir(exist_ok=True)
        except OSError as exc:
            return self._directory_error(f"cannot create camera directory {directory}: {exc.strerror or exc}")
        if not directory.is_dir():
            return self._directory_error(f"camera directory {directory} is not a directory")
        if not self._move_aside_future("found before starting ffmpeg", keep=None, ahead=segments.MAX_CLOCK_SKEW_WAIT):
            return False
        try:
            newest = segments.newest_of(segments.segment_names(directory),
                                        not_after=time.time() + segments.MAX_CLOCK_SKEW_WAIT)
        except OSError as exc:
            return self._directory_error(f"cannot list camera directory {directory}: {exc.strerror or exc}")
        wait = segments.wait_before_start(newest[1] if newest else None, time.time())
        if wait > 1.0:
            self.log.warning("waiting %.1fs before starting ffmpeg: segment %s is named ahead of the clock",
                             wait, newest[0] if newest else "?")
        if wait > 0:
            self._sleep(wait)
        return True

    def _directory_error(self, text: str) -> bool:
        self.last_error = text
        self.log.error("%s", text)
        self._set_state("error")
        return False

    def _move_aside_future(self, reason: str, keep: str | None, ahead: float = 0.0) -> bool:
        """Move aside every segment named over ``ahead`` s in the future but ``keep``.

        False (state error) only when the directory cannot be listed.
        """
        try:
            moved, failed = segments.move_aside_future(self.spec.directory, time.time() + ahead, keep)
        except OSError as exc:
            return self._directory_error(f"cannot list camera directory {self.spec.directory}: {exc.strerror or exc}")
        if moved:
            self.log.warning("moved aside %d segments named in the future (%s): %s",
                             len(moved), reason, describe_moves(moved))
        if failed:
            self.last_error = f"cannot move aside segments named in the future ({reason}): " + "; ".join(failed)
            self.log.error("%s", self.last_error)
            self._report()
        return True

    def _set_state(self, state: str) -> None:
        self.state = state
        setproctitle.setproctitle(
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
            "camera": self.camera.id,
            "generation": self.spec.generation,
            "pid": os.getpid(),
            "state": self.state,
            "ffmpeg_pid": self.ffmpeg_pid,
            "ffmpeg_started": self.ffmpeg_started,
            "ffmpeg_starts": self.ffmpeg_starts,
            "last_error": self.last_error,
            "segment": self.segment,
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


def run_worker(spec: WorkerSpec, inherited_fds: tuple[int, ...]) -> int:
    """Entry point in the forked child, which starts with the handled signals blocked."""
    worker = Worker(spec)
    try:
        worker.install(inherited_fds)
        wakeup.unblock_handled()
        return worker.run()
    except Exception:
        worker.log.exception("worker crashed")
        return 1
