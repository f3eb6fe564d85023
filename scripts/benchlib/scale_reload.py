"""The scale suite's reload probe: add one camera, SIGHUP, until its recorder runs, N cameras recording.

Each repeat INSERTs a camera row (this process is the NVR's concurrent writer), sends SIGHUP and
reads the master's log: the master writes ``reload requested`` and ``worker started`` and the
worker writes ``ffmpeg started`` once ``Popen`` returned, each with a millisecond UTC stamp of the
same clock as ``time.time()`` here. So the latency is split where it is spent: signal -> the
master's reload, the reload -> the worker forked (database read, diff, the fork), the worker
forked -> its ffmpeg started (everything the worker does before ``Popen``, and ``Popen``). The
camera is then removed again (DELETE, SIGHUP, until ``worker exited``), so every repeat starts
from the same N cameras.
"""

from __future__ import annotations

import datetime
import os
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from .nvr import Nvr

WAIT = 30.0


def _stamp(line: str) -> float | None:
    try:
        return datetime.datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").replace(
            tzinfo=datetime.UTC).timestamp()
    except ValueError:
        return None


def _wait_for(log: Path, offset: int, needles: list[str], timeout: float = WAIT) -> tuple[dict[str, float], int]:
    """Times of the first line after ``offset`` containing each needle; returns them and the new offset."""
    found: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(found) < len(needles):
        with open(log, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
        cut = data.rfind(b"\n") + 1
        for raw in data[:cut].decode("utf-8", "replace").splitlines():
            for needle in needles:
                if needle not in found and needle in raw and (stamp := _stamp(raw)) is not None:
                    found[needle] = stamp
        offset += cut
        time.sleep(0.005)
    return found, offset


PARTS = ("total", "to_reload", "reload_to_fork", "fork_to_ffmpeg")


def stamps_of(text: str, cam: str, since: float) -> dict[str, float] | None:
    """One repeat split by a master log's stamps (seconds): the first ``reload requested`` at or
    after ``since`` (the wall clock when the SIGHUP went), then the camera's ``worker started``
    and ``ffmpeg started``; None when a line is missing (another supervisor's log)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        stamp = _stamp(line)
        if stamp is None or stamp < since - 0.002:  # stamps are whole milliseconds
            continue
        for key, needle in (("reload", " reload requested"), ("forked", f" {cam} worker started"),
                            ("started", f" {cam} ffmpeg started")):
            if key not in found and needle in line:
                found[key] = stamp
    if len(found) < 3:
        return None
    return {"total": found["started"] - since, "to_reload": found["reload"] - since,
            "reload_to_fork": found["forked"] - found["reload"], "fork_to_ffmpeg": found["started"] - found["forked"]}


def measure(master: subprocess.Popen, tmp: Path, repeats: int, segment_seconds: int) -> dict[str, Any]:
    nvr, log = Nvr(tmp / "nvr.db"), tmp / "master.log"
    rows: list[dict[str, float]] = []
    failed = 0
    for r in range(repeats):
        cam = f"zz{r:03d}"
        offset = os.path.getsize(log)
        nvr.add_many([(cam, f"rtsp://127.0.0.1:1/{cam}", segment_seconds, True)])
        sent = time.time()
        master.send_signal(signal.SIGHUP)
        times, offset = _wait_for(log, offset, ["reload requested", f"{cam} worker started", f"{cam} ffmpeg started"])
        if len(times) < 3:
            failed += 1
        else:
            reload_at, forked, started = (times["reload requested"], times[f"{cam} worker started"],
                                          times[f"{cam} ffmpeg started"])
            rows.append({"total": started - sent, "to_reload": reload_at - sent, "reload_to_fork": forked - reload_at,
                         "fork_to_ffmpeg": started - forked})
        nvr.delete(cam)
        master.send_signal(signal.SIGHUP)
        _wait_for(log, offset, [f"{cam} worker exited"])
        time.sleep(0.3)
    result: dict[str, Any] = {"repeats": repeats, "failed": failed}
    for key in ("total", "to_reload", "reload_to_fork", "fork_to_ffmpeg"):
        values = sorted(row[key] * 1000 for row in rows)
        if values:
            result[key + "_ms"] = {"p50": round(statistics.median(values), 1),
                                   "p90": round(values[int(len(values) * 0.9) - 1 if len(values) > 1 else 0], 1),
                                   "max": round(values[-1], 1)}
    return result
