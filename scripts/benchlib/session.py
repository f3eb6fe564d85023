"""One system with one set of cameras, and the waits the scenarios are built from.

Every wait polls the process table (``procs``) or the mirror directory (``recordings``) and
returns the time since a given start on the monotonic clock, or None on timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import procs
from .common import POLL, mono
from .recordings import recording_since
from .systems import System

Snapshot = dict[str, tuple[int, ...]]


@dataclass
class Session:
    system: System
    cams: list[str]
    url: str
    segment_seconds: int
    real: bool  # real ffmpegs (a segment has data once it holds a fragment) or stand-ins
    min_age: float  # memory is taken once the system has run this long
    started_at: float = 0.0
    initial_workers: set[int] = field(default_factory=set)

    def snapshot(self) -> Snapshot:
        """Live ffmpeg pids by camera."""
        ffmpegs, _ = self.system.tree.scan(self.system.root)
        return {cam: tuple(sorted(pids)) for cam, pids in ffmpegs.items()}

    def cam_ffmpegs(self, cam: str) -> list[int]:
        return self.system.tree.cam_ffmpegs(self.system.root, cam)

    def wait_all(self, t0: float, timeout: float) -> dict[str, Any]:
        """Until every camera has an ffmpeg and a segment written since ``t0`` holds data."""
        wall_since = time.time() - (mono() - t0)
        got_ffmpeg: dict[str, float] = {}
        got_data: dict[str, float] = {}
        deadline = t0 + timeout
        spent = 0.0
        while len(got_data) < len(self.cams) and mono() < deadline:
            began = mono()
            ffmpegs, _ = self.system.tree.scan(self.system.root)
            now = mono() - t0
            for cam in self.cams:
                if cam not in got_ffmpeg and ffmpegs.get(cam):
                    got_ffmpeg[cam] = now
                if cam in got_ffmpeg and cam not in got_data:
                    if recording_since(self.system.mirror_dir / cam, wall_since, self.real):
                        got_data[cam] = now
            # The observer must not take the CPU the supervisors need: at most a third of a core.
            spent = mono() - began
            time.sleep(max(0.02, 2 * spent))
        n = len(self.cams)
        return {
            "observer_last_pass_s": round(spent, 4),
            "all_ffmpeg_s": max(got_ffmpeg.values()) if len(got_ffmpeg) == n else None,
            "first_ffmpeg_s": min(got_ffmpeg.values()) if got_ffmpeg else None,
            "all_recording_s": max(got_data.values()) if len(got_data) == n else None,
            "cameras": n, "ffmpeg_seen": len(got_ffmpeg), "recording_seen": len(got_data),
        }

    def wait_new_ffmpeg(self, cam: str, old: set[int], t0: float, timeout: float) -> tuple[float | None, int | None]:
        deadline = t0 + timeout
        while mono() < deadline:
            for pid in self.cam_ffmpegs(cam):
                if pid not in old:
                    return mono() - t0, pid
            time.sleep(POLL)
        return None, None

    def wait_recording(self, cam: str, wall_since: float, t0: float, timeout: float) -> tuple[float | None, str | None]:
        deadline = t0 + timeout
        while mono() < deadline:
            name = recording_since(self.system.mirror_dir / cam, wall_since, self.real)
            if name:
                return mono() - t0, name
            time.sleep(0.01)
        return None, None


def wait_gone(pids: set[int], t0: float, timeout: float) -> float | None:
    deadline = t0 + timeout
    while mono() < deadline:
        if not any(procs.running(p) for p in pids):
            return mono() - t0
        time.sleep(POLL)
    return None


def others_restarted(before: Snapshot, after: Snapshot, exclude: set[str]) -> list[str]:
    return sorted(cam for cam in before if cam not in exclude and after.get(cam) != before[cam])


def in_background(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``fn`` in a thread; its value or its error lands in the returned dict."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except Exception as exc:  # reported, never hides the measurement
            box["error"] = repr(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box
