"""When the NVR is gone at start: the camera cache (README, "When the NVR is gone"; docs/design.md,
"Camera cache"), with the real master, real ffmpeg, the test RTSP camera and a real SQLite file
written by another connection.

A running master keeps recording when its database becomes unreadable; these tests are about a
master that *starts* while it is: after a power cut, a dead NVR disk, a reboot of the mirror
host. Before the cache, such a master knew no camera and recorded nothing from then on.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from support import procs
from support.recordings import old_segments

from mirror_supervisor.cameras.cache import cache_path, load

CLI = [sys.executable, "-m", "mirror_supervisor"]
DAY, HOUR = 86400, 3600


@pytest.fixture
def notify_socket():
    """The receiving end of systemd's NOTIFY_SOCKET (tests/integration/test_notify.py has the whole
    protocol); yields (path, a function returning every STATUS= line so far)."""
    directory = Path(tempfile.mkdtemp(prefix="notify-", dir="/tmp"))  # socket paths are short
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(directory / "notify.sock"))
    sock.setblocking(False)
    seen: list[str] = []

    def statuses() -> list[str]:
        while True:
            try:
                seen.extend(line for line in sock.recv(4096).decode().split("\n") if line.startswith("STATUS="))
            except BlockingIOError:
                return seen

    yield str(directory / "notify.sock"), statuses
    sock.close()
    shutil.rmtree(directory, ignore_errors=True)


def master_json(sup) -> dict:
    return json.loads((sup.state_dir / "status.json").read_text())["master"]


def table_source(sup) -> str | None:
    try:
        return master_json(sup)["camera_table"]["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def move_database(src, dst) -> None:
    """The database with its -wal and -shm, as one would move it (or as a dead disk loses it)."""
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{src}{suffix}"):
            os.replace(f"{src}{suffix}", f"{dst}{suffix}")


def first_run(supervisor, mirror_dir, cache_dir, cameras: set[str]) -> None:
    """A master reads the database, records, writes its cache and stops."""
    sup = supervisor("--poll-interval", "1")
    sup.wait_one_each(cameras)
    cache = cache_path(cache_dir, mirror_dir)
    procs.wait_for("the camera cache written", cache.exists, 15)
    assert {row[0] for row in load(cache, mirror_dir).table.rows} == cameras
    assert sup.stop() == 0


@pytest.mark.parametrize("fault", ["renamed-away", "garbage"])
def test_a_master_started_without_its_database_records_from_the_cache_until_the_database_wins(
        rtsp, nvr, mirror_dir, supervisor, camera_cache_dir, tmp_path, notify_socket, fault):
    nvr.add_mirrored("cam1", rtsp.url("/live"))
    nvr.add_mirrored("cam2", rtsp.url("/live"), password="cache-pw-1234")
    nvr.add_mirrored("cam3", rtsp.url("/live"))
    first_run(supervisor, mirror_dir, camera_cache_dir, {"cam1", "cam2", "cam3"})

    away = tmp_path / "away.db"
    move_database(nvr.path, away)
    if fault == "garbage":  # a database file that is not one: the NVR's disk returned rubbish
        nvr.path.write_bytes(os.urandom(8192))
    earlier = len((tmp_path / "supervisor.log").read_text())
    metrics = tmp_path / "metrics.prom"
    sup = supervisor("--poll-interval", "1", "--metrics-file", str(metrics), env={"NOTIFY_SOCKET": notify_socket[0]})
    table = sup.wait_one_each({"cam1", "cam2", "cam3"})
    for camera in ("cam1", "cam2", "cam3"):
        procs.wait_for(f"{camera} recording from the cache",
                       lambda c=camera: f"{c} recording segment=" in sup.log()[earlier:], 30)
    log = sup.log()[earlier:]
    assert log.count("database unreadable at start: recording 3 cameras from the camera cache") == 1, log
    assert "database unreadable" in log and "cache-pw-1234" not in log

    procs.wait_for("status.json says the cameras come from the cache", lambda: table_source(sup) == "cache", 15)
    master = master_json(sup)
    assert master["db"]["state"] == "error" and master["camera_table"]["cache"]["cameras"] == 3
    shown = subprocess.run([*CLI, "status", "--state-dir", str(sup.state_dir)], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "unreadable, recording from the cache of " in shown.stdout, shown.stdout
    procs.wait_for("systemd's STATUS= says cache", lambda: any(
        line.startswith("STATUS=recording 3/3 cameras, database unreadable, from the cache of ")
        for line in notify_socket[1]()), 15)
    procs.wait_for("the metric says cache",
                   lambda: metrics.exists() and 'mirror_supervisor_camera_table_source{source="cache"} 1.0'
                   in metrics.read_text(), 15)
    check = subprocess.run([*CLI, "check", "--db", str(nvr.path), "--mirror-dir", str(mirror_dir)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 1 and "camera cache " in check.stdout and "3 cameras, matched the database at" \
        in check.stdout and "records from the camera cache above" in check.stdout, check.stdout

    # The database is back, without cam2 and with cam3 changed: cam2 stops, cam3 restarts, cam1 is
    # left alone (same worker, same ffmpeg).
    if fault == "garbage":
        nvr.path.unlink()
    conn = sqlite3.connect(away, isolation_level=None)
    conn.execute("DELETE FROM cameras WHERE id = 'cam2'")
    conn.execute("UPDATE cameras SET segment_seconds = 3 WHERE id = 'cam3'")
    conn.close()
    move_database(away, nvr.path)
    after = procs.wait_for("cam2 gone, cam3 replaced", lambda: (now := sup.one_each({"cam1", "cam3"}))
                           and now["cam3"].pid != table["cam3"].pid and now, 30)
    assert procs.disturbed({"cam1": table["cam1"]}, after, sup.log()) == [], \
        "the database's return disturbed a camera it did not change"
    assert "-segment_time 3" in " ".join(psutil_cmdline(after["cam3"].ffmpeg_pids[0]))
    assert "database readable again; the camera cache is no longer used" in sup.log()[earlier:]
    procs.wait_for("status.json says database", lambda: table_source(sup) == "database", 15)
    procs.wait_for("the cache follows the database",
                   lambda: [row[0] for row in load(cache_path(camera_cache_dir, mirror_dir), mirror_dir).table.rows]
                   == ["cam1", "cam3"], 15)
    assert sup.stop() == 0


def psutil_cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")


def test_retention_works_from_the_cached_rows(rtsp, nvr, mirror_dir, supervisor, camera_cache_dir, tmp_path):
    """The pruner is handed the master's rows: from the cache, they are the cached rows."""
    # One long segment stands for an hour of footage (tests/integration/test_retention.py).
    nvr.add_mirrored("cam", rtsp.url("/live"), retention_hours=1, segment_seconds=HOUR)
    first_run(supervisor, mirror_dir, camera_cache_dir, {"cam"})
    expired = old_segments(mirror_dir / "cam", 3, 2 * DAY)
    move_database(nvr.path, tmp_path / "away.db")
    sup = supervisor("--poll-interval", "1", "--prune-interval", "1")
    sup.wait_one_each({"cam"})
    procs.wait_for("expired segments deleted", lambda: not any(p.exists() for p in expired), 30)
    sup.wait_log("cam pruned", timeout=30)  # in one pass or more: the live segment is kept meanwhile
    assert table_source(sup) == "cache"
    assert sup.stop() == 0


