"""``mirror-supervisor snapshot`` (README, "When the NVR is gone"; docs/design.md, "Snapshot"):
a consistent copy of the camera table for a mirror on another host, made as a command beside an
NVR that writes its real SQLite file from another process, and read by a real master.

Times are measured by scripts/bench_snapshot.py, not asserted here: these tests check what the
copy holds, that it is always whole, and what happens when it cannot be made.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import procs
from support.nvr import NvrDatabase
from support.nvr_writer import consistent
from support.supervisor import Supervisor

from mirror_supervisor.cameras.camera import COLUMNS
from mirror_supervisor.cameras.snapshot import APPLICATION_ID

CLI = [sys.executable, "-m", "mirror_supervisor"]
WRITER = Path(__file__).resolve().parents[1] / "support" / "nvr_writer.py"


def snapshot(db: Path, out: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "snapshot", "--db", str(db), "--out", str(out)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def ids(path: Path) -> list[str]:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM cameras ORDER BY id")]
    finally:
        conn.close()


@pytest.mark.parametrize("wal", [True, False], ids=["wal", "rollback-journal"])
def test_a_writer_holding_begin_immediate_with_an_uncommitted_row_neither_blocks_nor_leaks_into_the_copy(
        tmp_path, wal):
    nvr = NvrDatabase(tmp_path / "nvr.db", wal=wal)
    nvr.add_mirrored("a", "rtsp://10.0.0.1/a")
    nvr.add_mirrored("b", "rtsp://10.0.0.1/b")
    out = tmp_path / "copy" / "cameras.db"
    out.parent.mkdir()
    writer = subprocess.Popen([sys.executable, str(WRITER), str(nvr.path), "hold"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "held"
        done = snapshot(nvr.path, out)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        assert ids(out) == ["a", "b"], "only committed rows"
        assert writer.poll() is None, "the writer still holds its transaction"
        writer.stdin.write("commit\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "done"
    finally:
        writer.kill()
        writer.wait()
    assert snapshot(nvr.path, out).returncode == 0
    assert ids(out) == ["a", "b", "uncommitted"]


def test_beside_100_writes_a_second_for_30_s_every_copy_opens_and_is_consistent(tmp_path):
    nvr = NvrDatabase(tmp_path / "nvr.db")
    for n in range(200):
        nvr.add_mirrored(f"cam{n:04d}", f"rtsp://10.0.{n // 250}.{n % 250}/live", password=f"pw-{n}")
    out = tmp_path / "cameras.db"
    writer = subprocess.Popen([sys.executable, str(WRITER), str(nvr.path), "load", "--rate", "100", "--seconds", "30"],
                              stdout=subprocess.PIPE, text=True)
    copies, counts = 0, []
    try:
        while writer.poll() is None:
            done = snapshot(nvr.path, out)
            assert done.returncode == 0, done.stderr
            # A reader of --out (rsync, a master) opens whatever is there now: always a whole database.
            conn = sqlite3.connect(f"{out.as_uri()}?mode=ro", uri=True)
            try:
                assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
                whole, count, rows = consistent(conn)
                assert whole, f"copy {copies}: the ledger says {count}, the table holds {rows} written rows"
                assert conn.execute("SELECT count(*) FROM cameras WHERE id LIKE 'cam%'").fetchone() == (200,)
            finally:
                conn.close()
            copies += 1
            counts.append(count)
        result = writer.stdout.read()
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == 0, result
    assert copies >= 10 and counts == sorted(counts) and len(set(counts)) > copies // 2, (copies, counts)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cameras.db.")], "a temporary file left behind"
    print(f"{copies} copies beside the writer: {result.strip()}")  # the writer's waits, for the curious (-s)


@pytest.mark.parametrize("source", ["missing", "garbage", "no-table", "no-id-column"])
def test_a_source_that_cannot_be_read_is_one_line_and_exit_1_and_the_copy_stays_as_it_was(tmp_path, source):
    good = NvrDatabase(tmp_path / "good.db")
    good.add_mirrored("a", "rtsp://10.0.0.1/a")
    out = tmp_path / "cameras.db"
    assert snapshot(good.path, out).returncode == 0
    before = out.read_bytes()
    bad = tmp_path / "bad.db"
    if source == "garbage":
        bad.write_bytes(os.urandom(4096))
    elif source == "no-table":
        sqlite3.connect(bad).execute("CREATE TABLE other (x)").connection.close()
    elif source == "no-id-column":
        sqlite3.connect(bad).execute("CREATE TABLE cameras (name, password)").connection.close()
    done = snapshot(bad, out)
    assert done.returncode == 1 and done.stdout == "", done
    assert done.stderr.startswith("mirror-supervisor: snapshot: ") and done.stderr.count("\n") == 1, done.stderr
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_the_copy_holds_only_the_table_the_mirror_reads_and_a_master_records_from_it(tmp_path, rtsp, mirror_dir):
    nvr = NvrDatabase(tmp_path / "nvr.db")
    nvr.add_mirrored("cam", rtsp.url("/live"), onvif_profile="profile_1", location="gate")
    nvr.execute("CREATE TABLE users (name TEXT, password_hash TEXT)")
    nvr.execute("INSERT INTO users VALUES ('admin', 'argon2-not-for-the-mirror')")
    out = tmp_path / "copy" / "cameras.db"
    out.parent.mkdir()
    old = os.umask(0)  # the copy's mode is its own, whatever the umask
    try:
        assert snapshot(nvr.path, out).returncode == 0
    finally:
        os.umask(old)
    assert oct(out.stat().st_mode & 0o777) == oct(0o640)
    conn = sqlite3.connect(f"{out.as_uri()}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master")]
        columns = [row[1] for row in conn.execute("PRAGMA table_info(cameras)")]
        assert conn.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
    finally:
        conn.close()
    assert tables == ["cameras"] and columns == list(COLUMNS)
    assert b"argon2-not-for-the-mirror" not in out.read_bytes() and b"gate" not in out.read_bytes()

    # A master on the mirror host needs nothing else. It warns once when the copy is no longer
    # replaced (here after 3 s), keeps recording, and says so when copies arrive again.
    sup = Supervisor(tmp_path, out, mirror_dir, "--poll-interval", "1", "--snapshot-max-age", "3").start()
    try:
        before = sup.wait_one_each({"cam"})
        sup.wait_log("cam recording segment=")
        sup.wait_log("is a snapshot copy that has not been replaced for", timeout=30)
        time.sleep(3)  # three more polls of a stale copy
        assert sup.log().count("has not been replaced for") == 1, "warned once, not every poll"
        assert snapshot(nvr.path, out).returncode == 0
        sup.wait_log("the snapshot copy is being replaced again", timeout=30)
        assert procs.disturbed(before, sup.wait_one_each({"cam"}), sup.log()) == []
        assert sup.stop() == 0
    finally:
        sup.kill_everything()
