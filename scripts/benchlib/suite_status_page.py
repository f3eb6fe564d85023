"""The status page: how long a page of N cameras x a day takes to build from a warm index.

N camera directories (default 100) of a day of 60 s segments (default 1,440 each) ending half a
minute ago, every one in the segment index with the size and mtime of its file, as the workers
leave it (the page never parses an indexed file: that is the cold path, measured by the coverage
suite). The files are 1 KiB each (their rows say 60 playable seconds). A status.json names the
cameras, as the master writes it.

Then the listener's real route for ``/?window=24h`` with its real forked reader, in a process of
its own that plays the listener (:mod:`.status_page_child`): the first page of a new route
(nothing read yet: every block of the day), several times; a refresh 30 s later (the page's own
reload: the hour being written is read again); the page alone (every block fresh); and, for
comparison, ``coverage.compute`` of the day. Medians. With ``--status-page-before REV`` the same
runs with the package of commit REV (exported, first on ``PYTHONPATH``) on the same files: the
before/after of a change. The machine's load average is recorded at the start and the end: other
work on it slows every figure.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .commits import export, git
from .common import ROOT, log, mono
from .context import Context
from .machine import machine_info

SEGMENT = 60.0
ENDS_AGO = 30.0  # the newest segment ended this long before the measurement starts
FIRST_PAGES = 7  # first pages per version (3 with --quick)


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


def measure(code: Path | None, state: Path, ids: list[str], firsts: int, repeats: int) -> dict[str, Any]:
    """One version's figures, from a process of its own (:mod:`.status_page_child`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*([str(code)] if code else []), str(ROOT / "scripts")])
    done = subprocess.run([sys.executable, "-m", "benchlib.status_page_child", str(state), ",".join(ids), str(firsts),
                           str(repeats)], capture_output=True, text=True, timeout=3600, env=env, check=True,
                          cwd=code or ROOT)  # (python -m puts the working directory first on the path)
    raw = json.loads(done.stdout)
    first = raw["first"]
    return {"raw": raw, "package": raw["package"],
            "first_ms": _ms(statistics.median(f["wall_s"] for f in first)),
            "first_min_ms": _ms(min(f["wall_s"] for f in first)), "first_max_ms": _ms(max(f["wall_s"] for f in first)),
            "first_cpu_ms": _ms(statistics.median(f["cpu_s"] for f in first)),
            "first_requests": [f["requests"] for f in first],
            "refresh_ms": _ms(statistics.median(raw["refresh_wall_s"])), "refresh_max_ms": _ms(max(raw["refresh_wall_s"])),
            "refresh_cpu_ms": _ms(statistics.median(raw["refresh_cpu_s"])),
            "alone_ms": _ms(statistics.median(raw["alone_s"])),
            "compute_ms": _ms(statistics.median(raw["compute"]["wall_s"])),
            "compute_cpu_ms": _ms(statistics.median(raw["compute"]["cpu_s"])),
            "bytes": first[-1]["bytes"], "gaps": first[-1]["gaps"]}


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def warm(mirror: Path, ids: list[str]) -> float:
    """Every file's name and the whole index read once (as a running mirror has them in the page
    cache), in a process of its own: the measuring one must not have imported the coverage code."""
    began = mono()
    code = ("import sys, time; from pathlib import Path; from mirror_supervisor.footage import coverage; "
            "now = time.time(); coverage.compute(Path(sys.argv[1]), now - 86400, now, cameras=sys.argv[2].split(','), "
            "now=now, pool=False, write_index=False)")
    subprocess.run([sys.executable, "-c", code, str(mirror), ",".join(ids)], check=True, timeout=3600)
    return round(mono() - began, 2)


