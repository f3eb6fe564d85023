"""Resume after an outage: footage lost around camera outages, before and after the port probe
(docs/design.md "Worker loop"), and what a camera that stays down receives.

Two masters run side by side, each recording the same real test camera (``rtsp``) into its own
mirror directory: "before" runs the package as it was at ``--resume-before`` (exported with
``git archive``, put first on PYTHONPATH), "after" the working tree. Once both have recorded
for ``WARM_SECONDS`` (so the last run counts as healthy and the back-off starts at 1 s), the
camera is stopped for each outage length in turn and started again on the same port.

The hole: a watcher reads the size of each mirror's newest segment every ``WATCH_INTERVAL`` s;
the hole around an outage is the first growth after the camera is back minus the last growth
before that. A fragment is written when the next keyframe arrives (1 s keyframe interval), so the
hole includes about one keyframe interval of fragmenting, the same before and after. **Extra loss**
is the hole minus the outage (from the camera process gone to its ``READY`` line).

A camera that stays down: two more masters ("before", "after"), each alone in a new network
namespace (``unshare --net``, loopback up) with one camera on a port where nothing listens, for
``--resume-down-seconds``. The kernel's TCP counters of that namespace (``/proc/<master>/net/snmp``:
ActiveOpens, AttemptFails) count every connection attempt, ffmpeg's and the probe's; ffmpeg starts
are counted from the log.
Everything started here is stopped in ``finally``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import procs
from .commits import before_adding, export
from .common import VENV_BIN, log, mono
from .context import Context
from .machine import machine_info
from .nvr import Nvr
from .rtsp import free_port, start_camera

WARM_SECONDS = 35.0  # > 30 s: the run before each outage is a healthy one
WATCH_INTERVAL = 0.05
SEGMENT_SECONDS = 10
RECOVER_TIMEOUT = 120.0


def baseline_commit(rev: str | None) -> str:
    """``rev``, or the parent of the commit that introduced the probe."""
    return before_adding("mirror_supervisor/reachability.py", rev, "--resume-before")


class Master:
    """One ``mirror-supervisor run`` with one camera, from ``code`` (a directory put first on
    PYTHONPATH) or the working tree, optionally in a new network namespace."""

    def __init__(self, work: Path, name: str, url: str, code: Path | None, netns: bool = False) -> None:
        self.name, self.dir = name, work / name
        self.dir.mkdir(parents=True)
        self.mirror = self.dir / "mirror"
        self.mirror.mkdir()
        Nvr(self.dir / "nvr.db").add_many([("cam", url, SEGMENT_SECONDS, True)])
        argv = [sys.executable, "-m", "mirror_supervisor", "run", "--db", str(self.dir / "nvr.db"),
                "--mirror-dir", str(self.mirror), "--state-dir", str(self.dir / "state"),
                "--poll-interval", "5", "--stop-timeout", "8"]
        if netns:
            argv = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]
        env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
               "MIRROR_SUPERVISOR_CACHE_DIR": str(self.dir / "cache")}  # not /var/lib: read by older code too
        if code is not None:
            env["PYTHONPATH"] = str(code)
        self.log_path = self.dir / "master.log"
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True, cwd=self.dir)
        procs.remember(self.proc.pid)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ffmpeg_starts(self) -> int:
        return self.log_text().count(" cam ffmpeg started pid=")

    def tcp(self) -> dict[str, int]:
        """The TCP counters of the master's network namespace."""
        try:
            lines = [line.split() for line in Path(f"/proc/{self.proc.pid}/net/snmp").read_text().splitlines()
                     if line.startswith("Tcp:")]
        except OSError:
            return {}
        return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:], strict=True) if k in ("ActiveOpens", "AttemptFails")}

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


