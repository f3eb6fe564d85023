"""Mirror retention: which files a pass deletes, and everything it must never touch.

Real files in a temp mirror with mtimes set by ``os.utime``, a real SQLite file, and real processes
for the "ffmpeg is writing this" rule: the safety of a deletion is only as good as its test.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mirror_supervisor.cameras.camera import Camera
from mirror_supervisor.plumbing import daemon, logs
from mirror_supervisor.retention import prune
from mirror_supervisor.retention.prune import child_main, prune_pass, run_pass, run_pass_for
from mirror_supervisor.retention.prune_report import PassReport, format_bytes, log_report
from mirror_supervisor.retention.recorders import recording_now
from mirror_supervisor.retention.rules import parse_retention

NOW = 1_800_000_000.0
HOUR = 3600.0


# One segment here stands for more footage than any retention in these tests, so the footage
# cutoff only ever keeps the mirror's newest file; TestClockRules sets real segment lengths.
LONG_SEGMENT = 10**9


def cam(camera_id: str, retention=24, mirrored=True, segment_seconds=LONG_SEGMENT) -> Camera:
    return Camera(camera_id, mirrored=mirrored, retention_hours=retention, segment_seconds=segment_seconds)


def segment(directory: Path, name: str, age_hours: float, size: int = 10) -> Path:
    """A file ``age_hours`` old by mtime (the only thing retention looks at, not the name)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(b"x" * size)
    mtime = NOW - age_hours * HOUR
    os.utime(path, (mtime, mtime))
    return path


def recording(mirror: Path) -> Camera:
    """A camera with a segment written just now: the footage that shows time really passed."""
    segment(mirror / "rec", "20270115_075900.mp4", age_hours=0)
    return cam("rec", 24)


def names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


@pytest.fixture
def mirror(tmp_path) -> Path:
    path = tmp_path / "mirror"
    path.mkdir()
    return path


class TestParseRetention:
    @pytest.mark.parametrize(
        "value, hours",
        [(24, 24.0), (1, 1.0), (1.5, 1.5), ("24", 24.0), (" 48 ", 48.0), ("0.5", 0.5), ("1e1", 10.0), ("+3", 3.0)],
    )
    def test_usable(self, value, hours):
        assert parse_retention(value) == (hours, None)

    @pytest.mark.parametrize(
        "value",
        [
            None, 0, 0.0, "0", -1, -0.5, "-3", "", "  ", "abc", "24h", "1_000", "\u0662\u0664", "0x10",
            True, False, math.nan, math.inf, -math.inf, "nan", "inf", "Infinity", b"24", [24],
        ],
    )
    def test_unusable_says_why(self, value):
        hours, reason = parse_retention(value)
        assert hours is None
        assert reason and "retention_hours" in reason