def run(ctx: Context) -> dict[str, Any]:
    o = ctx.opts
    began, load_before = mono(), os.getloadavg()  # (before this run's own writing adds to it)
    mirror, state = ctx.work / "status-page-mirror", ctx.work / "status-page-state"
    log(f"status page: writing {o.status_page_cameras} cameras x {o.status_page_segments} indexed segments")
    end = time.time() - ENDS_AGO
    ids = write_mirror(mirror, o.status_page_cameras, o.status_page_segments, end)
    write_state(state, mirror, ids, time.time())
    firsts = 3 if o.quick else FIRST_PAGES
    result: dict[str, Any] = {"config": {"cameras": o.status_page_cameras, "segments": o.status_page_segments,
                                         "repeats": o.status_page_repeats, "first_pages": firsts, "quick": o.quick,
                                         "written_s": round(mono() - began, 1)},
                              "machine": machine_info(), "load_before": load_before}
    result["config"]["warmed_s"] = warm(mirror, ids)
    code: dict[str, Path | None] = {"after": None}
    if o.status_page_before:
        commit = git("rev-parse", o.status_page_before)
        result["config"]["before_commit"] = commit[:10]
        code = {"before": export(commit, ctx.work / "status-page-before"), **code}
    for label, where in code.items():
        load = os.getloadavg()[0]
        result[label] = taken = {**measure(where, state, ids, firsts, o.status_page_repeats), "load": load}
        log(f"status page, {label}: first page {taken['first_ms']} ms median ({taken['first_min_ms']}-"
            f"{taken['first_max_ms']}; requests {taken['first_requests']}), refresh {taken['refresh_ms']} ms, "
            f"alone {taken['alone_ms']} ms, coverage of the day {taken['compute_ms']} ms; {taken['package']}")
    result["load_after"] = os.getloadavg()
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
    if not r or "after" not in r:  # (a run from before the before/after layout: not drawn)
        return []
    c, m = r["config"], r["machine"]
    files = c["cameras"] * c["segments"]
    versions = [label for label in ("before", "after") if label in r]
    load = "1-minute load average " + ", ".join([f"{r['load_before'][0]:.1f} at the start",
                                                  *(f"{r[v]['load']:.1f} before the {v} runs" for v in versions
                                                    if "load" in r[v]), f"{r['load_after'][0]:.1f} at the end"])
    lines = [
        "## Status page",
        "",
        f"`scripts/bench --status-page` on {m['date_utc']} ({m['cores']} cores, commit {m['commit']}, {load}), "
        f"{r['duration_s']:.0f} s: {c['cameras']} cameras x {c['segments']} segments of 60 s ({files:,} files, all in "
        f"the segment index, written in {c['written_s']:.0f} s); the listener's route for `/?window=24h` with its "
        f"forked reader, in a process that plays the listener; first page: median of {c['first_pages']} new routes, "
        f"refresh and page alone: median of {c['repeats']}"
        + (f"; before = commit {c['before_commit']}." if "before" in r else "."),
        "",
        "| | " + " | ".join(f"{label}: wall | {label}: CPU" for label in versions) + " |",
        "|---|" + "---|---|" * len(versions),
        "| first page, nothing read yet (every block of the day; target <= 1 s) | "
        + " | ".join(f"{r[v]['first_ms'] / 1000:.2f} s ({r[v]['first_min_ms'] / 1000:.2f}-{r[v]['first_max_ms'] / 1000:.2f})"
                     f" | {r[v]['first_cpu_ms'] / 1000:.2f} s" for v in versions) + " |",
        "| a refresh 30 s later (the hour being written read again) | "
        + " | ".join(f"{r[v]['refresh_ms']:.0f} ms (at most {r[v]['refresh_max_ms']:.0f}) | {r[v]['refresh_cpu_ms']:.0f} ms"
                     for v in versions) + " |",
        "| the page alone, every block fresh | " + " | ".join(f"{r[v]['alone_ms']:.0f} ms | " for v in versions) + " |",
        "| for comparison: `coverage.compute` of the day | "
        + " | ".join(f"{r[v]['compute_ms'] / 1000:.2f} s | {r[v]['compute_cpu_ms'] / 1000:.2f} s" for v in versions) + " |",
        "",
        "Requests until the first page was complete (each waits up to 1 s for the reader): "
        + "; ".join(f"{v} {r[v]['first_requests']}" for v in versions) + f". Page: {r['after']['bytes'] / 1024:.0f} KiB "
        "of HTML.",
        "",
    ]
    return lines
