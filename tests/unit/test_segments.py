"""Segment names and the rule that keeps a new ffmpeg from reusing one."""

import calendar
import time

from mirror_supervisor.segments import newest, parse_name, wait_before_start


def test_parse_name_is_utc():
    assert parse_name("20261123_231500.mp4") == calendar.timegm((2026, 11, 23, 23, 15, 0, 0, 0, 0))
    for other in ("20261123_231500.mp4.tmp", "x.mp4", "20261399_999999.mp4", "20261123-231500.mp4"):
        assert parse_name(other) is None


def test_newest_ignores_other_names(tmp_path):
    for name in ("20261123_231500.mp4", "20261123_231502.mp4", "zzz.mp4", "20261123_231509.txt",
                 "20261399_999999.mp4", "２0261123_231503.mp4"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "20261123_231508.mp4").mkdir()
    (tmp_path / "20261123_231507.mp4").symlink_to(tmp_path / "20261123_231500.mp4")
    assert newest(tmp_path)[0] == "20261123_231502.mp4"
    assert newest(tmp_path / "missing") is None


def test_wait_until_the_clock_passes_the_newest_name():
    start = 1_000_000.0
    assert wait_before_start(None, start) == 0
    assert wait_before_start(start, start + 0.25) == 0.75
    assert wait_before_start(start, start + 1.0) == 0
    assert wait_before_start(start + 3600, start) == 0  # clock stepped back: waiting would not help