class TestPrunePass:
    def test_deletes_exactly_the_expired_segments(self, mirror):
        d = mirror / "cam"
        segment(d, "20261123_080000.mp4", age_hours=30, size=100)
        segment(d, "20261123_090000.mp4", age_hours=24.001, size=20)
        boundary = segment(d, "20261123_100000.mp4", age_hours=24)  # exactly at the cutoff: kept
        segment(d, "20261123_110000.mp4", age_hours=23.99)
        segment(d, "20261124_090000.mp4", age_hours=0)
        # Retention follows the mtime, not the name: an old name with a fresh mtime stays.
        segment(d, "20200101_000000.mp4", age_hours=1)
        assert os.stat(boundary).st_mtime == NOW - 24 * HOUR

        report = prune_pass(mirror, [cam("cam", 24)], set(), NOW)

        assert names(d) == {"20261123_100000.mp4", "20261123_110000.mp4", "20261124_090000.mp4", "20200101_000000.mp4"}
        (result,) = report.cameras
        assert (result.deleted_files, result.deleted_bytes, result.kept_files) == (2, 120, 4)
        assert result.oldest_kept == "20200101_000000.mp4"
        assert result.skipped is None and result.errors == []
        assert report.error is None and report.orphans == []

    def test_fractional_retention_and_each_camera_its_own(self, mirror):
        segment(mirror / "a", "20261123_080000.mp4", age_hours=1)
        segment(mirror / "b", "20261123_080000.mp4", age_hours=1)
        segment(mirror / "b", "20270115_075900.mp4", age_hours=0)
        report = prune_pass(mirror, [cam("a", 0.5), cam("b", "2")], set(), NOW)
        assert names(mirror / "a") == set()
        assert names(mirror / "b") == {"20261123_080000.mp4", "20270115_075900.mp4"}
        assert [c.deleted_files for c in report.cameras] == [1, 0]
        assert report.cameras[0].oldest_kept is None

    def test_unmirrored_camera_in_the_database_is_pruned_too(self, mirror):
        segment(mirror / "off", "20261123_080000.mp4", age_hours=5)
        prune_pass(mirror, [cam("off", 1, mirrored=False), recording(mirror)], set(), NOW)
        assert names(mirror / "off") == set()

    def test_keeps_newest_of_a_running_camera_even_when_expired(self, mirror):
        d = mirror / "cam"
        for minute in range(3):
            segment(d, f"20261123_0{minute}0000.mp4", age_hours=10 - minute)
        report = prune_pass(mirror, [cam("cam", 1)], {"cam"}, NOW)
        assert names(d) == {"20261123_020000.mp4"}
        assert report.cameras[0].deleted_files == 2
        assert report.cameras[0].oldest_kept == "20261123_020000.mp4"

        prune_pass(mirror, [cam("cam", 1), recording(mirror)], set(), NOW)  # not running: nothing is being written
        assert names(d) == set()

    def test_running_camera_keeps_newest_by_mtime_too_after_a_clock_step(self, mirror):
        d = mirror / "cam"
        segment(d, "20261123_120000.mp4", age_hours=9)  # newest name, written before the step
        segment(d, "20261123_110000.mp4", age_hours=8)  # being written now under the stepped clock
        segment(d, "20261123_100000.mp4", age_hours=10)
        prune_pass(mirror, [cam("cam", 1)], {"cam"}, NOW)
        assert names(d) == {"20261123_120000.mp4", "20261123_110000.mp4"}

    def test_leaves_symlinks_other_names_and_subdirectories_alone(self, mirror, tmp_path):
        d = mirror / "cam"
        outside = segment(tmp_path / "outside", "20261123_080000.mp4", age_hours=100)
        expired = segment(d, "20261123_070000.mp4", age_hours=100)
        link_out = d / "20261123_080000.mp4"
        link_out.symlink_to(outside)
        link_in = d / "20261123_090000.mp4"
        link_in.symlink_to(expired.name)
        (d / "20261123_100000.mp4").symlink_to(tmp_path / "dangling")
        others = [
            "x.mp4", "20261123_080000.mp4.tmp", "20261123_080000.MP4", "20261123-080000.mp4",
            "20261123_08000.mp4", ".20261123_080000.mp4", "\u0662\u0660\u0662\u0666\u0661\u0661\u0662\u0663_080000.mp4",
            "notes.txt",
        ]
        for name in others:
            segment(d, name, age_hours=100)
        subdir = d / "20261123_110000.mp4"  # a directory named like a segment
        segment(subdir, "20261123_060000.mp4", age_hours=100)
        segment(d / "old", "20261123_060000.mp4", age_hours=100)
        os.mkfifo(d / "20261123_120000.mp4")
        for link in (link_out, link_in, d / "20261123_100000.mp4"):
            os.utime(link, (NOW - 100 * HOUR,) * 2, follow_symlinks=False)
        before = names(d)

        report = prune_pass(mirror, [cam("cam", 1), recording(mirror)], set(), NOW)

        assert names(d) == before - {"20261123_070000.mp4"}
        assert outside.exists() and os.path.islink(link_out) and os.path.lexists(link_in)
        assert names(subdir) == {"20261123_060000.mp4"}
        assert names(d / "old") == {"20261123_060000.mp4"}
        assert report.cameras[0].deleted_files == 1 and report.cameras[0].errors == []

    def test_a_symlinked_camera_directory_is_not_followed(self, mirror, tmp_path):
        elsewhere = tmp_path / "elsewhere"
        segment(elsewhere, "20261123_080000.mp4", age_hours=100)
        (mirror / "cam").symlink_to(elsewhere, target_is_directory=True)
        report = prune_pass(mirror, [cam("cam", 1)], set(), NOW)
        assert names(elsewhere) == {"20261123_080000.mp4"}
        assert "symlink" in report.cameras[0].skipped
        assert report.orphans == []

    def test_a_camera_path_that_is_a_file_is_left_alone(self, mirror):
        (mirror / "cam").write_bytes(b"x")
        report = prune_pass(mirror, [cam("cam", 1)], set(), NOW)
        assert (mirror / "cam").read_bytes() == b"x"
        assert "not a directory" in report.cameras[0].skipped

    def test_orphan_directories_are_left_alone_and_reported_with_their_size(self, mirror, tmp_path):
        segment(mirror / "gone_cam", "20261123_080000.mp4", age_hours=1000, size=300)
        segment(mirror / "gone_cam", "other.bin", age_hours=1000, size=45)
        segment(mirror / "gone_cam" / "deeper", "20261123_080000.mp4", age_hours=1000, size=7)
        big = segment(tmp_path, "big", age_hours=0, size=5000)
        (mirror / "gone_cam" / "link").symlink_to(big)
        (mirror / "empty_cam").mkdir()
        (mirror / "lost+found").mkdir()  # a volume root: no camera could have this name
        (mirror / "stray_file").write_bytes(b"x")
        (mirror / "dirlink").symlink_to(tmp_path, target_is_directory=True)
        segment(mirror / "cam", "20261123_080000.mp4", age_hours=1000)

        report = prune_pass(mirror, [cam("cam", 1), recording(mirror)], set(), NOW)

        assert names(mirror / "gone_cam") == {"20261123_080000.mp4", "other.bin", "deeper", "link"}
        assert [(o.name, o.files, o.bytes) for o in report.orphans] == [("empty_cam", 0, 0), ("gone_cam", 2, 345)]
        assert any(line.startswith("gone_cam: orphaned") and "345 B" in line for line in report.format_lines())
        assert names(mirror / "cam") == set()

    def test_no_cameras_in_the_database_deletes_nothing(self, mirror):
        segment(mirror / "cam", "20261123_080000.mp4", age_hours=1000)
        report = prune_pass(mirror, [], set(), NOW)
        assert names(mirror / "cam") == {"20261123_080000.mp4"}
        assert [o.name for o in report.orphans] == ["cam"]

    @pytest.mark.parametrize("retention", [None, 0, -5, "abc", "", math.nan, math.inf, True])
    def test_bad_retention_deletes_nothing_and_says_why(self, mirror, retention):
        segment(mirror / "cam", "20261123_080000.mp4", age_hours=10_000)
        report = prune_pass(mirror, [cam("cam", retention)], set(), NOW)
        assert names(mirror / "cam") == {"20261123_080000.mp4"}
        (result,) = report.cameras
        assert result.deleted_files == 0 and "retention_hours" in result.skipped
        assert any("nothing deleted" in line and "retention_hours" in line for line in report.format_lines())

    def test_dry_run_deletes_nothing_and_reports_the_same(self, mirror):
        d = mirror / "cam"
        segment(d, "20261123_080000.mp4", age_hours=5, size=11)
        segment(d, "20261123_090000.mp4", age_hours=4, size=22)
        segment(d, "20261123_100000.mp4", age_hours=0.5)
        before = names(d)
        dry = prune_pass(mirror, [cam("cam", 1)], set(), NOW, dry_run=True)
        assert names(d) == before
        assert dry.dry_run and any("would delete 2 files 33 B" in line for line in dry.format_lines())
        real = prune_pass(mirror, [cam("cam", 1)], set(), NOW)
        assert dry.cameras == real.cameras
        assert names(d) == {"20261123_100000.mp4"}

    @pytest.mark.parametrize("camera_id", ["..", ".", "", "a/b", "../cam", "/tmp", ".hidden"])
    def test_unsafe_ids_are_skipped(self, tmp_path, mirror, camera_id):
        segment(tmp_path, "20261123_080000.mp4", age_hours=1000)
        segment(mirror / "a" / "b", "20261123_080000.mp4", age_hours=1000)
        segment(mirror / "cam", "20261123_080000.mp4", age_hours=1000)
        report = prune_pass(mirror, [cam(camera_id, 1)], set(), NOW)
        assert (tmp_path / "20261123_080000.mp4").exists()
        assert (mirror / "a" / "b" / "20261123_080000.mp4").exists()
        assert (mirror / "cam" / "20261123_080000.mp4").exists()
        assert "unsafe id" in report.cameras[0].skipped
        assert report.format_lines()[0] == f"{camera_id!r}: nothing deleted: unsafe id: not a single plain directory name"

    def test_missing_camera_directory_is_not_an_error(self, mirror):
        report = prune_pass(mirror, [cam("new_cam", 24)], set(), NOW)
        (result,) = report.cameras
        assert not result.has_dir and result.skipped is None and result.errors == []
        assert report.format_lines()[0] == "new_cam: no mirror directory"

    @pytest.mark.parametrize("kind", ["missing", "file"])
    def test_unusable_mirror_directory_is_an_error_not_a_crash(self, tmp_path, kind):
        path = tmp_path / "mirror"
        if kind == "file":
            path.write_bytes(b"x")
        report = prune_pass(path, [cam("cam", 1)], set(), NOW)
        assert report.error and report.cameras == [] and report.deleted_files == 0
        assert report.format_lines()[0].startswith("prune pass skipped, nothing deleted")

    def test_a_file_that_vanished_before_unlink_is_fine(self, mirror, monkeypatch):
        d = mirror / "cam"
        segment(d, "20261123_080000.mp4", age_hours=5)
        segment(d, "20261123_090000.mp4", age_hours=5)
        real_unlink = os.unlink

        def racing_unlink(name, *, dir_fd=None):
            real_unlink(name, dir_fd=dir_fd)  # someone else deletes it first
            if name == "20261123_080000.mp4":
                raise FileNotFoundError(2, "No such file or directory")

        monkeypatch.setattr(os, "unlink", racing_unlink)
        report = prune_pass(mirror, [cam("cam", 1), recording(mirror)], set(), NOW)
        result = report.cameras[0]
        assert (result.deleted_files, result.kept_files, result.errors) == (1, 0, [])

    def test_unlink_failures_are_reported_and_the_file_counts_as_kept(self, mirror, monkeypatch):
        d = mirror / "cam"
        for hour in range(10):
            segment(d, f"20261123_0{hour}0000.mp4", age_hours=50)

        def refusing_unlink(name, *, dir_fd=None):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(os, "unlink", refusing_unlink)
        report = prune_pass(mirror, [cam("cam", 1), recording(mirror)], set(), NOW)
        result = report.cameras[0]
        assert (result.deleted_files, result.kept_files, result.failed_files) == (0, 10, 10)
        assert len(result.errors) == 5 and "Permission denied" in result.errors[0]
        assert result.oldest_kept == "20261123_000000.mp4"
        assert "10 errors" in report.format_lines()[0]


