"""Setting the stage: descriptor limits, disk space, the NVR database, the master process."""

from __future__ import annotations

import resource
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from bench_scale.common import ROOT, child_env, log

# Only the columns the supervisor reads; the same names and defaults as the NVR's table.
SCHEMA = """CREATE TABLE cameras (
    id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', vendor TEXT NOT NULL DEFAULT 'generic',
    address TEXT, rtsp_port INTEGER NOT NULL DEFAULT 554, username TEXT, password TEXT,
    main_stream_url TEXT, sub_stream_url TEXT, record_stream TEXT NOT NULL DEFAULT 'main',
    segment_seconds INTEGER NOT NULL DEFAULT 60, retention_hours INTEGER NOT NULL DEFAULT 24,
    record_audio INTEGER NOT NULL DEFAULT 0, record_enabled INTEGER NOT NULL DEFAULT 1,
    mirror_enabled INTEGER NOT NULL DEFAULT 0, enabled INTEGER NOT NULL DEFAULT 1, updated_at TEXT)"""


def raise_fd_limit(cameras: int) -> dict[str, int]:
    """Lift RLIMIT_NOFILE to the hard limit when N could come near it; children inherit it.

    The master itself holds few descriptors per worker, but the limit is inherited by every
    worker and recorder, and a short limit would make the benchmark measure the limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * cameras + 1024
    if soft < wanted and soft != hard:
        new = hard if hard == resource.RLIM_INFINITY else min(hard, max(wanted, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        log(f"raised RLIMIT_NOFILE soft limit {soft} -> {new} (hard {hard})")
        soft = new
    if soft < wanted:
        log(f"WARNING: RLIMIT_NOFILE {soft} is below the {wanted} wanted for {cameras} cameras")
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if nproc != resource.RLIM_INFINITY and nproc < 4 * cameras + 256:
        log(f"WARNING: RLIMIT_NPROC {nproc} may be too low for {cameras} workers, threads and recorders")
    return {"nofile_soft": soft, "nofile_hard": hard, "nproc_soft": nproc}


def check_disk(directory: Path, cameras: int, seconds: float, bytes_per_second: int) -> int:
    """The run writes about N x seconds x bytes; refuse to start when that would fill the disk."""
    need = int(cameras * seconds * bytes_per_second * 1.2)
    free = shutil.disk_usage(directory).free
    if free < need + (1 << 30):
        raise SystemExit(f"bench-scale: {directory} has {free >> 20} MiB free, the run needs ~{need >> 20} MiB + 1 GiB")
    return need


def make_database(path: Path, cameras: int, segment_seconds: int) -> None:
    """N mirrored cameras with explicit URLs nobody listens on; the stand-in never connects."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(SCHEMA)
        conn.executemany(
            "INSERT INTO cameras (id, name, main_stream_url, segment_seconds, mirror_enabled, updated_at)"
            " VALUES (?, ?, ?, ?, 1, '2026-01-01T00:00:00Z')",
            [(f"cam{i:04d}", f"cam{i:04d}", f"rtsp://127.0.0.1:1/cam{i}", segment_seconds) for i in range(cameras)],
        )
        conn.commit()
    finally:
        conn.close()


def start_master(tmp: Path, recorder: Path, bytes_per_second: int) -> subprocess.Popen:
    """The real master in the foreground, in its own session so Ctrl-C reaches only us."""
    env = child_env(STAND_IN_BYTES=str(bytes_per_second))
    argv = [sys.executable, "-m", "mirror_supervisor", "run", "--db", str(tmp / "nvr.db"),
            "--mirror-dir", str(tmp / "mirror"), "--state-dir", str(tmp / "state"),
            "--ffmpeg", str(recorder), "--poll-interval", "5"]
    with open(tmp / "master.log", "wb") as out:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)

