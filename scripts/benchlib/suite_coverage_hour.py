"""The last hour's coverage of one camera, against the camera's retention: what the master's
coverage child and ``status`` pay for each camera, every minute.

One camera of N consecutive 60 s segments (the coverage suite's sparse files, :func:`write_day`;
N = 1,440 is a day, 43,200 thirty days), every segment indexed as its worker would index it (its
boxes parsed, one row each), the directory's mtime when its newest segment was created. Then
``coverage.compute`` of the last hour, in process, warm (the index and the page cache hold
everything; one run first to fill both), as ``status`` calls it (``pool=False``), repeated: CPU
time and wall time per run. Twice: the camera recording up to the window's end, and the camera
down for the last two hours (the hour is one gap). "Before" runs the package as it was at
``--coverage-hour-before`` (default: the parent of the commit that added
``mirror_supervisor/footage/coverage_files.py``), exported with ``git archive`` and put first on
PYTHONPATH; "after" the working tree. The figure that matters is how the cost grows with N.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .commits import before_adding, export
from .common import ROOT, log, mono
from .context import Context
from .machine import machine_info
from .suite_coverage import DAY_START, SEGMENT_SECONDS, write_day

CAMERA = "cam000"

WINDOWS = {"recording": 0.0, "down for 2 h": 7200.0}  # the window's end after the newest segment's

# Runs in a child, with the package under test first on PYTHONPATH: argv = mirror, end, repeats.
_MEASURE = """
import json, sys, time
from pathlib import Path
try:
    from mirror_supervisor.footage import coverage
except ImportError:  # a commit from before the package was grouped into subpackages
    from mirror_supervisor import coverage
mirror, end, repeats = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
def once():
    return coverage.compute(mirror, end - 3600, end, cameras=["cam000"], now=end, pool=False)
first = once()
cpu, wall = [], []
for _ in range(repeats):
    c, w = time.process_time(), time.monotonic()
    report = once()
    cpu.append(time.process_time() - c)
    wall.append(time.monotonic() - w)
cam = report.cameras[0]
print(json.dumps({"cpu_s": cpu, "wall_s": wall, "gaps": len(cam.gaps), "coverage": cam.coverage,
                  "parsed": report.parsed, "looked_up": getattr(report, "looked_up", None),
                  "listed": getattr(report, "listed", None), "notes": report.notes,
                  "module": coverage.__file__}))
"""


def baseline_commit(rev: str | None) -> str:
    """``rev``, or the parent of the commit that added coverage_files.py (the window read by name)."""
    return before_adding("mirror_supervisor/coverage_files.py", rev, "--coverage-hour-before")


def index_like_workers(mirror: Path) -> None:
    """Every segment's row, from its boxes, as each worker writes it when the segment is done."""
    from mirror_supervisor.footage import index, mp4

    directory = mirror / CAMERA
    rows = [index.row_from(name, mp4.probe(directory / name)) for name in sorted(os.listdir(directory))]
    with index.SegmentIndex(mirror, make_dir=True) as db:
        db.put(CAMERA, [row for row in rows if row is not None])


def measure(code: Path | None, mirror: Path, end: float, repeats: int) -> dict[str, Any]:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(mirror), str(end), str(repeats)], capture_output=True,
                          text=True, timeout=3600, env=env, cwd=ROOT if code is None else code, check=True)
    raw = json.loads(done.stdout)
    return {**raw, "cpu_ms": round(statistics.median(raw["cpu_s"]) * 1000, 2),
            "wall_ms": round(statistics.median(raw["wall_s"]) * 1000, 2)}


def run(ctx: Context) -> dict[str, Any]:
    o = ctx.opts
    began = mono()
    commit = baseline_commit(o.coverage_hour_before)
    code = {"before": export(commit, ctx.work / "coverage-hour-before"), "after": None}
    result: dict[str, Any] = {"config": {"files": o.coverage_hour_files, "repeats": o.coverage_hour_repeats,
                                         "segment_seconds": SEGMENT_SECONDS, "before_commit": commit[:10],
                                         "quick": o.quick},
                              "machine": machine_info(), "rows": []}
    for files in o.coverage_hour_files:
        mirror = ctx.work / f"coverage-hour-{files}"
        mirror.mkdir()
        write_day(mirror, 1, files)
        index_like_workers(mirror)
        newest = DAY_START + (files - 1) * SEGMENT_SECONDS + 1  # write_day names every other segment 1 s late
        os.utime(mirror / CAMERA, (newest, newest))  # as ffmpeg left it: created its newest file then
        for camera, later in WINDOWS.items():
            end = DAY_START + files * SEGMENT_SECONDS + later
            row: dict[str, Any] = {"files": files, "camera": camera}
            for label, where in code.items():
                row[label] = measure(where, mirror, end, o.coverage_hour_repeats)
                log(f"coverage hour: {files} files, {camera}, {label}: cpu {row[label]['cpu_ms']} ms, "
                    f"wall {row[label]['wall_ms']} ms, looked up {row[label]['looked_up']}, listed {row[label]['listed']}")
            result["rows"].append(row)
        _discard(mirror, ctx.work)
    result["duration_s"] = round(mono() - began, 1)
    return result


def _discard(mirror: Path, work: Path) -> None:
    """Tens of thousands of sparse files take ext4 minutes to delete: moved out of the work dir and
    deleted in the background (as the coverage suite does)."""
    trash = Path(tempfile.mkdtemp(prefix="mirror-bench-trash-", dir=work.parent))
    mirror.rename(trash / "mirror")
    subprocess.Popen(["rm", "-rf", "--", str(trash)], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def render(results: dict[str, Any]) -> list[str]:
    r = results.get("coverage_hour")
    if not r:
        return []
    c = r["config"]
    lines = [
        "## Coverage of the last hour against retention",
        "",
        f"`scripts/bench --coverage-hour` on {r['machine']['date_utc']} ({r['machine']['cores']} cores, commit "
        f"{r['machine']['commit']}), {r['duration_s']:.0f} s: one camera of N segments of {c['segment_seconds']} s, "
        "all indexed; `coverage.compute` of the last hour as `status` and the coverage child call it, warm, "
        f"median of {c['repeats']} runs. Before = commit {c['before_commit']} (the whole directory listed every run).",
        "",
        "| files in the camera directory | the camera | before: CPU | before: wall | after: CPU | after: wall "
        "| after: names looked up |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        b, a = row["before"], row["after"]
        lines.append(f"| {row['files']:,} | {row.get('camera', 'recording')} | {b['cpu_ms']:.1f} ms | {b['wall_ms']:.1f} ms "
                     f"| {a['cpu_ms']:.1f} ms | {a['wall_ms']:.1f} ms | {a['looked_up']:,} |")
    lines.append("")
    return lines
