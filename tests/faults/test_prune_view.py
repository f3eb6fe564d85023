"""The pruner follows the master's view of the database, not a read of its own.

A real master with its real pruner child, a real SQLite file rebuilt by the NVR's own connection
the way migrations do it (CREATE new, copy, DROP old, RENAME). While the rebuilt table lacks
``retention_hours`` a pruner that reads the table itself would take the 24 h default and delete
footage the camera keeps for 30 days.
"""

from __future__ import annotations

import re

from support import procs
from support.recordings import old_segments

DAY = 86400


def rebuild_without_retention(nvr) -> None:
    """CREATE new, copy, DROP old, RENAME, each committed on its own, from the NVR's connection."""
    nvr.execute("CREATE TABLE cameras_new AS SELECT id, name, vendor, address, rtsp_port, username, password, "
                "main_stream_url, sub_stream_url, record_stream, segment_seconds, record_audio, record_enabled, "
                "mirror_enabled, enabled, updated_at FROM cameras")
    nvr.execute("DROP TABLE cameras")
    nvr.execute("ALTER TABLE cameras_new RENAME TO cameras")


def passes(log: str) -> int:
    """Prune passes that reached the mirror or refused: each says so about the orphan or itself."""
    return len(re.findall(r"mirror directory 'orphan_cam'|prune pass skipped", log))


def test_a_migration_window_deletes_nothing(rtsp, nvr, mirror_dir, supervisor):
    # One segment stands for a day of footage: the footage cutoff does not hide the retention rule.
    nvr.add_mirrored("cam", rtsp.url("/live"), retention_hours=720, segment_seconds=DAY)
    footage = old_segments(mirror_dir / "cam", 5, 2 * DAY)
    old_segments(mirror_dir / "orphan_cam", 1, 3 * DAY)  # each pass reports it: a pass counter

    sup = supervisor("--poll-interval", "1", "--prune-interval", "1")
    sup.wait_one_each({"cam"})
    procs.wait_for("a first prune pass", lambda: passes(sup.log()) >= 1, 60)
    assert all(p.exists() for p in footage)

    rebuild_without_retention(nvr)
    seen = passes(sup.log())
    procs.wait_for("two prune passes over the rebuilt table", lambda: passes(sup.log()) >= seen + 2, 60)
    assert all(p.exists() for p in footage), "footage within 720 h was deleted during the migration"
    assert "pruned" not in sup.log()