class TestLogReport:
    @pytest.fixture
    def lines(self):
        records: list[logging.LogRecord] = []

        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record)

        logger = logging.getLogger(logs.LOGGER_NAME)
        handler, level = Keep(), logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        yield lambda: [(r.camera, r.levelname, r.getMessage()) for r in records]
        logger.removeHandler(handler)
        logger.setLevel(level)

    def test_one_line_per_camera_that_lost_files_and_per_problem(self, mirror, lines):
        segment(mirror / "a", "20261123_080000.mp4", age_hours=5, size=1_500_000)
        segment(mirror / "a", "20261123_090000.mp4", age_hours=5, size=2_000_000)
        segment(mirror / "a", "20261123_100000.mp4", age_hours=0)
        segment(mirror / "b", "20261123_100000.mp4", age_hours=0)  # lost nothing: no line
        segment(mirror / "c", "20261123_100000.mp4", age_hours=50)  # NULL retention
        segment(mirror / "gone", "20261123_100000.mp4", age_hours=50)
        report = prune_pass(mirror, [cam("a", 1), cam("b", 1), cam("c", None), cam("no_dir", None)], set(), NOW)
        log_report(report, logs.master())
        assert lines() == [
            ("a", "INFO", "pruned 2 files 3.5 MB oldest_kept=20261123_100000.mp4"),
            ("c", "WARNING", "prune skipped, nothing deleted: retention_hours is NULL"),
            ("-", "WARNING", "mirror directory 'gone': orphaned (camera not in the database), left alone: 1 files 10 B"),
        ]

    def test_a_skipped_pass_is_one_line(self, tmp_path, lines):
        log_report(run_pass(tmp_path / "missing.db", tmp_path, now=NOW))
        ((camera, level, message),) = lines()
        assert camera == "-" and level == "WARNING" and message.startswith("prune pass skipped, nothing deleted")

    def test_a_quiet_pass_logs_nothing(self, mirror, lines):
        segment(mirror / "a", "20261123_100000.mp4", age_hours=0)
        log_report(prune_pass(mirror, [cam("a", 1)], set(), NOW))
        assert lines() == []