def damage(path, how: str) -> None:
    data = path.read_bytes()
    if how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "older-format":
        document = json.loads(data)
        document["format"] = 0
        path.write_text(json.dumps(document))
    elif how == "bit-flip":  # still JSON, still the same shape: only its sha256 notices
        path.write_bytes(data.replace(b'"cam1"', b'"cam7"', 1))


@pytest.mark.parametrize("how", ["garbage", "truncated", "older-format", "bit-flip"])
def test_a_damaged_cache_beside_a_readable_database_changes_nothing_but_one_log_line(
        rtsp, nvr, mirror_dir, supervisor, camera_cache_dir, tmp_path, how):
    nvr.add_mirrored("cam1", rtsp.url("/live"))
    first_run(supervisor, mirror_dir, camera_cache_dir, {"cam1"})
    cache = cache_path(camera_cache_dir, mirror_dir)
    damage(cache, how)
    earlier = len((tmp_path / "supervisor.log").read_text())

    sup = supervisor("--poll-interval", "1")
    sup.wait_one_each({"cam1"})
    procs.wait_for("status.json says database", lambda: table_source(sup) == "database", 15)
    log = sup.log()[earlier:]
    mentions = [line for line in log.splitlines() if "camera cache" in line]
    assert len(mentions) == 1 and "ignored" in mentions[0], mentions
    assert "database unreadable" not in log
    # the next good read writes a whole cache again
    procs.wait_for("the cache rewritten", lambda: _loads(cache, mirror_dir), 15)
    assert sup.stop() == 0


def _loads(cache, mirror_dir) -> bool:
    try:
        return [row[0] for row in load(cache, mirror_dir).table.rows] == ["cam1"]
    except Exception:  # noqa: BLE001 - not yet rewritten
        return False
