"""An NVR that writes its database while someone copies it: a separate process, stdlib only.

Run as a script (tests/integration/test_snapshot.py and scripts/bench_snapshot.py start it):

- ``nvr_writer.py DB load --rate 100 --seconds 30``: ``rate`` write transactions a second, each
  ``BEGIN IMMEDIATE``, one new camera ``w000001``, ``w000002`` ... and the ``ledger`` camera's
  ``name`` set to the count, ``COMMIT``. A consistent copy therefore has exactly as many ``w``
  rows as its ledger says. Prints one JSON line: the writes, and how long each transaction took
  from ``BEGIN IMMEDIATE`` to the end of ``COMMIT`` (the writer's wait: lock, journal, fsync).
- ``nvr_writer.py DB hold``: ``BEGIN IMMEDIATE``, one row ``uncommitted``, prints ``held`` and
  keeps the transaction open until a line arrives on stdin (``commit`` or anything else to roll
  back), then prints ``done``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time

LEDGER = "ledger"


def consistent(conn: sqlite3.Connection) -> tuple[bool, int, int]:
    """(consistent, the ledger's count, the w rows) of a database the load mode wrote."""
    ledger = conn.execute("SELECT name FROM cameras WHERE id = ?", (LEDGER,)).fetchone()
    rows = conn.execute("SELECT id FROM cameras WHERE id LIKE 'w%' ORDER BY id").fetchall()
    count = 0 if ledger is None else int(ledger[0])  # no ledger yet: copied before the writer's first write
    return [row[0] for row in rows] == [f"w{n:06d}" for n in range(1, count + 1)], count, len(rows)


def load(conn: sqlite3.Connection, rate: float, seconds: float) -> dict:
    waits, locks, commits = [], [], []
    began = time.monotonic()
    count = 0
    while True:
        due = began + count / rate
        if due - began >= seconds:
            break
        time.sleep(max(0.0, due - time.monotonic()))
        started = time.monotonic()
        conn.execute("BEGIN IMMEDIATE")
        locked = time.monotonic()
        count += 1
        conn.execute("INSERT INTO cameras (id, name, main_stream_url, mirror_enabled) VALUES (?, ?, ?, 0)",
                     (f"w{count:06d}", f"w{count:06d}", f"rtsp://10.1.{count // 250}.{count % 250}/live"))
        conn.execute("UPDATE cameras SET name = ? WHERE id = ?", (str(count), LEDGER))
        committing = time.monotonic()
        conn.execute("COMMIT")
        done = time.monotonic()
        waits.append(done - started)
        locks.append(locked - started)
        commits.append(done - committing)
    waits.sort()
    return {"writes": count, "seconds": time.monotonic() - began, "max_wait": waits[-1],
            "p99_wait": waits[int(len(waits) * 0.99)], "median_wait": waits[len(waits) // 2],
            "over_50ms": sum(1 for wait in waits if wait > 0.05),
            "max_begin": max(locks), "max_commit": max(commits)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("mode", choices=("load", "hold"))
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    conn = sqlite3.connect(args.db, timeout=30, isolation_level=None)
    if args.mode == "load":
        if conn.execute("SELECT count(*) FROM cameras WHERE id = ?", (LEDGER,)).fetchone()[0] == 0:
            conn.execute("INSERT INTO cameras (id, name) VALUES (?, '0')", (LEDGER,))
        print(json.dumps(load(conn, args.rate, args.seconds)), flush=True)
        return 0
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO cameras (id, name, mirror_enabled) VALUES ('uncommitted', 'uncommitted', 1)")
    print("held", flush=True)
    answer = sys.stdin.readline().strip()
    conn.execute("COMMIT" if answer == "commit" else "ROLLBACK")
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