def test_format_bytes():
    assert [format_bytes(n) for n in (0, 999, 1000, 34_500_000, 2 * 10**12, 5 * 10**15)] == [
        "0 B", "999 B", "1.0 kB", "34.5 MB", "2.0 TB", "5000.0 TB",
    ]


class TestRunPass:
    @staticmethod
    def database(path: Path, rows: list[tuple]) -> Path:
        """The oldest schema that still matters: the columns the table may lack take defaults.

        segment_seconds is there only to make one test segment stand for a long time (see cam()).
        """
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("CREATE TABLE cameras (id TEXT PRIMARY KEY, mirror_enabled INTEGER, retention_hours INTEGER, "
                         f"segment_seconds INTEGER DEFAULT {LONG_SEGMENT})")
            conn.executemany("INSERT INTO cameras (id, mirror_enabled, retention_hours) VALUES (?, ?, ?)", rows)
        conn.close()
        return path

    def test_prunes_by_the_database(self, tmp_path, mirror):
        db = self.database(tmp_path / "heldar.db", [("fast", 1, 1), ("slow", 1, 48), ("null", 1, None), ("text", 1, "abc")])
        for camera_id in ("fast", "slow", "null", "text", "orphan"):
            segment(mirror / camera_id, "20261123_080000.mp4", age_hours=30)
            segment(mirror / camera_id, "20261123_090000.mp4", age_hours=0.5)
        report = run_pass(db, mirror, now=NOW)
        assert names(mirror / "fast") == {"20261123_090000.mp4"}
        for camera_id in ("slow", "null", "text", "orphan"):
            assert len(names(mirror / camera_id)) == 2, camera_id
        assert {c.camera_id: c.skipped for c in report.cameras} == {
            "fast": None, "slow": None, "null": "retention_hours is NULL", "text": "retention_hours 'abc' is not a number",
        }
        assert [o.name for o in report.orphans] == ["orphan"]

    def test_dry_run(self, tmp_path, mirror):
        db = self.database(tmp_path / "heldar.db", [("fast", 1, 1)])
        segment(mirror / "fast", "20261123_080000.mp4", age_hours=30)
        segment(mirror / "fast", "20270115_075900.mp4", age_hours=0)
        report = run_pass(db, mirror, now=NOW, dry_run=True)
        assert report.deleted_files == 1 and len(names(mirror / "fast")) == 2

    def test_retention_of_an_unmirrored_camera_comes_from_the_database(self, tmp_path, mirror):
        db = self.database(tmp_path / "heldar.db", [("long", 0, 720), ("null", 0, None)])
        segment(mirror / "long", "20261123_080000.mp4", age_hours=30)
        segment(mirror / "null", "20261123_080000.mp4", age_hours=30)
        run_pass(db, mirror, now=NOW)
        assert names(mirror / "long") == {"20261123_080000.mp4"}
        assert names(mirror / "null") == {"20261123_080000.mp4"}

    @pytest.mark.parametrize("kind", ["missing", "garbage", "empty_file", "no_table", "directory"])
    def test_unreadable_database_skips_the_pass(self, tmp_path, mirror, kind):
        db = tmp_path / "heldar.db"
        if kind == "garbage":
            db.write_bytes(os.urandom(4096))
        elif kind == "empty_file":
            db.write_bytes(b"")
        elif kind == "no_table":
            sqlite3.connect(db).execute("CREATE TABLE other (id TEXT)").connection.close()
        elif kind == "directory":
            db.mkdir()
        segment(mirror / "cam", "20261123_080000.mp4", age_hours=10_000)
        report = run_pass(db, mirror, now=NOW)
        assert report.error and report.cameras == [] and report.orphans == []
        assert names(mirror / "cam") == {"20261123_080000.mp4"}
        assert report.format_lines()[0].startswith("prune pass skipped, nothing deleted")


def running_cameras(mirror: Path) -> set[str]:
    """The cameras the pruner treats as recording (what ``prune.running_cameras`` was)."""
    return set(recording_now(mirror))


