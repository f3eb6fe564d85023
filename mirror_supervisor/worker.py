"""The worker: one camera, one ffmpeg at a time, until told to stop (SPEC section 5).

A forked child of the master. It never reads the database: the master hands it a camera and the
ffmpeg argv, and a changed camera means a new worker. The loop is deliberately plain and
synchronous: start ffmpeg, drain its stderr in a thread, wait, back off, repeat.

Every wait happens in :meth:`Worker._wait`, a ``select`` on the signal wake-up pipe, so a stop
request (SIGTERM/SIGINT) or ffmpeg's exit (SIGCHLD) ends any wait at once and nothing here can
block without a bound.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import setproctitle

from . import backoff, lifeline, logs, segments, wakeup
from .camera import Camera, mask
from .ffmpeg import environment
from .orphans import WORKER_TITLE
from .status import encode_report

STDERR_TAIL_BYTES = 8192
LOGGED_TAIL_CHARS = 800
CONNECTING_CHECK_SECONDS = 1.0
RECORDING_CHECK_SECONDS = 5.0
SECOND_SIGNAL_AFTER = 2.0
STALL_FLOOR_SECONDS = 60.0


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


class StderrTail(threading.Thread):
    """Drains ffmpeg's stderr so the pipe never fills and blocks ffmpeg; keeps the last bytes."""

    def __init__(self, fd: int, limit: int = STDERR_TAIL_BYTES) -> None:
        super().__init__(name="stderr-tail", daemon=True)
        self._fd = fd
        self._limit = limit
        self._tail = bytearray()
        self._lock = threading.Lock()

    def run(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 4096)
            except InterruptedError:
                continue
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self._tail += chunk
                if len(self._tail) > self._limit:
                    del self._tail[: len(self._tail) - self._limit]

    def text(self) -> str:
        with self._lock:
            return bytes(self._tail).decode("utf-8", "replace")


def summarize_tail(text: str, secrets: tuple[str, ...], limit: int = LOGGED_TAIL_CHARS) -> str:
    """The end of ffmpeg's stderr as one masked log-friendly line."""
    lines = [line.strip() for line in mask(text, secrets).splitlines() if line.strip()]
    joined = " | ".join(lines)
    return joined if len(joined) <= limit else "..." + joined[-limit:]


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
        self._stopping = False
        self._signals: wakeup.SignalPipe | None = None

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
            self._avoid_overwriting_segments()
            if self._stopping:
                break
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
        try:
            self.spec.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.last_error = f"cannot create mirror directory {self.spec.directory}: {exc.strerror}"
            self.log.error("%s", self.last_error)
            self._set_state("error")
            return None
        try:
            proc = subprocess.Popen(
                self.spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=environment(dict(os.environ)),
                close_fds=True,
                preexec_fn=functools.partial(lifeline.die_with_parent, os.getpid()),
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
        return ran

    def _watch(self, proc: subprocess.Popen) -> bool:
        """Wait while ffmpeg runs; True when it stalled: alive but writing nothing.

        Progress is what reaches the disk (the newest segment's name and size), not ffmpeg's
        liveness: a source that keeps its TCP session open and sends nothing leaves ffmpeg alive
        for its whole socket timeout. With flush_packets=1 each fragment is written as it
        completes, so even a 30 kbit/s camera grows its file every keyframe interval.
        """
        last_seen = self._progress()
        last_progress = time.monotonic()
        while proc.poll() is None and not self._stopping:
            if self.state == "connecting":
                check = CONNECTING_CHECK_SECONDS
            else:
                check = min(RECORDING_CHECK_SECONDS, self.spec.stall_timeout / 4)
            self._wait(check)
            if self._stopping or proc.poll() is not None:
                return False
            seen, now = self._progress(), time.monotonic()
            if seen != last_seen:
                last_seen, last_progress = seen, now
                if self.state == "connecting" and seen[1] > 0:
                    self._set_state("recording")
                    self.log.info("recording")
            elif now - last_progress >= self.spec.stall_timeout:
                self.last_error = f"stalled: ffmpeg wrote nothing for {now - last_progress:.0f}s"
                self.log.warning("%s; restarting it", self.last_error)
                return True
        return False

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

    def _avoid_overwriting_segments(self) -> None:
        newest = segments.newest(self.spec.directory)
        if newest is None:
            return
        now = time.time()
        if newest[1] > now + segments.MAX_CLOCK_SKEW_WAIT:
            self.log.warning("newest segment %s is ahead of the clock; the clock was set back", newest[0])
        wait = segments.wait_before_start(newest[1], now)
        if wait > 0:
            self._sleep(wait)

    def _progress(self) -> tuple[str | None, int]:
        """The newest segment and its size: changes whenever ffmpeg gets data to the disk."""
        newest = segments.newest(self.spec.directory)
        if newest is None:
            return None, -1
        try:
            return newest[0], os.stat(self.spec.directory / newest[0]).st_size
        except OSError:
            return newest[0], -1

    def _set_state(self, state: str) -> None:
        self.state = state
        setproctitle.setproctitle(
            f"{WORKER_TITLE}{self.camera.id} gen={self.spec.generation} {state}"
        )
        self._report()

    def _report(self) -> None:
        """Tell the master; never block on it (a full pipe loses a report, not footage)."""
        line = encode_report({
            "camera": self.camera.id,
            "generation": self.spec.generation,
            "pid": os.getpid(),
            "state": self.state,
            "ffmpeg_pid": self.ffmpeg_pid,
            "ffmpeg_started": self.ffmpeg_started,
            "ffmpeg_starts": self.ffmpeg_starts,
            "last_error": self.last_error,
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
        """Block until a signal arrives or ``timeout`` passes; act on stop signals."""
        assert self._signals is not None
        received, _ = self._signals.wait(timeout)
        if not self._stopping and wakeup.STOP_SIGNALS.intersection(received):
            self._stopping = True
            self.log.info("stop requested")


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
