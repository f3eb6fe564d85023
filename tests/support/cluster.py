"""Several real masters over one camera table, each with its own state, cache and mirror dirs and
its own listener on 127.0.0.1, and a sampler that counts, every fraction of a second, how many
live masters record each camera (used by tests/cluster/test_cluster_failover.py and
``scripts/bench --failover``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from mirror_supervisor.cluster.ranking import line
from mirror_supervisor.footage import mp4
from mirror_supervisor.footage.intervals import covered, gaps_of
from mirror_supervisor.footage.segments import parse_name

from . import procs
from .rtsp import RtspServer, free_port
from .supervisor import Supervisor


@dataclass
class Sample:
    at: float  # monotonic
    recording: dict[int, frozenset[str]]  # live host -> cameras in state "recording" in its status.json
    wanted: dict[int, frozenset[str]] = field(default_factory=dict)  # live host -> every camera it has a row for


@dataclass
class Host:
    index: int
    root: Path
    port: int
    sup: Supervisor | None = None
    alive: bool = False

    @property
    def mirror(self) -> Path:
        return self.root / "mirror"

    @property
    def state(self) -> Path:
        return self.root / "state"


@dataclass
class Cluster:
    root: Path
    db: Path
    cameras: list[str]
    hosts: int = 3
    copies: int = 2
    peer_timeout: float = 5.0
    extra: tuple[str, ...] = ()
    members: list[Host] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _sampler: threading.Thread | None = None

    def __post_init__(self) -> None:
        for index in range(self.hosts):
            host = Host(index, self.root / f"host{index}", free_port())
            host.mirror.mkdir(parents=True)
            self.members.append(host)

    def share(self, index: int, up: frozenset[int] | None = None) -> set[str]:
        up = frozenset(range(self.hosts)) if up is None else up
        return {cid for cid in self.cameras if index in [h for h in line(cid, self.hosts) if h in up][:self.copies]}

    def start(self, index: int) -> None:
        host = self.members[index]
        peers = ",".join(f"127.0.0.1:{h.port}" for h in self.members)
        args = ("--shard", f"{index}/{self.hosts}", "--copies", str(self.copies), "--peers", peers,
                "--peer-timeout", str(self.peer_timeout), "--metrics-listen", f"127.0.0.1:{host.port}",
                "--poll-interval", "1", "--stop-timeout", "4", *self.extra)
        host.sup = Supervisor(host.root, self.db, host.mirror, *args,
                              env={"MIRROR_SUPERVISOR_CACHE_DIR": str(host.root / "cache")}).start()
        host.alive = True

    def kill(self, index: int) -> float:
        """SIGKILL the master (its workers, listener and watcher die with it); when it was sent."""
        host = self.members[index]
        assert host.sup is not None and host.sup.proc is not None
        host.alive = False
        at = time.monotonic()
        host.sup.proc.send_signal(signal.SIGKILL)
        host.sup.proc.wait(timeout=30)
        return at

    def recording(self, wanted: dict[int, frozenset[str]] | None = None) -> dict[int, frozenset[str]]:
        """Live host -> the cameras its status.json shows recording (``wanted``, when given, gets
        every camera it shows at all, whatever its state: the host has decided to record it)."""
        found = {}
        for host in self.members:
            if not host.alive:
                continue
            try:
                data = json.loads((host.state / "status.json").read_text())
            except (OSError, ValueError):
                found[host.index] = frozenset()
                continue
            found[host.index] = frozenset(row["id"] for row in data.get("cameras", []) if row.get("state") == "recording")
            if wanted is not None:
                wanted[host.index] = frozenset(row["id"] for row in data.get("cameras", []))
        return found

    def counts(self, recording: dict[int, frozenset[str]] | None = None) -> dict[str, int]:
        recording = self.recording() if recording is None else recording
        return {cid: sum(1 for cams in recording.values() if cid in cams) for cid in self.cameras}

    def start_sampling(self, every: float = 0.2) -> None:
        def run() -> None:
            while not self._stop.is_set():
                wanted: dict[int, frozenset[str]] = {}
                self.samples.append(Sample(time.monotonic(), self.recording(wanted), wanted))
                time.sleep(every)
        self._sampler = threading.Thread(target=run, daemon=True)
        self._sampler.start()

    def stop_sampling(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout=10)

    def lowest(self, since: float, until: float) -> dict[str, int]:
        """Each camera's lowest copy count over the samples taken between the two moments."""
        low = {cid: self.hosts for cid in self.cameras}
        for sample in self.samples:
            if since <= sample.at <= until:
                counts = self.counts(sample.recording)
                low = {cid: min(low[cid], counts[cid]) for cid in self.cameras}
        return low

    def stop_all(self) -> None:
        for host in self.members:
            if host.sup is not None and host.alive:
                try:
                    host.sup.stop(timeout=30)
                except Exception:  # noqa: BLE001 - teardown goes on
                    pass
            if host.sup is not None:
                host.sup.kill_everything()
            host.alive = False

    def holes(self, camera: str, start: float, end: float, tolerance: float = 2.5,
              mirrors: list[Path] | None = None) -> list[tuple[float, float]]:
        """Stretches of [start, end] (epoch) that no mirror (default: the hosts') holds a playable
        segment of."""
        spans = []
        for mirror in mirrors if mirrors is not None else [host.mirror for host in self.members]:
            directory = mirror / camera
            if not directory.is_dir():
                continue
            for name in os.listdir(directory):
                begun = parse_name(name)
                if begun is None:
                    continue
                info = mp4.probe(str(directory / name))
                if info.playable and info.duration > 0:
                    spans.append((begun, begun + info.duration))
        return [(gap.start, gap.end) for gap in gaps_of(covered(spans, start, end, tolerance), start, end)
                if gap.seconds > tolerance]


@contextlib.contextmanager
def reference_recorders(servers: list[RtspServer], cameras: list[str], root: Path):
    """One more plain ffmpeg per camera, recording it into ``root/<camera>/`` as the mirrors do: what
    the camera itself delivered. A stretch the camera did not send (a test server starved of CPU on
    a loaded machine sends nothing for a few seconds) is missing from every copy alike, so the
    mirrors' union is held to this reference, not to the wall clock. With a server that shares one
    pipeline among its clients, it also keeps that pipeline prepared."""
    keepers = []
    for server, cid in zip(servers, cameras, strict=True):
        (root / cid).mkdir(parents=True)
        keepers.append(subprocess.Popen(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", server.url("/live"),
             "-c", "copy", "-an", "-f", "segment", "-segment_time", "2", "-segment_format", "mp4",
             "-segment_format_options", "movflags=+frag_keyframe+empty_moov+default_base_moof",
             "-reset_timestamps", "1", "-strftime", "1", str(root / cid / "%Y%m%d_%H%M%S.mp4")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "TZ": "UTC"}))
    try:
        for server in servers:
            procs.wait_for(f"a client playing {server.url('/live')}",
                           lambda server=server: _established(server.port), timeout=30)
        yield
    finally:
        for keeper in keepers:
            keeper.terminate()
        for keeper in keepers:
            try:
                keeper.wait(timeout=10)
            except subprocess.TimeoutExpired:
                keeper.kill()
                keeper.wait(timeout=10)


def _established(port: int) -> bool:
    return any(conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_ESTABLISHED
               for conn in psutil.net_connections("tcp"))
