#!/usr/bin/env python3
"""Time one prune pass over a full-size mirror: 100 cameras x 1,440 segments (a day of 60 s ones).

The promise is a pass in under 2 s, so that the master can run it on its own schedule without
stalling reconciliation. Files are empty (pruning reads names and inode metadata, never content)
and their mtimes spread evenly over 48 h, so a 24 h retention deletes half of them: a pass that
deletes is the worst case. Every run gets a fresh tree; the median of the runs is reported.

    .venv/bin/python scripts/bench_prune.py [--dir /mirror/volume] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mirror_supervisor.cameras.camera import Camera  # noqa: E402
from mirror_supervisor.retention.prune import prune_pass  # noqa: E402

CAMERAS = 100
FILES = 1440
SPREAD_HOURS = 48
RETENTION_HOURS = 24


def build_tree(root: Path, now: float) -> None:
    step = SPREAD_HOURS * 3600 / FILES
    for c in range(CAMERAS):
        directory = root / f"cam_{c:03d}"
        directory.mkdir()
        for i in range(FILES):
            mtime = now - (FILES - i) * step
            name = time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(mtime))
            path = directory / name
            path.touch()
            os.utime(path, (mtime, mtime))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="where to build the trees (default: the system temp dir)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    # segment_seconds matches the spread: the pruner deletes only what recorded footage proves old.
    seconds = int(SPREAD_HOURS * 3600 / FILES)
    cameras = [Camera(f"cam_{c:03d}", mirrored=True, retention_hours=RETENTION_HOURS, segment_seconds=seconds)
               for c in range(CAMERAS)]
    running = {camera.id for camera in cameras}  # every camera recording: the newest is protected
    times = []
    for run in range(args.runs):
        root = Path(tempfile.mkdtemp(prefix="bench_prune_", dir=args.dir))
        try:
            now = time.time()
            started = time.perf_counter()
            build_tree(root, now)
            # In use the files were written over two days; writeback of a tree built a moment
            # ago would otherwise be billed to the pass.
            os.sync()
            built = time.perf_counter() - started
            started = time.perf_counter()
            report = prune_pass(root, cameras, running, now)
            elapsed = time.perf_counter() - started
            times.append(elapsed)
            print(
                f"run {run + 1}: {elapsed:.3f} s, deleted {report.deleted_files} of {CAMERAS * FILES} files "
                f"(tree built in {built:.1f} s in {root})",
                flush=True,
            )
            assert report.error is None and all(not c.errors for c in report.cameras)
        finally:
            shutil.rmtree(root)
    print(
        f"median prune_pass over {CAMERAS} cameras x {FILES} files: {statistics.median(times):.3f} s "
        f"(runs: {', '.join(f'{t:.3f}' for t in times)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
