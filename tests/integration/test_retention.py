"""Retention (docs/design.md, "Retention") end to end: the master's periodic pass, ``prune`` and ``check`` by hand.

The rules themselves are unit-tested on temp trees in tests/unit/test_prune.py; here the real
master prunes while its real ffmpeg writes, and the commands run as an operator would run them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from support import procs
from support.recordings import old_segments

DAY = 86400
HOUR = 3600  # the longest segment a row may ask for


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mirror_supervisor", *args], capture_output=True, text=True, timeout=60)


def test_master_prunes_expired_segments_while_recording(rtsp, nvr, mirror_dir, supervisor):
    # One long segment stands for an hour of footage: the live one is the evidence that the
    # retention's hour passed.
    nvr.add_mirrored("cam", rtsp.url("/live"), retention_hours=1, segment_seconds=HOUR)
    nvr.add_mirrored("keep_all", rtsp.url("/live"), retention_hours=0)
    expired = old_segments(mirror_dir / "cam", 5, 2 * DAY)
    fresh = old_segments(mirror_dir / "cam", 2, 600)
    unknown = old_segments(mirror_dir / "keep_all", 3, 2 * DAY)
    orphan = old_segments(mirror_dir / "gone_camera", 2, 3 * DAY)
    other = mirror_dir / "cam" / "notes.txt"
    other.write_text("operator notes")
    os.utime(other, (0, 0))

    sup = supervisor("--poll-interval", "600", "--prune-interval", "1")
    sup.wait_one_each({"cam", "keep_all"})
    procs.wait_for("expired segments deleted", lambda: not any(p.exists() for p in expired), 30)
    assert all(p.exists() for p in fresh + unknown + orphan) and other.exists()
    # the pass logs after it deleted: wait for its last line, not only for the files to go
    log = sup.wait_log("mirror directory 'gone_camera'", timeout=30)
    assert "cam pruned 5 files 5.0 kB oldest_kept=" in log
    assert "keep_all prune skipped, nothing deleted:" in log
    assert "mirror directory 'gone_camera'" in log
    # recording went on: the live ffmpeg's segment survives every pass
    time.sleep(3)
    assert sup.one_each({"cam", "keep_all"}) and procs.ffmpegs_writing(mirror_dir / "cam")
    assert any(p.stat().st_size > 0 for p in (mirror_dir / "cam").glob("*.mp4") if p not in fresh)


def test_prune_command_dry_run_then_real(tmp_path, nvr, mirror_dir):
    nvr.add("cam", main_stream_url="rtsp://10.0.0.5/x", retention_hours=1, mirror_enabled=1, segment_seconds=HOUR)
    nvr.add("bad_retention", main_stream_url="rtsp://10.0.0.5/x", retention_hours=-1, mirror_enabled=1)
    expired = old_segments(mirror_dir / "cam", 3, 2 * DAY)
    old_segments(mirror_dir / "cam", 1, 60)  # a fresh segment: footage recorded since the expired ones
    kept = old_segments(mirror_dir / "bad_retention", 2, 2 * DAY)
    old_segments(mirror_dir / "orphan", 1, DAY)
    args = ("--db", str(nvr.path), "--mirror-dir", str(mirror_dir))

    dry = cli("prune", "--dry-run", *args)
    assert dry.returncode == 0, dry.stderr
    assert "cam: would delete 3 files 3.0 kB" in dry.stdout and all(p.exists() for p in expired)
    assert "bad_retention: nothing deleted:" in dry.stdout
    assert "orphan:" in dry.stdout

    real = cli("prune", *args)
    assert real.returncode == 0, real.stderr
    assert "cam: deleted 3 files 3.0 kB" in real.stdout
    assert not any(p.exists() for p in expired) and all(p.exists() for p in kept)

    check = cli("check", *args)
    assert "orphaned mirror directory 'orphan': not in the database, never pruned: 1 files, 1.0 kB" in check.stdout
    assert "retention 'bad_retention': never pruned:" in check.stdout


def test_prune_skips_when_the_database_cannot_be_read(tmp_path, mirror_dir):
    files = old_segments(mirror_dir / "cam", 2, 3 * DAY)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"definitely not sqlite" * 50)
    result = cli("prune", "--db", str(garbage), "--mirror-dir", str(mirror_dir))
    assert result.returncode == 1 and "prune pass skipped, nothing deleted" in result.stdout
    assert all(p.exists() for p in files)


def test_prune_command_refuses_a_table_without_retention_hours(nvr, mirror_dir):
    """An NVR migration rebuilds the table; in its window the column is gone. Before, every camera
    then defaulted to 24 h."""
    nvr.add("cam", main_stream_url="rtsp://10.0.0.5/x", retention_hours=720, mirror_enabled=1, segment_seconds=DAY)
    files = old_segments(mirror_dir / "cam", 3, 2 * DAY) + old_segments(mirror_dir / "cam", 1, 60)
    rebuild_without_retention(nvr)
    result = cli("prune", "--db", str(nvr.path), "--mirror-dir", str(mirror_dir))
    assert result.returncode == 1
    assert "prune pass skipped, nothing deleted: table 'cameras' has no column retention_hours" in result.stdout
    assert all(p.exists() for p in files)


def rebuild_without_retention(nvr) -> None:
    """CREATE new, copy, DROP old, RENAME: the migration pattern, from the NVR's own connection."""
    nvr.execute("CREATE TABLE cameras_new AS SELECT id, name, vendor, address, rtsp_port, username, password, "
                "main_stream_url, sub_stream_url, record_stream, segment_seconds, record_audio, record_enabled, "
                "mirror_enabled, enabled, updated_at FROM cameras")
    nvr.execute("DROP TABLE cameras")
    nvr.execute("ALTER TABLE cameras_new RENAME TO cameras")
