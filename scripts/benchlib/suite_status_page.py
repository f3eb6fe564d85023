"""The status page: how long a page of N cameras x a day takes to build from a warm index.

N camera directories (default 100) of a day of 60 s segments (default 1,440 each) ending half a
minute ago, every one in the segment index with the size and mtime of its file, as the workers
leave it: the page stats each file and reads its row, it never parses a file (that is the cold
path, measured by the coverage suite). The files are 1 KiB each (their rows say 60 playable
seconds): the page never reads them. A status.json names the cameras, as the master writes it.

Then the real route of the listener child (``web/route.py``, with its real forked reader), in
this process, asked for ``/?window=24h``:

- **first page**: a new route, nothing read yet: from the first request until a request returns
  the page with every block read (each request waits up to the route's 1 s for the reader, then
  answers with what is read so far; it is asked again at once, as a browser reloading would be);
- **a refresh**: the page again after the route's clock moved 30 s on (the page's own reload),
  so the hour being written is read again and the rest is reused: wall time of that one request
  (fork, read, page), and the CPU of this process plus the reader's;
- **the page alone**: a request whose blocks are all fresh (status.json, the probe's answer,
  the timelines put together and the HTML rendered);

and, for comparison, ``coverage.compute`` of the day over all cameras (what the first read costs).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import log, mono
from .context import Context
from .machine import machine_info

SEGMENT = 60.0
ENDS_AGO = 30.0  # the newest segment ended this long before the measurement starts


class Clock:
    """The route's monotonic clock, moved on by the benchmark (a refresh without waiting 30 s)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def write_mirror(mirror: Path, cameras: int, segments: int, end: float) -> list[str]:
    """The files and their index rows; returns the camera ids."""
    from mirror_supervisor.footage import index

    ids = [f"cam{c:03d}" for c in range(cameras)]
    payload = b"\0" * 1024
    mirror.mkdir()
    with index.SegmentIndex(mirror, make_dir=True) as db:
        for cid in ids:
            directory = mirror / cid
            directory.mkdir(parents=True)
            rows = []
            for i in range(segments):
                start = end - (segments - i) * SEGMENT
                name = time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(start))
                path = directory / name
                path.write_bytes(payload)
                os.utime(path, (start + SEGMENT, start + SEGMENT))
                st = path.stat()
                rows.append(index.Row(name, start, SEGMENT, st.st_size, st.st_mtime_ns, True, None))
            db.put(cid, rows)
    return ids


def write_state(state: Path, mirror: Path, ids: list[str], now: float) -> None:
    state.mkdir()
    cameras = [{"id": cid, "name": f"Camera {cid}", "state": "recording", "restarts": 0,
                "segment": time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(now - ENDS_AGO - SEGMENT)),
                "last_error": None} for cid in ids]
    status = {"version": 1, "updated": now, "cameras": cameras,
              "master": {"pid": os.getpid(), "started": now - 86400, "recorder_enabled": True,
                         "mirror_dir": str(mirror), "db_path": "/var/lib/heldar/heldar.db",
                         "db": {"state": "ok"}, "volume": {"state": "ok"}}}
    (state / "status.json").write_text(json.dumps(status))
    (state / "metrics-probe.json").write_text(json.dumps({"sequence": 1, "free": 4 << 40, "cameras": {}}))


def complete(page: Any, ids: list[str]) -> bool:
    from mirror_supervisor.web import blocks

    now = time.time()
    return bool(page.stores) and all(not store.stale(blocks.starts(now - 86400, now), ids, page.clock(),
                                                     since=now - 86400) for store in page.stores.values())


def cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def measure(state: Path, ids: list[str], repeats: int) -> dict[str, Any]:
    from mirror_supervisor.web import route

    clock = Clock()
    page = route.StatusPage(state, host="bench", clock=clock)
    began, cpu_began, asked = mono(), cpu(), 0
    while True:
        response = page("window=24h")
        asked += 1
        if complete(page, ids):
            break
        page.pages.clear()
    first = {"wall_s": round(mono() - began, 3), "cpu_s": round(cpu() - cpu_began, 3), "requests": asked,
             "bytes": len(response.body)}
    refresh_wall, refresh_cpu, alone = [], [], []
    for _ in range(repeats):
        clock.offset += 30.0  # the page's reload: the hour being written is stale, the rest is not
        page.pages.clear()
        began, cpu_began = mono(), cpu()
        response = page("window=24h")
        refresh_wall.append(mono() - began)
        refresh_cpu.append(cpu() - cpu_began)
        assert complete(page, ids), "a refresh left blocks unread"
        page.pages.clear()
        began = mono()
        page("window=24h")
        alone.append(mono() - began)
    gaps = response.body.count(b'data-kind="gap"')
    return {"first": first, "refresh_wall_s": refresh_wall, "refresh_cpu_s": refresh_cpu, "alone_s": alone,
            "refresh_ms": round(statistics.median(refresh_wall) * 1000, 1),
            "refresh_max_ms": round(max(refresh_wall) * 1000, 1),
            "refresh_cpu_ms": round(statistics.median(refresh_cpu) * 1000, 1),
            "alone_ms": round(statistics.median(alone) * 1000, 1), "bytes": len(response.body), "gaps": gaps}


def compute_day(mirror: Path, ids: list[str]) -> float:
    from mirror_supervisor.footage import coverage

    now = time.time()
    began = mono()
    coverage.compute(mirror, now - 86400, now, cameras=ids, now=now, pool=False)
    return round(mono() - began, 3)


def run(ctx: Context) -> dict[str, Any]:
    o = ctx.opts
    began = mono()
    mirror, state = ctx.work / "status-page-mirror", ctx.work / "status-page-state"
    log(f"status page: writing {o.status_page_cameras} cameras x {o.status_page_segments} indexed segments")
    end = time.time() - ENDS_AGO
    ids = write_mirror(mirror, o.status_page_cameras, o.status_page_segments, end)
    write_state(state, mirror, ids, time.time())
    written = round(mono() - began, 1)
    result: dict[str, Any] = {"config": {"cameras": o.status_page_cameras, "segments": o.status_page_segments,
                                         "repeats": o.status_page_repeats, "quick": o.quick, "written_s": written},
                              "machine": machine_info()}
    result["coverage_day_s"] = compute_day(mirror, ids)  # also warms the page cache, as a running mirror has it
    result.update(measure(state, ids, o.status_page_repeats))
    log(f"status page: first page {result['first']['wall_s']} s ({result['first']['requests']} requests), "
        f"refresh {result['refresh_ms']} ms (max {result['refresh_max_ms']}), alone {result['alone_ms']} ms, "
        f"coverage of the day {result['coverage_day_s']} s, page {result['bytes'] / 1024:.0f} KiB")
    _discard(mirror, ctx.work)
    result["duration_s"] = round(mono() - began, 1)
    return result


def _discard(mirror: Path, work: Path) -> None:
    """Many files take minutes to delete: moved out of the work dir and deleted in the background."""
    trash = Path(tempfile.mkdtemp(prefix="mirror-bench-trash-", dir=work.parent))
    mirror.rename(trash / "mirror")
    subprocess.Popen(["rm", "-rf", "--", str(trash)], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def render(results: dict[str, Any]) -> list[str]:
    r = results.get("status_page")
    if not r:
        return []
    c, m, first = r["config"], r["machine"], r["first"]
    files = c["cameras"] * c["segments"]
    return [
        "## Status page",
        "",
        f"`scripts/bench --status-page` on {m['date_utc']} ({m['cores']} cores, commit {m['commit']}), "
        f"{r['duration_s']:.0f} s: {c['cameras']} cameras x {c['segments']} segments of 60 s ({files:,} files, all in "
        f"the segment index, written in {c['written_s']:.0f} s); the listener's route for `/?window=24h`, in process, "
        f"with its forked reader; refresh and page alone: median of {c['repeats']}.",
        "",
        "| | wall | CPU (route and reader) | |",
        "|---|---|---|---|",
        f"| first page, nothing read yet (every block of the day) | {first['wall_s']:.2f} s | {first['cpu_s']:.2f} s "
        f"| requests until complete: {first['requests']} |",
        f"| a refresh 30 s later (the hour being written read again) | {r['refresh_ms']:.0f} ms "
        f"(at most {r['refresh_max_ms']:.0f}) | {r['refresh_cpu_ms']:.0f} ms | target <= 1 s |",
        f"| the page alone, every block fresh | {r['alone_ms']:.0f} ms | | {r['bytes'] / 1024:.0f} KiB of HTML |",
        f"| for comparison: `coverage.compute` of the day | {r['coverage_day_s']:.2f} s | | |",
        "",
    ]
