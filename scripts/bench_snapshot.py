#!/usr/bin/env python3
"""What ``mirror-supervisor snapshot`` costs, and what it costs the NVR that writes meanwhile.

1. Copy time: a WAL database like the NVR's (``--cameras`` cameras with every column filled, plus a
   ``recordings`` table of 200,000 rows the copy leaves behind), copied ``--copies`` times with
   ``snapshot.take`` (in process: the copy itself) and a few times with the command (a process
   start included, as the systemd timer runs it). Reported: the whole copy (fsyncs included) and
   the read transaction on the NVR's database alone.
2. The writer's wait: the NVR writing ``--rate`` transactions a second for ``--seconds`` (each
   ``BEGIN IMMEDIATE``, an insert, an update, ``COMMIT``: tests/support/nvr_writer.py, a process of
   its own), once alone and once beside copies taken back to back (the worst case: the timer
   takes one every 10 s), in WAL mode (the NVR's) and with a rollback journal. Reported: the
   longest, 99th percentile and median time from ``BEGIN IMMEDIATE`` to the end of ``COMMIT``,
   and how many took over 50 ms. Every copy taken beside the writer is checked to be consistent.

    .venv/bin/python scripts/bench_snapshot.py [--cameras 1000] [--copies 30] [--rate 100] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.nvr import NvrDatabase  # noqa: E402
from support.nvr_writer import consistent  # noqa: E402

from mirror_supervisor.cameras import snapshot  # noqa: E402

WRITER = ROOT / "tests" / "support" / "nvr_writer.py"


def nvr_database(path: Path, cameras: int, wal: bool) -> NvrDatabase:
    nvr = NvrDatabase(path, wal=wal)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO cameras (id, name, vendor, address, rtsp_port, username, password, sub_stream_url, segment_seconds,"
        " retention_hours, record_audio, mirror_enabled, updated_at, onvif_profile, location, created_at)"
        " VALUES (?, ?, 'hikvision', ?, 554, 'admin', ?, ?, 60, 72, 1, 1, '2026-11-23T00:00:00Z', 'profile_1',"
        " 'building 3, floor 2, north corridor', '2026-01-01T00:00:00Z')",
        [(f"cam{n:05d}", f"Camera {n}", f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", f"pw-{n:08x}-secret",
          f"rtsp://10.{n // 65536}.{n // 256 % 256}.{n % 256}:554/Streaming/Channels/102") for n in range(cameras)])
    conn.execute("CREATE TABLE recordings (camera TEXT, start TEXT, path TEXT, bytes INTEGER)")
    conn.executemany("INSERT INTO recordings VALUES (?, ?, ?, ?)",
                     [(f"cam{n % cameras:05d}", f"2026-11-{n % 28 + 1:02d}", f"/rec/{n}.mp4", n * 1000)
                      for n in range(200_000)])
    conn.execute("COMMIT")
    conn.close()
    return nvr


def summary(seconds: list[float]) -> dict[str, float]:
    seconds = sorted(seconds)
    return {"median_ms": statistics.median(seconds) * 1000, "max_ms": seconds[-1] * 1000, "n": len(seconds)}


def copy_time(tmp: Path, cameras: int, copies: int) -> dict:
    nvr = nvr_database(tmp / "copytime.db", cameras, wal=True)
    out = tmp / "copytime-out.db"
    taken = [snapshot.take(nvr.path, out) for _ in range(copies)]
    assert taken[-1].rows == cameras
    command = []
    for _ in range(min(copies, 10)):
        began = time.monotonic()
        subprocess.run([sys.executable, "-m", "mirror_supervisor", "snapshot", "--db", str(nvr.path), "--out", str(out)],
                       check=True, cwd=ROOT)
        command.append(time.monotonic() - began)
    return {"cameras": cameras, "database_bytes": nvr.path.stat().st_size, "copy_bytes": out.stat().st_size,
            "copy": summary([t.seconds for t in taken]), "read_transaction": summary([t.read_seconds for t in taken]),
            "command": summary(command)}


def writer_wait(tmp: Path, cameras: int, rate: float, seconds: float, wal: bool, copying: bool,
                out_dir: Path | None = None, every: float = 0.0) -> dict:
    name = f"writer-{'wal' if wal else 'rollback'}-{'copying' if copying else 'alone'}"
    nvr = nvr_database(tmp / f"{name}.db", cameras, wal=wal)
    out = (out_dir or tmp) / f"{name}-out.db"
    writer = subprocess.Popen([sys.executable, str(WRITER), str(nvr.path), "load", "--rate", str(rate),
                               "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True)
    copies, inconsistent, failed, reasons = [], 0, 0, set()
    while writer.poll() is None:
        if not copying:
            time.sleep(0.1)
            continue
        if every:
            time.sleep(every)
        try:
            copies.append(snapshot.take(nvr.path, out))
        except snapshot.SnapshotError as exc:
            failed += 1
            reasons.add(str(exc))
            continue
        conn = sqlite3.connect(f"{out.as_uri()}?mode=ro", uri=True)
        try:
            inconsistent += not consistent(conn)[0]
        finally:
            conn.close()
    waits = json.loads(writer.stdout.read())
    result = {"journal": "wal" if wal else "rollback", "copying": copying, "writer": waits, "copies": len(copies),
              "copies_failed": failed, "copies_inconsistent": inconsistent, "failures": sorted(reasons)}
    if copies:
        result["copy"] = summary([t.seconds for t in copies])
        result["read_transaction"] = summary([t.read_seconds for t in copies])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=1000)
    parser.add_argument("--copies", type=int, default=30)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=0.0, help="seconds between copies (default: back to back)")
    parser.add_argument("--out-dir", type=Path, help="write the copies here (default: beside the database)")
    parser.add_argument("--skip-copy-time", action="store_true")
    args = parser.parse_args()
    results: dict = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "sqlite": sqlite3.sqlite_version}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if not args.skip_copy_time:
            results["copy_time"] = c = copy_time(tmp, args.cameras, args.copies)
            print(f"copy of {args.cameras} cameras ({c['database_bytes'] / 1e6:.1f} MB database -> "
                  f"{c['copy_bytes'] / 1e3:.0f} kB):"
                  f" median {c['copy']['median_ms']:.1f} ms, max {c['copy']['max_ms']:.1f} ms; read transaction median "
                  f"{c['read_transaction']['median_ms']:.2f} ms, max {c['read_transaction']['max_ms']:.2f} ms; the command "
                  f"median {c['command']['median_ms']:.0f} ms")
        results["writer"] = []
        for wal in (True, False):
            for copying in (False, True):
                found = writer_wait(tmp, args.cameras, args.rate, args.seconds, wal, copying, args.out_dir, args.every)
                results["writer"].append(found)
                w = found["writer"]
                extra = (f"; {found['copies']} copies ({found['copies_inconsistent']} inconsistent, {found['copies_failed']} "
                         f"failed{': ' if found['failures'] else ''}{'; '.join(found['failures'])}), read transaction max "
                         f"{found['read_transaction']['max_ms']:.2f} ms" if copying and found["copies"] else "")
                print(f"writer {found['journal']:8} {'beside copies' if copying else 'alone':13} {w['writes']} writes in "
                      f"{w['seconds']:.1f} s: worst {w['max_wait'] * 1000:.1f} ms, p99 {w['p99_wait'] * 1000:.1f} ms, "
                      f"median {w['median_wait'] * 1000:.2f} ms, over 50 ms: {w['over_50ms']} (longest BEGIN IMMEDIATE "
                      f"{w['max_begin'] * 1000:.1f} ms, longest COMMIT {w['max_commit'] * 1000:.1f} ms){extra}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