class Watcher(threading.Thread):
    """Growth times (monotonic) of each mirror's newest segment."""

    def __init__(self, mirrors: dict[str, Path]) -> None:
        super().__init__(daemon=True)
        self.mirrors = mirrors
        self.growth: dict[str, list[float]] = {name: [] for name in mirrors}
        self.running = True

    def run(self) -> None:
        last: dict[str, tuple[str, int]] = {}
        while self.running:
            for name, mirror in self.mirrors.items():
                try:
                    newest = max((e for e in os.scandir(mirror / "cam") if e.name.endswith(".mp4")),
                                 key=lambda e: e.name)
                    seen = (newest.name, newest.stat().st_size)
                except (OSError, ValueError):
                    continue
                if seen[1] > 0 and seen != last.get(name):
                    last[name] = seen
                    self.growth[name].append(mono())
            time.sleep(WATCH_INTERVAL)

    def hole(self, name: str, back_at: float) -> float | None:
        before = [t for t in self.growth[name] if t <= back_at]
        after = [t for t in self.growth[name] if t > back_at]
        return round(after[0] - before[-1], 2) if before and after else None

    def grown_since(self, name: str, since: float) -> bool:
        return any(t > since for t in self.growth[name])


def run(ctx: Context) -> dict[str, Any]:
    o = ctx.opts
    tmp = ctx.work / "resume"
    tmp.mkdir()
    began = mono()
    commit = baseline_commit(o.resume_before)
    code = {"before": export(commit, tmp / "before-code"), "after": None}
    result: dict[str, Any] = {
        "config": {"outages_s": o.resume_outages, "down_seconds": o.resume_down_seconds, "warm_s": WARM_SECONDS,
                   "segment_seconds": SEGMENT_SECONDS, "keyframe_interval_s": 1.0, "before_commit": commit[:10],
                   "quick": o.quick},
        "machine": {**machine_info(), "load_before": [round(x, 2) for x in os.getloadavg()]},
    }
    port = free_port()
    camera = start_camera(port, tmp)
    procs.remember(camera.pid)
    masters: list[Master] = []
    try:
        down_port = free_port()
        down = {name: Master(tmp, f"down-{name}", f"rtsp://127.0.0.1:{down_port}/live", code[name], netns=True)
                for name in code}
        masters += down.values()
        down_started = mono()
        rec = {name: Master(tmp, name, f"rtsp://127.0.0.1:{port}/live", code[name]) for name in code}
        masters += rec.values()
        watcher = Watcher({name: m.mirror for name, m in rec.items()})
        watcher.start()
        log(f"resume: before = {commit[:10]}; outages {o.resume_outages} s; down camera for {o.resume_down_seconds} s")
        _wait_recording(watcher, list(rec), since=mono(), timeout=60)
        outages = []
        for seconds in o.resume_outages:
            time.sleep(WARM_SECONDS)
            camera.terminate()
            camera.wait(timeout=10)
            gone = mono()
            time.sleep(seconds)
            camera = start_camera(port, tmp)
            procs.remember(camera.pid)
            back = mono()
            _wait_recording(watcher, list(rec), since=back, timeout=RECOVER_TIMEOUT)
            row: dict[str, Any] = {"outage_s": round(back - gone, 2)}
            for name in rec:
                hole = watcher.hole(name, back)
                row[name] = {"hole_s": hole, "extra_loss_s": None if hole is None else round(hole - (back - gone), 2)}
            log(f"resume: outage {row['outage_s']} s: before {row['before']}, after {row['after']}")
            outages.append(row)
        result["outages"] = outages
        watcher.running = False
        for name, m in rec.items():
            result.setdefault("ffmpeg_starts", {})[name] = m.ffmpeg_starts()
        time.sleep(max(0.0, o.resume_down_seconds - (mono() - down_started)))
        result["down"] = {name: {"seconds": round(mono() - down_started, 1), "tcp": m.tcp(),
                                 "ffmpeg_starts": m.ffmpeg_starts()} for name, m in down.items()}
        log(f"resume: down camera: {result['down']}")
    finally:
        for m in masters:
            m.stop()
        camera.terminate()
        try:
            camera.wait(timeout=10)
        except subprocess.TimeoutExpired:
            camera.kill()
    result["duration_s"] = round(mono() - began, 1)
    result["leftovers"] = len(procs.machine_ffmpegs(str(tmp) + "/"))
    return result


def _wait_recording(watcher: Watcher, names: list[str], since: float, timeout: float) -> None:
    deadline = since + timeout
    while mono() < deadline and not all(watcher.grown_since(n, since) for n in names):
        time.sleep(0.1)