class TestRunningCameras:
    """Real processes whose argv[0] is named ffmpeg, as ``ps`` and psutil see them."""

    @pytest.fixture
    def spawn(self, tmp_path):
        started: list[subprocess.Popen] = []

        def start(argv0: str, *args: str, cwd: Path | None = None,
                  script: str = "import time; time.sleep(60)") -> subprocess.Popen:
            # A Python that sleeps, started under the name argv0: /proc/<pid>/cmdline is exactly
            # [argv0, "-c", ..., *args], as it would be for an ffmpeg. (``sleep`` cannot stand in:
            # it refuses the extra output argument.)
            proc = subprocess.Popen(
                [argv0, "-c", script, *args],
                executable=sys.executable, cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            started.append(proc)
            return proc

        yield start
        for proc in started:
            proc.kill()
            proc.wait(timeout=10)

    def test_finds_ffmpeg_writing_into_a_camera_directory(self, tmp_path, mirror, spawn):
        (mirror / "cam").mkdir()
        (mirror / "rel_cam").mkdir()
        spawn(str(tmp_path / "bin" / "ffmpeg"), "-f", "segment", str(mirror / "cam" / "%Y%m%d_%H%M%S.mp4"))
        spawn("ffmpeg", "-y", "mirror/rel_cam/%Y%m%d_%H%M%S.mp4", cwd=tmp_path)  # relative to its cwd
        spawn("/usr/local/bin/ffmpeg-7", str(mirror / "versioned" / "%Y%m%d_%H%M%S.mp4"))
        # The binary is configurable: any name writing our output pattern counts too.
        spawn("/opt/recorder/ff", "-f", "segment", str(mirror / "custom" / "%Y%m%d_%H%M%S.mp4"))
        # Not counted: an ffmpeg writing elsewhere or deeper, and a non-ffmpeg process that merely
        # names a file in the mirror (a player, a copy).
        spawn("ffmpeg", str(tmp_path / "other" / "x" / "%Y%m%d_%H%M%S.mp4"))
        spawn("ffmpeg", str(mirror / "cam2" / "deeper" / "%Y%m%d_%H%M%S.mp4"))
        spawn("mpv", str(mirror / "viewed" / "20261123_080000.mp4"))
        assert running_cameras(mirror) == {"cam", "rel_cam", "versioned", "custom"}

    def test_mirror_dir_given_through_a_symlink(self, tmp_path, mirror, spawn):
        """Another spelling of the mirror is seen in the file ffmpeg has open (the kernel's path in
        /proc/<pid>/fd), never by resolving its arguments: that stat could hang on a dead share."""
        alias = tmp_path / "alias"
        alias.symlink_to(mirror, target_is_directory=True)
        (mirror / "cam").mkdir()
        opener = "import sys, time; f = open(sys.argv[1], 'ab'); time.sleep(60)"
        spawn("ffmpeg", str(alias / "cam" / "20261123_080000.mp4"), str(alias / "cam" / "%Y%m%d_%H%M%S.mp4"),
              script=opener)
        deadline = time.monotonic() + 10
        while running_cameras(mirror) != {"cam"} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running_cameras(mirror) == {"cam"}
        assert running_cameras(alias) == {"cam"}
        assert recording_now(mirror) == {"cam": {"20261123_080000.mp4"}}

    def test_ended_process_is_not_running(self, mirror, spawn):
        proc = spawn("ffmpeg", str(mirror / "cam" / "%Y%m%d_%H%M%S.mp4"))
        assert running_cameras(mirror) == {"cam"}
        proc.kill()
        proc.wait(timeout=10)
        assert running_cameras(mirror) == set()

    def test_run_pass_keeps_the_segment_a_live_ffmpeg_writes(self, tmp_path, mirror, spawn):
        db = TestRunPass.database(tmp_path / "heldar.db", [("cam", 1, 1), ("idle", 1, 1), ("rec", 1, 24)])
        recording(mirror)
        for camera_id in ("cam", "idle"):
            segment(mirror / camera_id, "20261123_080000.mp4", age_hours=30)
            segment(mirror / camera_id, "20261123_090000.mp4", age_hours=20)
        spawn("ffmpeg", str(mirror / "cam" / "%Y%m%d_%H%M%S.mp4"))
        report = run_pass(db, mirror, now=NOW)
        assert report.running == {"cam"}
        assert names(mirror / "cam") == {"20261123_090000.mp4"}
        assert names(mirror / "idle") == set()
        assert isinstance(report, PassReport)

    def test_run_pass_keeps_the_file_a_live_ffmpeg_has_open_whatever_its_name(self, tmp_path, mirror, spawn):
        """Neither the newest by name nor by mtime: found in ``/proc/<pid>/fd``, as the worker does."""
        db = TestRunPass.database(tmp_path / "heldar.db", [("cam", 1, 1), ("rec", 1, 24)])
        recording(mirror)
        segment(mirror / "cam", "20261123_070000.mp4", age_hours=31)
        held = segment(mirror / "cam", "20261123_080000.mp4", age_hours=30)
        segment(mirror / "cam", "20261123_090000.mp4", age_hours=20)
        opener = "import sys, time; f = open(sys.argv[1], 'ab'); time.sleep(60)"
        spawn("ffmpeg", str(held), str(mirror / "cam" / "%Y%m%d_%H%M%S.mp4"), script=opener)
        deadline = time.monotonic() + 10
        while recording_now(mirror) != {"cam": {held.name}} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert recording_now(mirror) == {"cam": {held.name}}
        report = run_pass(db, mirror, now=NOW)
        assert report.running == {"cam"}
        assert names(mirror / "cam") == {"20261123_080000.mp4", "20261123_090000.mp4"}


def utc(*fields: int) -> float:
    return datetime.datetime(*fields, tzinfo=datetime.UTC).timestamp()


def recorded(directory: Path, end: float, count: int, seconds: int = 60) -> list[Path]:
    """``count`` back-to-back segments ending at ``end``, named and stamped as ffmpeg would."""
    directory.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(count):
        mtime = end - i * seconds
        start = mtime - seconds
        path = directory / datetime.datetime.fromtimestamp(start, datetime.UTC).strftime("%Y%m%d_%H%M%S.mp4")
        path.write_bytes(b"x")
        os.utime(path, (mtime, mtime))
        made.append(path)
    return made


def write_table(path: Path, create: str, rows: list[tuple]) -> Path:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(create)
        marks = ", ".join("?" for _ in rows[0])
        conn.executemany(f"INSERT INTO cameras VALUES ({marks})", rows)
    conn.close()
    return path


class TestMasterView:
    """The master's pass prunes by the list the master last read well, never by its own read."""

    def test_no_good_read_yet_skips_the_pass(self, mirror):
        segment(mirror / "cam", "20261123_080000.mp4", age_hours=10_000)
        report = run_pass_for(None, mirror, now=NOW)
        assert report.error and "no good read" in report.error and report.cameras == []
        assert names(mirror / "cam") == {"20261123_080000.mp4"}
        assert report.format_lines() == [f"prune pass skipped, nothing deleted: {report.error}"]

    def test_prunes_by_the_list_it_is_given_without_a_database(self, mirror):
        long_kept = segment(mirror / "long", "20270113_080000.mp4", age_hours=48)
        short_gone = segment(mirror / "short", "20270113_080000.mp4", age_hours=48)
        report = run_pass_for([cam("long", 720), cam("short", 24), recording(mirror)], mirror, now=NOW)
        assert long_kept.exists() and not short_gone.exists()
        assert report.error is None and report.deleted_files == 1

    def test_a_list_read_without_the_retention_column_prunes_nothing(self, mirror):
        """A master whose first read fell into a migration has that read as its 'last good' one."""
        kept = segment(mirror / "cam", "20270113_080000.mp4", age_hours=48)
        columns = frozenset({"id", "mirror_enabled", "segment_seconds"})
        report = run_pass_for([cam("cam", 24), recording(mirror)], mirror, now=NOW, columns=columns)
        assert kept.exists() and "without column retention_hours" in report.error

    def test_child_main_runs_one_pass_in_its_own_process(self, mirror):
        """Forked like the master forks it; mtimes relative to the real clock, which it uses."""
        now = time.time()
        expired = recorded(mirror / "cam", now - 48 * HOUR, 1)[0]
        kept = recorded(mirror / "long", now - 48 * HOUR, 1)[0]
        recorded(mirror / "rec", now, 1)
        cameras = [cam("cam", 24), cam("long", 720), cam("rec", 24)]
        read_end, write_end = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: exactly what the master's fork will run
            code = 1
            try:
                code = child_main(cameras, mirror, (read_end, write_end), parent)
            finally:
                os._exit(code)
        os.close(read_end)
        os.close(write_end)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not expired.exists() and kept.exists()

    def test_child_main_with_no_list_deletes_nothing(self, mirror):
        old = segment(mirror / "cam", "20200102_000000.mp4", age_hours=(NOW - utc(2020, 1, 3)) / HOUR)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = child_main(None, mirror, (), os.getppid())
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0 and old.exists()


class TestHandRunColumns:
    """``mirror-supervisor prune`` reads the database itself, so it applies the master's rule."""

    FULL = ("CREATE TABLE cameras (id TEXT PRIMARY KEY, mirror_enabled INTEGER, retention_hours INTEGER, "
            f"segment_seconds INTEGER DEFAULT {LONG_SEGMENT}, vendor TEXT)")
    NO_RETENTION = "CREATE TABLE cameras (id TEXT PRIMARY KEY, mirror_enabled INTEGER, segment_seconds INTEGER)"

    def test_table_without_retention_column_is_refused(self, tmp_path, mirror):
        """The NVR migration's window: before, this defaulted every camera to 24 h."""
        db = write_table(tmp_path / "heldar.db", self.NO_RETENTION, [("cam", 1, LONG_SEGMENT), ("rec", 1, LONG_SEGMENT)])
        old = segment(mirror / "cam", "20270113_080000.mp4", age_hours=48)
        recording(mirror)
        report = run_pass(db, mirror, now=NOW)
        assert old.exists() and report.cameras == []
        assert "no column retention_hours" in report.error

    def test_other_missing_columns_proceed_and_are_named(self, tmp_path, mirror):
        db = write_table(tmp_path / "heldar.db",
                         "CREATE TABLE cameras (id TEXT PRIMARY KEY, retention_hours INTEGER, segment_seconds INTEGER, "
                         "mirror_enabled INTEGER)",
                         # Read through the row parser, which caps segment_seconds at an hour: a
                         # 1 h retention is what one fresh segment of the recording camera proves.
                         [("cam", 1, LONG_SEGMENT, 1), ("rec", 1, LONG_SEGMENT, 1)])
        old = segment(mirror / "cam", "20270113_080000.mp4", age_hours=48)
        recording(mirror)
        report = run_pass(db, mirror, now=NOW, state_dir=tmp_path / "state")
        assert not old.exists() and report.error is None
        assert report.notes and "vendor" in report.notes[0] and "retention_hours" not in report.notes[0]
        assert report.format_lines()[0].startswith("note: table 'cameras' has no column(s) ")

    @pytest.fixture
    def master_status(self, tmp_path, monkeypatch):
        """A running master (this process stands in) whose last good read had ``columns``."""
        state = tmp_path / "state"
        state.mkdir()

        def publish(columns: list[str], pid: int | None = None) -> Path:
            monkeypatch.setattr(daemon, "running_master", lambda state_dir: os.getpid())
            (state / "status.json").write_text(json.dumps({"master": {"pid": pid or os.getpid(), "columns": columns}}))
            return state

        return publish

    def test_refused_when_the_running_master_read_a_column_the_table_lacks(self, tmp_path, mirror, master_status):
        db = write_table(tmp_path / "heldar.db",
                         "CREATE TABLE cameras (id TEXT PRIMARY KEY, retention_hours INTEGER, segment_seconds INTEGER, "
                         "mirror_enabled INTEGER)",
                         [("cam", 24, LONG_SEGMENT, 1), ("rec", 24, LONG_SEGMENT, 1)])
        old = segment(mirror / "cam", "20270113_080000.mp4", age_hours=48)
        recording(mirror)
        state = master_status(["id", "mirror_enabled", "retention_hours", "segment_seconds", "vendor"])
        report = run_pass(db, mirror, now=NOW, state_dir=state)
        assert old.exists()
        assert report.error.startswith("table 'cameras' lacks column(s) vendor that the running master (pid ")

    @pytest.mark.parametrize("columns, pid", [(["id", "mirror_enabled", "retention_hours"], None),
                                              (["id", "vendor"], 1)])  # status of another master: ignored
    def test_proceeds_when_the_master_saw_no_more_columns(self, tmp_path, mirror, master_status, columns, pid):
        db = write_table(tmp_path / "heldar.db",
                         "CREATE TABLE cameras (id TEXT PRIMARY KEY, retention_hours INTEGER, segment_seconds INTEGER, "
                         "mirror_enabled INTEGER)",
                         # 1 h: what one fresh segment proves, at the parser's cap of an hour a segment
                         [("cam", 1, LONG_SEGMENT, 1), ("rec", 1, LONG_SEGMENT, 1)])
        old = segment(mirror / "cam", "20270113_080000.mp4", age_hours=48)
        recording(mirror)
        report = run_pass(db, mirror, now=NOW, state_dir=master_status(columns, pid))
        assert report.error is None and not old.exists()


class TestAmbiguousIds:
    def test_a_repeated_id_keeps_everything(self, mirror):
        """A table rebuilt without its primary key can hold one id twice, with two retentions."""
        old = segment(mirror / "cam", "20270113_080000.mp4", age_hours=48)
        report = prune_pass(mirror, [cam("cam", 720), cam("cam", 1), recording(mirror)], set(), NOW)
        assert old.exists() and "2 times" in report.cameras[0].skipped
        assert [c.camera_id for c in report.cameras] == ["cam", "rec"]

    def test_ids_that_differ_only_in_case_keep_everything(self, mirror):
        a = segment(mirror / "Cam", "20270113_080000.mp4", age_hours=48)
        b = segment(mirror / "cam", "20270113_080000.mp4", age_hours=48)
        report = prune_pass(mirror, [cam("Cam", 720), cam("cam", 1), recording(mirror)], set(), NOW)
        assert a.exists() and b.exists()
        assert all("letter case" in c.skipped for c in report.cameras[:2])

    def test_a_directory_found_only_under_another_case_is_left_alone(self, mirror, monkeypatch):
        """On a case-insensitive volume 'cam' opens the directory 'CAM': not this camera's own."""
        old = segment(mirror / "cam", "20270113_080000.mp4", age_hours=48)
        rec = recording(mirror)
        real_listdir = os.listdir
        monkeypatch.setattr(os, "listdir", lambda fd: [n.upper() if n == "cam" else n for n in real_listdir(fd)])
        report = prune_pass(mirror, [cam("cam", 1), rec], set(), NOW)
        assert old.exists() and "another letter case" in report.cameras[0].skipped

    def test_a_directory_replaced_between_listing_and_deleting_is_left_alone(self, mirror, monkeypatch):
        segment(mirror / "cam", "20270113_080000.mp4", age_hours=48)
        rec = recording(mirror)
        real_check = prune.clock_went_back

        def swap_then_check(scans, now):
            (mirror / "cam").rename(mirror / "cam.old")
            segment(mirror / "cam", "20270113_090000.mp4", age_hours=47)
            return real_check(scans, now)

        monkeypatch.setattr(prune, "clock_went_back", swap_then_check)
        report = prune_pass(mirror, [cam("cam", 1), rec], set(), NOW)
        assert names(mirror / "cam") == {"20270113_090000.mp4"} and names(mirror / "cam.old")
        assert report.cameras[0].skipped == "camera directory was replaced during the pass"


class TestSegmentNames:
    def test_a_name_with_no_real_date_is_not_a_segment(self, mirror):
        bogus = segment(mirror / "cam", "20261399_999999.mp4", age_hours=48)
        report = prune_pass(mirror, [cam("cam", 1), recording(mirror)], set(), NOW)
        assert bogus.exists() and report.cameras[0].kept_files == 0

    def test_moved_aside_footage_ages_out_and_the_name_filter_is_one_parameter(self, mirror):
        """Files the worker moved aside after a clock step (``~N``) are footage: they age out."""
        aside = segment(mirror / "cam", "20270113_080000~1.mp4", age_hours=48)
        rec = recording(mirror)
        narrower = re.compile(r"([0-9]{8})_([0-9]{6})\.mp4")
        prune_pass(mirror, [cam("cam", 1), rec], set(), NOW, segment_file=narrower)
        assert aside.exists()
        prune_pass(mirror, [cam("cam", 1), rec], set(), NOW)
        assert not aside.exists()


class TestClockRules:
    """Times that cannot be trusted never delete anything; each refusal says why."""

    @pytest.mark.parametrize("now", [0.0, utc(2000, 1, 1), utc(2019, 12, 31, 23, 59, 59), math.nan])
    def test_an_unset_clock_skips_the_pass(self, mirror, now):
        old = segment(mirror / "cam", "20261123_080000.mp4", age_hours=48)
        os.utime(old, (utc(2019, 1, 1),) * 2)
        report = prune_pass(mirror, [cam("cam", 1)], set(), now)
        assert old.exists() and "is not set" in report.error

    def test_a_clock_set_back_skips_the_pass_and_names_the_newest_segment(self, mirror):
        made = recorded(mirror / "cam", NOW, 5)
        report = prune_pass(mirror, [cam("cam", 1, segment_seconds=60)], set(), NOW - 3 * 86400)
        assert all(p.exists() for p in made)
        assert "went backwards" in report.error and f"cam/{made[0].name}" in report.error

    def test_a_clock_behind_by_less_than_a_day_is_not_refused(self, mirror):
        recorded(mirror / "cam", NOW, 5)
        report = prune_pass(mirror, [cam("cam", 1, segment_seconds=60)], set(), NOW - 3600)
        assert report.error is None

    @pytest.mark.parametrize("mtime, name", [
        (utc(2019, 12, 31), "20191231_000000.mp4"),  # before any clock of this project was right
        (0.0, "20261123_080000.mp4"),  # an RTC at the epoch
        (NOW + 2 * 86400, "20261123_080000.mp4"),  # beyond a day in the future (and after its name)
        (NOW - 48 * HOUR, "20270115_070000.mp4"),  # last written two days before it was opened
    ])
    def test_an_implausible_mtime_is_never_deleted(self, mirror, mtime, name):
        path = segment(mirror / "cam", name, age_hours=0)
        os.utime(path, (mtime, mtime))
        rec = recording(mirror)
        report = prune_pass(mirror, [cam("cam", 1), rec], set(), NOW)
        assert path.exists() and report.error is None
        assert report.cameras[0].implausible_files == 1 and report.cameras[0].deleted_files == 0
        assert "implausible mtime" in report.format_lines()[0]

    def test_a_future_mtime_within_a_day_is_kept_as_not_expired(self, mirror):
        path = segment(mirror / "cam", "20270115_090000.mp4", age_hours=-2)
        rec = recording(mirror)
        report = prune_pass(mirror, [cam("cam", 1), rec], set(), NOW)
        assert path.exists() and report.cameras[0].implausible_files == 0 and report.cameras[0].kept_files == 1

    def test_a_stray_future_file_does_not_stop_pruning(self, mirror):
        """Only a segment whose name agrees with its mtime says the clock went back."""
        stray = segment(mirror / "cam", "20261123_080000.mp4", age_hours=0)
        os.utime(stray, (utc(2040, 1, 1),) * 2)
        old = segment(mirror / "cam", "20270113_080000.mp4", age_hours=48)
        report = prune_pass(mirror, [cam("cam", 1), recording(mirror)], set(), NOW)
        assert report.error is None and stray.exists() and not old.exists()

    def test_steady_recording_is_pruned_by_the_clock(self, mirror):
        """Back-to-back 60 s segments for 3 h, retention 2 h: the footage cutoff does not bind."""
        made = recorded(mirror / "cam", NOW, 180)
        report = prune_pass(mirror, [cam("cam", 2, segment_seconds=60)], {"cam"}, NOW)
        gone = [p for p in made if not p.exists()]
        assert gone == made[121:]  # mtime older than now - 2 h; made[120] is exactly at the cutoff
        assert report.cameras[0].held_back_files == 0

    def test_a_clock_set_forward_deletes_nothing(self, mirror):
        """A bad RTC reads 2040: by the clock every file expired; by the footage, none did."""
        made = recorded(mirror / "cam", NOW, 100)  # 100 min, retention 2 h: all inside it
        other = segment(mirror / "long", "20270113_080000.mp4", age_hours=48)  # 720 h, 48 h old
        cameras = [cam("cam", 2, segment_seconds=60), cam("long", 720, segment_seconds=60)]
        report = prune_pass(mirror, cameras, {"cam"}, utc(2040, 1, 1))
        assert all(p.exists() for p in made) and other.exists()
        assert report.error is None and report.deleted_files == 0
        assert report.cameras[0].held_back_files == 99 and report.cameras[0].jump_suspected
        assert "clock stepped forward?" in report.format_lines()[0]

    def test_after_a_forward_jump_old_files_go_only_as_footage_accumulates(self, mirror):
        """ffmpeg keeps writing under the 2040 clock: files go once 2 h were really recorded since."""
        before = recorded(mirror / "cam", NOW, 100)  # oldest first at the end of the list
        jump = utc(2040, 1, 1)
        recorded(mirror / "cam", jump, 10)
        cameras = [cam("cam", 2, segment_seconds=60)]
        assert prune_pass(mirror, cameras, {"cam"}, jump).deleted_files == 0  # 110 min < 2 h
        recorded(mirror / "cam", jump + 30 * 60, 30)  # 30 more minutes: 140 min in all
        report = prune_pass(mirror, cameras, {"cam"}, jump + 30 * 60)
        # The 20 oldest are followed by 120 segments (2 h) of recording: really expired.
        assert [p for p in before if not p.exists()] == before[80:]
        assert report.cameras[0].deleted_files == 20

    def test_nothing_recording_anywhere_deletes_nothing_more(self, mirror):
        """With no footage at all after a file, nothing shows that time passed since it."""
        old = segment(mirror / "cam", "20270113_080000.mp4", age_hours=48)
        report = prune_pass(mirror, [cam("cam", 1, segment_seconds=60)], set(), NOW)
        assert old.exists() and report.cameras[0].held_back_files == 1

    def test_footage_of_any_camera_counts(self, mirror):
        """An idle camera's files age out while another camera records."""
        idle = segment(mirror / "idle", "20270115_050000.mp4", age_hours=3)
        recorded(mirror / "busy", NOW, 130)
        cameras = [cam("idle", 2, segment_seconds=60), cam("busy", 24, segment_seconds=60)]
        prune_pass(mirror, cameras, {"busy"}, NOW)
        assert not idle.exists()

    def test_a_suspected_jump_is_logged(self, mirror, caplog):
        recorded(mirror / "cam", NOW, 10)
        report = prune_pass(mirror, [cam("cam", 2, segment_seconds=60)], set(), utc(2040, 1, 1))
        records: list[logging.LogRecord] = []

        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record)

        logger = logging.getLogger(logs.LOGGER_NAME)
        handler = Keep()
        logger.addHandler(handler)
        try:
            log_report(report, logs.master())
        finally:
            logger.removeHandler(handler)
        assert [(r.levelname, r.getMessage()) for r in records] == [
            ("WARNING", "prune: 10 files past retention kept: less than 2 h of footage recorded after them "
                        "(clock stepped forward?)"),
        ]


def test_a_young_mirror_logs_no_empty_prune_warning(mirror, caplog):
    """Little footage behind the clock is no sign of a clock jump while nothing is held back."""
    from mirror_supervisor.retention.prune_report import log_report

    segment(mirror / "cam", "20270115_075000.mp4", age_hours=0.1)  # ten minutes of a new camera
    report = prune_pass(mirror, [cam("cam", 1, segment_seconds=60)], set(), NOW)
    with caplog.at_level("WARNING"):
        log_report(report)
    assert not [r for r in caplog.records if r.getMessage().strip() in ("prune:", "prune: ")]
