"""Segment names, moved-aside names, and the rules that keep ffmpeg from reusing a name."""

import calendar
import os

from mirror_supervisor.footage import segments as module
from mirror_supervisor.footage.segments import (
    SEGMENT_NAME,
    SEGMENT_OR_MOVED,
    NewestCache,
    future_names,
    move_aside,
    move_aside_future,
    name_epoch,
    newest,
    newest_of,
    parse_name,
    wait_before_start,
)


def is_segment_or_moved(name: str) -> bool:
    """What retention counts as footage (``prune.SEGMENT_FILE``): ffmpeg's names and moved-aside ones."""
    return SEGMENT_OR_MOVED.fullmatch(name) is not None


def parse_any(name: str) -> float | None:
    """The start second a segment or moved-aside name encodes, as the pruner reads it."""
    match = SEGMENT_OR_MOVED.fullmatch(name)
    return None if match is None else name_epoch(match.group(1), match.group(2))


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


# -- names ahead of the clock are moved aside, never truncated ----------------------------------

def test_moved_aside_names_are_segments_for_retention_but_not_ffmpeg_names():
    assert is_segment_or_moved("20261125_110000.mp4") and is_segment_or_moved("20261125_110000~1.mp4")
    assert is_segment_or_moved("20261125_110000~12.mp4")
    for other in ("20261125_110000~0.mp4", "20261125_110000~.mp4", "20261125_110000~1.mp4.tmp", "x~1.mp4"):
        assert not is_segment_or_moved(other), other
    assert SEGMENT_NAME.fullmatch("20261125_110000~1.mp4") is None
    assert parse_any("20261125_110000~3.mp4") == parse_name("20261125_110000.mp4")


def test_future_names_keep_the_open_file_and_the_current_second():
    now = parse_name("20261125_110000.mp4") + 0.5
    names = ["20261125_105959.mp4", "20261125_110000.mp4", "20261125_110001.mp4", "20261125_120000.mp4",
             "20261125_110002~1.mp4", "junk.mp4"]
    assert future_names(names, now) == ["20261125_110001.mp4", "20261125_120000.mp4"]
    assert future_names(names, now, keep="20261125_110001.mp4") == ["20261125_120000.mp4"]
    assert newest_of(names, not_after=now) == ("20261125_110000.mp4", parse_name("20261125_110000.mp4"))


def test_move_aside_never_replaces_an_existing_file(tmp_path):
    (tmp_path / "20261125_110000.mp4").write_bytes(b"new")
    (tmp_path / "20261125_110000~1.mp4").write_bytes(b"moved before")
    assert move_aside(tmp_path, "20261125_110000.mp4") == "20261125_110000~2.mp4"
    assert (tmp_path / "20261125_110000~1.mp4").read_bytes() == b"moved before"
    assert (tmp_path / "20261125_110000~2.mp4").read_bytes() == b"new"
    assert not (tmp_path / "20261125_110000.mp4").exists()


def test_move_aside_future_moves_only_future_names_and_keeps_content(tmp_path):
    now = parse_name("20261125_110000.mp4") + 0.5
    for name in ("20261125_105900.mp4", "20261125_110000.mp4", "20261125_110010.mp4", "20261125_111000.mp4"):
        (tmp_path / name).write_bytes(name.encode())
    moved, failed = move_aside_future(tmp_path, now, keep="20261125_111000.mp4")
    assert moved == [("20261125_110010.mp4", "20261125_110010~1.mp4")] and failed == []
    assert (tmp_path / "20261125_110010~1.mp4").read_bytes() == b"20261125_110010.mp4"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20261125_105900.mp4", "20261125_110000.mp4", "20261125_110010~1.mp4", "20261125_111000.mp4"]


def test_only_a_short_skew_is_waited_out():
    assert wait_before_start(1000.0, 997.0) == 4.0  # a name 3 s ahead keeps its name; ffmpeg waits
    assert wait_before_start(1000.0, 990.0) == 0  # 10 s ahead: moved aside before this is asked
    assert 0 < wait_before_start(1000.0, 1000.1) <= 1.0


def test_newest_cache_rescans_only_when_the_directory_changes(tmp_path, monkeypatch):
    (tmp_path / "20261125_110000.mp4").write_bytes(b"x")
    cache = NewestCache()
    assert cache.newest(tmp_path)[0] == "20261125_110000.mp4"
    scans = []
    real = module.newest
    monkeypatch.setattr(module, "newest", lambda d: scans.append(d) or real(d))
    assert cache.newest(tmp_path)[0] == "20261125_110000.mp4" and scans == []
    (tmp_path / "20261125_110100.mp4").write_bytes(b"x")
    os.utime(tmp_path, ns=(0, os.stat(tmp_path).st_mtime_ns + 1))  # coarse clocks: make the change visible
    assert cache.newest(tmp_path)[0] == "20261125_110100.mp4" and scans == [tmp_path]
    assert cache.newest(tmp_path / "missing") is None
