"""Prometheus metrics: what the master knows, in the text exposition format (README, "Metrics").

Two ways out, both off by default, both fed by one rendering (``prometheus_client``):

- ``--metrics-file PATH``: rewritten atomically every :data:`WRITE_INTERVAL` seconds, for
  node_exporter's textfile collector;
- ``--metrics-listen HOST:PORT``: ``GET /metrics`` served by a small child process
  (:func:`serve_main`, titled ``mirror-supervisor: metrics HOST:PORT``). The master never serves a
  socket: it writes the text to ``<state_dir>/metrics.prom`` and the child serves that file, so a
  slow or hostile client can reach only the child, which bounds what any client holds
  (:mod:`.http_listener`). The child dies with the master and is forked again, after a back-off,
  when it dies.

Where the numbers come from, so that nothing here can block the master:

- the camera state, segments and ffmpeg restarts come from the workers' reports and the slots
  (:meth:`Exporter.observe`, called whenever the master publishes its status);
- bytes written, the newest footage's time and the mirror's free space come from the volume probe
  child, which the master already forks every 10 s: with metrics on, it also runs ``statvfs`` and
  ``stat``s each camera's current segment and the segments closed since the last probe
  (:func:`probe_main`), and leaves the answer in ``<state_dir>/metrics-probe.json``. A hung volume
  leaves those numbers where they were (and ``camera_up`` goes to 0: status says ``stalled``).
- ``coverage_ratio{window="1h"}`` is what ``coverage`` says of the last hour, from the files and
  the segment index (from a camera's first footage on when that is younger): a child forked once
  a minute (:class:`CoverageChild`, :func:`coverage_main`) leaves it in
  ``<state_dir>/metrics-coverage.json``. A child still running after
  :data:`COVERAGE_TIME_LIMIT` is killed; a ratio older than :data:`COVERAGE_STALE` is not
  exported (no number rather than an old one).
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import __version__
from ..cameras import cache as camera_cache
from ..plumbing import lifeline, logs, volume
from ..plumbing.files import STATUS_MODE
from ..plumbing.helper_child import HelperChild
from ..settings import Settings
from ..worker import backoff
from .children import Footage, coverage_main, probe_main, serve_main
from .textfile import Outputs, remove_quietly

if TYPE_CHECKING:
    from prometheus_client.core import GaugeMetricFamily, Metric

PREFIX = "mirror_supervisor_"
WRITE_INTERVAL = 5.0  # the exposition at most this often: "every few seconds"
SERVED_FILE = "metrics.prom"  # in the state dir: what the HTTP child serves
PROBE_FILE = "metrics-probe.json"  # in the state dir: the volume probe's answer
TEXTFILE_MODE = 0o644  # node_exporter runs as another user; camera ids are no secret
COVERAGE_WINDOW = 3600.0
COVERAGE_FILE = "metrics-coverage.json"  # in the state dir: the coverage child's answer
COVERAGE_INTERVAL = 60.0
COVERAGE_TIME_LIMIT = 300.0  # a hung volume, or a cold index of many cameras
COVERAGE_STALE = 600.0
COVERAGE_AFTER_UP = 5.0  # a camera that starts recording: its first fragments are on disk by then
RESTART_REASONS = ("exit", "stall", "stop_timeout", "spawn_error")


# -- coverage -----------------------------------------------------------------------------------

class CoverageChild:
    """The last hour's coverage per camera, measured from the files by a child once a minute."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.at = 0.0  # monotonic: when the next child is due
        self.started = 0.0
        self.killed = False
        self.sequence = 0
        self.ratios: dict[str, tuple[float, float]] = {}  # camera -> (ratio, monotonic time of the answer)
        self._failure: str | None = None
        self._up: set[str] = set()

    def recording(self, up: set[str], now: float) -> None:
        """A camera that starts recording is measured soon, not up to a minute later."""
        if up - self._up:
            self.at = min(self.at, now + COVERAGE_AFTER_UP)
        self._up = set(up)

    def __call__(self, camera_id: str, now: float) -> float | None:
        found = self.ratios.get(camera_id)
        return None if found is None or now - found[1] > COVERAGE_STALE else found[0]

    def next_deadline(self) -> float:
        if self.pid is None:
            return self.at
        return float("inf") if self.killed else self.started + COVERAGE_TIME_LIMIT

    def tick(self, now: float, fork: Callable[[Callable[[], int]], int], child: Callable[[int], Callable[[], int]],
             log: logging.LoggerAdapter) -> None:
        """Fork the child when due; kill one that ran past the time limit (it is reaped later)."""
        if self.pid is not None:
            if not self.killed and now >= self.started + COVERAGE_TIME_LIMIT:
                log.warning("coverage child pid=%d still running after %.0fs; killing it", self.pid, COVERAGE_TIME_LIMIT)
                lifeline.signal_process(self.pid, signal.SIGKILL)
                self.killed = True
            return
        if now < self.at:
            return
        self.sequence += 1
        self.started, self.at, self.killed = now, now + COVERAGE_INTERVAL, False
        try:
            self.pid = fork(child(self.sequence))
        except OSError as exc:
            log.error("cannot fork the coverage child: %s", exc.strerror)

    def reaped(self, pid: int, code: int, now: float, answer: Path, log: logging.LoggerAdapter) -> bool:
        """True when ``pid`` was the coverage child; its answer is taken when it is this child's."""
        if pid != self.pid:
            return False
        self.pid = None
        failure = None if code == 0 else (f"signal {-code}" if code < 0 else f"status {code}")
        if failure != self._failure:  # once per change: every minute would flood the log
            if failure:
                log.warning("coverage child exited (%s); coverage_ratio keeps its last values for %.0fs",
                            failure, COVERAGE_STALE)
            self._failure = failure
        if code != 0:
            return True
        try:
            data = json.loads(answer.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return True
        if isinstance(data, dict) and data.get("sequence") == self.sequence and isinstance(data.get("cameras"), dict):
            self.ratios = {camera: (float(ratio), now) for camera, ratio in data["cameras"].items()
                           if isinstance(ratio, int | float)}
        return True


# -- what the volume probe finds -----------------------------------------------------------------

# -- the exposition -----------------------------------------------------------------------------

@dataclass
class CameraSample:
    up: bool
    segments: int
    restarts: Mapping[str, int]


class Slots(Protocol):
    """What the exporter reads of a camera's slot."""

    camera_id: str
    segments_opened: int

    @property
    def wanted(self) -> bool: ...

    @property
    def restarts(self) -> Mapping[str, int]: ...

    @property
    def refused(self) -> str | None: ...


class Exporter:
    """Everything the master needs for metrics; does nothing when both outputs are off."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.log = logs.master()
        self.coverage = CoverageChild()
        self.cameras: dict[str, CameraSample] = {}
        self.footage: dict[str, Footage] = {}
        self.database_up = True
        self.table: dict[str, Any] | None = None  # where the camera table comes from (camera_cache.py)
        self.free_bytes: int | None = None
        self.next_write = 0.0
        self.server = HelperChild("metrics server", backoff.worker_respawn_delay, backoff.SPAWN_FAILED_DELAY, self.log)
        self._probe_sequence = 0
        self._probe_final: dict[str, list[str]] = {}
        self.outputs = Outputs(self.log)
        self.cluster: Any = None  # with --shard: the master's cluster node, whose families are added (cluster/)

    server_pid = property(lambda self: self.server.pid)  # the HTTP child's, while it runs
    server_at = property(lambda self: self.server.at)  # when the next HTTP child may be forked

    @property
    def enabled(self) -> bool:
        return self.settings.metrics_file is not None or self.settings.metrics_listen is not None

    def configure(self, settings: Settings) -> None:
        """New settings after a reload: a changed listen address restarts the child; a file that
        is no longer an output is removed (node_exporter would export it for ever), a new one
        is written at once."""
        old, self.settings = self.settings, settings
        if settings.metrics_listen != old.metrics_listen and self.server_pid is not None:
            lifeline.signal_process(self.server_pid, signal.SIGTERM)  # reaped, then forked anew
        before, after = dict(self._targets(old)), dict(self._targets(settings))
        for path in set(before) - set(after):
            self.outputs.remove(path)
        if set(after) - set(before):
            self.next_write = 0.0

    # -- input ------------------------------------------------------------------------------

    def observe(self, now: float, rows: list[dict[str, Any]], slots: Mapping[str, Slots], database_up: bool,
                table: dict[str, Any] | None = None) -> None:
        """The status the master just published (``rows`` as in status.json) and its slots."""
        if not self.enabled:
            return
        self.database_up, self.table = database_up, table
        cameras = {}
        for row in rows:
            slot = slots.get(row["id"])
            if slot is None:
                continue
            up = row["state"] == "recording"
            cameras[slot.camera_id] = CameraSample(up, slot.segments_opened, dict(slot.restarts))
            self.footage.setdefault(slot.camera_id, Footage()).segment(row.get("segment"))
        self.cameras = cameras
        self.coverage.recording({camera for camera, sample in cameras.items() if sample.up}, now)
        for camera in list(self.footage):
            if camera not in cameras:
                del self.footage[camera]

    def probe_child(self, directory: str, fds: tuple[int, ...], master_pid: int) -> Callable[[], int]:
        """What the volume probe child runs: with metrics on, it also measures the footage."""
        if not self.enabled:
            return lambda: volume.probe_main(directory, fds, master_pid)
        self._probe_sequence += 1
        sequence, out = self._probe_sequence, str(Path(self.settings.state_dir) / PROBE_FILE)
        files = {camera: list(footage.sizes) for camera, footage in self.footage.items()}
        self._probe_final = {camera: footage.closed() for camera, footage in self.footage.items()}
        return lambda: probe_main(directory, fds, master_pid, out, sequence, files)

    def probe_ended(self, code: int) -> None:
        """The volume probe exited: take its answer (a small file in the local state dir)."""
        if not self.enabled or code != 0:
            return
        try:
            answer = json.loads((Path(self.settings.state_dir) / PROBE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(answer, dict) or answer.get("sequence") != self._probe_sequence:
            return  # an older probe's answer
        self.free_bytes = answer.get("free")
        for camera, found in (answer.get("cameras") or {}).items():
            footage = self.footage.get(camera)
            if footage is not None and isinstance(found, dict):
                footage.take(found, self._probe_final.get(camera, ()))

    # -- output -----------------------------------------------------------------------------

    def render(self, now: float) -> bytes:
        # Imported here, not at the top: with metrics off (the default) the master and every
        # worker it forks never load the library (~0.1 s of start-up and its memory).
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self, now))
        return generate_latest(registry)

    def next_deadline(self) -> float | None:
        if not self.enabled:
            return None
        moments = [self.next_write]
        if self.settings.metrics_listen is not None and (due := self.server.next_deadline()) is not None:
            moments.append(due)
        if self._measures_coverage:
            moments.append(self.coverage.next_deadline())
        return min(moments)

    @property
    def _measures_coverage(self) -> bool:
        return bool(self.cameras) and self.settings.mirror_dir is not None

    def pids(self) -> set[int]:
        """The children this exporter forked and has not reaped yet."""
        return self.server.pids() | ({self.coverage.pid} if self.coverage.pid is not None else set())

    def tick(self, now: float, fork: Callable[[Callable[[], int]], int], fds: tuple[int, ...]) -> None:
        """Write the exposition when due; fork the HTTP child when it is wanted and not running."""
        if not self.enabled:
            return
        if now >= self.next_write:
            self.next_write = now + WRITE_INTERVAL
            self._write(self.render(now).decode())
        if self._measures_coverage:
            self.coverage.tick(now, fork, lambda sequence: self._coverage_child(sequence, fds), self.log)
        listen = self.settings.metrics_listen
        if listen is not None and self.server.due(now):
            served, master_pid = str(Path(self.settings.state_dir) / SERVED_FILE), os.getpid()
            self.server.start(now, fork, lambda: serve_main(listen[0], listen[1], served, fds, master_pid))

    def _coverage_child(self, sequence: int, fds: tuple[int, ...]) -> Callable[[], int]:
        directory, cameras = str(self.settings.mirror_dir), sorted(self.cameras)
        out, master_pid = str(Path(self.settings.state_dir) / COVERAGE_FILE), os.getpid()
        return lambda: coverage_main(directory, cameras, COVERAGE_WINDOW, out, sequence, fds, master_pid)

    def reaped(self, pid: int, code: int, now: float) -> bool:
        """True when ``pid`` was one of the exporter's children: the coverage child (its answer is
        taken), or the HTTP child (another is forked after the workers' back-off)."""
        if self.coverage.reaped(pid, code, now, Path(self.settings.state_dir) / COVERAGE_FILE, self.log):
            return True
        return self.server.reaped(pid, code, now)

    def remove_files(self) -> None:
        """At a clean stop: no stale numbers claim that cameras record (README, "Metrics")."""
        for path, _ in self._targets(self.settings):
            self.outputs.remove(path)
        state = Path(self.settings.state_dir)
        remove_quietly([state / SERVED_FILE, state / PROBE_FILE, state / COVERAGE_FILE])

    def _targets(self, settings: Settings) -> list[tuple[Path, int]]:
        """Where the exposition goes under ``settings``: (path, mode)."""
        targets = []
        if settings.metrics_file is not None:
            targets.append((Path(settings.metrics_file), TEXTFILE_MODE))
        if settings.metrics_listen is not None:
            targets.append((Path(settings.state_dir) / SERVED_FILE, STATUS_MODE))
        return targets

    def _write(self, text: str) -> None:
        self.outputs.write(self._targets(self.settings), text)


class _Collector:
    """The families of one rendering, from the exporter's latest view."""

    def __init__(self, exporter: Exporter, now: float) -> None:
        self.exporter, self.now = exporter, now

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        ex, cams = self.exporter, sorted(self.exporter.cameras.items())
        up = GaugeMetricFamily(PREFIX + "camera_up", "1 while the camera's ffmpeg is recording (data reaches the "
                               "mirror), else 0", labels=["camera"])
        segments = CounterMetricFamily(PREFIX + "segments_written", "segment files ffmpeg began writing",
                                       labels=["camera"])
        restarts = CounterMetricFamily(PREFIX + "ffmpeg_restarts", "ffmpeg restarts by reason: exit (ffmpeg or its "
                                       "worker ended unasked), stall, stop_timeout (a stop needed SIGKILL), spawn_error",
                                       labels=["camera", "reason"])
        coverage = GaugeMetricFamily(PREFIX + "coverage_ratio", "share of the window covered by playable segments "
                                     "in the mirror (from the camera's first footage on when that is younger)",
                                     labels=["camera", "window"])
        written = CounterMetricFamily(PREFIX + "bytes_written", "bytes of segment files written (seen by the volume "
                                      "probe, every 10 s)", labels=["camera"])
        newest = GaugeMetricFamily(PREFIX + "last_segment_end_timestamp_seconds", "when the camera's newest footage "
                                   "was written (mtime of its newest segment, seen by the volume probe)", labels=["camera"])
        for camera, sample in cams:
            up.add_metric([camera], 1.0 if sample.up else 0.0)
            segments.add_metric([camera], sample.segments)
            for reason in RESTART_REASONS:
                restarts.add_metric([camera, reason], sample.restarts.get(reason, 0))
            ratio = ex.coverage(camera, self.now)
            if ratio is not None:
                coverage.add_metric([camera, "1h"], ratio)
            footage = ex.footage.get(camera)
            if footage is not None:
                written.add_metric([camera], footage.total)
                if footage.newest_mtime is not None:
                    newest.add_metric([camera], footage.newest_mtime)
        yield from (up, segments, written, restarts, newest, coverage)
        yield _gauge("database_up", "1 while the NVR database reads fine, else 0", 1.0 if ex.database_up else 0.0)
        yield from camera_cache.metric_families(PREFIX, ex.table)
        if ex.cluster is not None:
            yield from ex.cluster.metric_families(PREFIX)
        if ex.free_bytes is not None:
            yield _gauge("mirror_free_bytes", "bytes free for us on the mirror volume (statvfs, by the volume probe)",
                         float(ex.free_bytes))
        info = GaugeMetricFamily(PREFIX + "build_info", "the running version", labels=["version"])
        info.add_metric([__version__], 1.0)
        yield info


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily(PREFIX + name, documentation, value=value)
