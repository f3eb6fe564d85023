"""Coverage (coverage.py, `coverage` command, status column) over fabricated segment files."""

from __future__ import annotations

import datetime
import json
import os
import time

import pytest
from support import fmp4

from mirror_supervisor import cli, status
from mirror_supervisor.footage import coverage, index, intervals

T0 = datetime.datetime(2026, 11, 25, 10, tzinfo=datetime.UTC).timestamp()


def name(epoch: float) -> str:
    return time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(epoch))


def record(directory, start: float, end: float, seconds: float = 60.0, jitter: int = 0) -> None:
    """Segments of ``seconds`` from ``start`` to ``end``; every other name one second late."""
    at, i = start, 0
    while at < end:
        length = min(seconds, end - at)
        fmp4.write_segment(directory / name(at + (jitter if i % 2 else 0)), length)
        at += length
        i += 1


def test_merge_bridges_holes_within_the_tolerance():
    assert intervals.merge([(0, 10), (11.5, 20), (25, 30)], 2.0) == [(0, 20), (25, 30)]
    assert intervals.gaps_of([(0, 20), (25, 30)], 0, 40)[0].seconds == 5


def test_full_hour_with_name_jitter_is_fully_covered(tmp_path):
    record(tmp_path / "cam", T0, T0 + 3600, jitter=1)
    report = coverage.compute(tmp_path, T0, T0 + 3600, now=T0 + 7200)
    cam = report.cameras[0]
    assert (cam.id, cam.gaps, cam.invalid) == ("cam", [], [])
    assert cam.coverage == pytest.approx(1.0, abs=0.002)


def test_an_outage_is_one_gap_at_the_right_time(tmp_path):
    record(tmp_path / "cam", T0, T0 + 600)
    record(tmp_path / "cam", T0 + 612, T0 + 1200)
    cam = coverage.compute(tmp_path, T0, T0 + 1200, now=T0 + 7200).cameras[0]
    assert [(g.start, g.end) for g in cam.gaps] == [(T0 + 600, T0 + 612)]
    assert cam.covered_seconds == pytest.approx(1188)


def test_a_segment_starting_before_the_window_counts(tmp_path):
    record(tmp_path / "cam", T0 - 60, T0 + 120)
    cam = coverage.compute(tmp_path, T0 - 30, T0 + 120, now=T0 + 7200).cameras[0]
    assert cam.gaps == [] and cam.coverage == pytest.approx(1.0)


def test_garbage_and_empty_files_are_invalid_by_name(tmp_path):
    record(tmp_path / "cam", T0, T0 + 300)
    (tmp_path / "cam" / name(T0 + 300)).write_bytes(b"not a video\n" * 100)
    (tmp_path / "cam" / name(T0 + 360)).write_bytes(b"")
    record(tmp_path / "cam", T0 + 420, T0 + 600)
    cam = coverage.compute(tmp_path, T0, T0 + 600, now=T0 + 7200).cameras[0]
    assert cam.invalid == [name(T0 + 300), name(T0 + 360)]
    assert [(g.start, g.end) for g in cam.gaps] == [(T0 + 300, T0 + 420)]


def test_the_segment_being_written_is_not_invalid_yet(tmp_path):
    record(tmp_path / "cam", T0, T0 + 120)
    (tmp_path / "cam" / name(T0 + 120)).write_bytes(b"")
    cam = coverage.compute(tmp_path, T0, T0 + 121, now=time.time()).cameras[0]
    assert cam.invalid == []


def test_primary_hole_the_mirror_lacks_and_the_reverse(tmp_path):
    record(tmp_path / "mirror" / "cam", T0, T0 + 600)
    record(tmp_path / "primary" / "cam", T0, T0 + 300)
    record(tmp_path / "primary" / "cam", T0 + 420, T0 + 720)
    cam = coverage.compute(tmp_path / "mirror", T0, T0 + 720, primary_dir=tmp_path / "primary",
                           now=T0 + 7200).cameras[0]
    assert cam.primary is not None
    assert cam.primary.only_mirror_seconds == pytest.approx(120)
    assert cam.primary.only_primary_seconds == pytest.approx(120)
    assert cam.primary.both_seconds == pytest.approx(480)


def test_without_the_index_directory_every_file_is_read_and_nothing_is_created(tmp_path):
    record(tmp_path / "cam", T0, T0 + 600)
    report = coverage.compute(tmp_path, T0, T0 + 600, now=T0 + 7200)
    assert report.parsed == 10 and report.cameras[0].coverage == pytest.approx(1.0)
    assert any("no segment index yet" in note for note in report.notes), report.notes
    assert not index.index_dir(tmp_path).exists()


def test_index_is_filled_cold_then_used_warm_and_can_be_deleted(tmp_path):
    record(tmp_path / "cam", T0, T0 + 1200)
    index.make_index_dir(tmp_path)  # the workers' (they create it)
    cold = coverage.compute(tmp_path, T0, T0 + 1200, now=T0 + 7200)
    warm = coverage.compute(tmp_path, T0, T0 + 1200, now=T0 + 7200)
    assert (cold.parsed, warm.parsed) == (20, 0)
    assert warm.cameras[0].covered_seconds == cold.cameras[0].covered_seconds
    # a file replaced behind the index's back is read again, not trusted
    (tmp_path / "cam" / name(T0 + 600)).write_bytes(b"x" * 10)
    changed = coverage.compute(tmp_path, T0, T0 + 1200, now=T0 + 7200)
    assert changed.parsed == 1 and changed.cameras[0].invalid == [name(T0 + 600)]
    for suffix in ("", "-wal", "-shm"):
        path = index.index_dir(tmp_path) / (index.INDEX_NAME + suffix)
        if path.exists():
            path.unlink()
    again = coverage.compute(tmp_path, T0, T0 + 1200, now=T0 + 7200)
    assert again.parsed == 20 and again.cameras[0].invalid == [name(T0 + 600)]


def test_json_shape(tmp_path, capsys):
    record(tmp_path / "cam", T0, T0 + 300)
    record(tmp_path / "cam", T0 + 330, T0 + 600)
    code = cli.main(["coverage", "--mirror-dir", str(tmp_path), "--from", "2026-11-25T10:00:00Z",
                     "--to", "2026-11-25T10:10:00Z", "--json", "--state-dir", str(tmp_path / "s")])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    cam = data["cameras"][0]
    assert set(cam) >= {"id", "from", "to", "covered_seconds", "coverage", "gaps", "invalid", "primary"}
    assert (cam["from"], cam["to"], cam["primary"]) == ("2026-11-25T10:00:00Z", "2026-11-25T10:10:00Z", None)
    assert cam["gaps"] == [{"start": "2026-11-25T10:05:00Z", "end": "2026-11-25T10:05:30Z", "seconds": 30.0}]


@pytest.mark.parametrize("args, code", [
    (["--min-coverage", "0.9"], 0),
    (["--min-coverage", "0.99"], 1),
    (["--min-coverage", "2"], 2),
    (["--since", "nonsense"], 2),
    (["--from", "2026-11-25T10:00:00Z"], 2),
    (["--from", "2026-11-25T10:10:00Z", "--to", "2026-11-25T10:00:00Z"], 2),
    (["--camera", "../x"], 2),
    (["--primary-dir", "/nonexistent/dir"], 2),
])
def test_exit_codes(tmp_path, args, code, capsys):
    record(tmp_path / "cam", T0, T0 + 300)
    record(tmp_path / "cam", T0 + 330, T0 + 600)  # 95 % covered
    window = [] if any(a in args for a in ("--since", "--from")) else [
        "--from", "2026-11-25T10:00:00Z", "--to", "2026-11-25T10:10:00Z"]
    with pytest.raises(SystemExit) if args[:2] == ["--min-coverage", "2"] else _nothing() as caught:
        result = cli.main(["coverage", "--mirror-dir", str(tmp_path), "--state-dir", str(tmp_path / "s"),
                           *window, *args])
    assert (caught.value.code if caught else result) == code


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_primary_dir_defaults_to_heldar_recordings_dir(tmp_path, capsys, monkeypatch):
    record(tmp_path / "mirror" / "cam", T0, T0 + 300)
    record(tmp_path / "primary" / "cam", T0, T0 + 600)
    monkeypatch.setenv("HELDAR_RECORDINGS_DIR", str(tmp_path / "primary"))
    cli.main(["coverage", "--mirror-dir", str(tmp_path / "mirror"), "--state-dir", str(tmp_path / "s"),
              "--from", "2026-11-25T10:00:00Z", "--to", "2026-11-25T10:10:00Z", "--json"])
    primary = json.loads(capsys.readouterr().out)["cameras"][0]["primary"]
    assert primary == {"only_primary_seconds": 300.0, "only_mirror_seconds": 0.0, "both_seconds": 300.0, "clamped": []}


def test_status_shows_coverage_of_the_last_hour(tmp_path):
    now = time.time()
    record(tmp_path / "cam", now - 3600, now - 1800)
    data = {"master": {"mirror_dir": str(tmp_path), "pid": 1, "started": now}, "cameras": [{"id": "cam"}]}
    status.with_coverage(data, now=now)
    assert data["cameras"][0]["coverage_1h"] == pytest.approx(0.5, abs=0.01)
    assert "50.0%" in status.render(data, now=now) or "49.9%" in status.render(data, now=now)


def test_unreadable_index_still_gives_coverage(tmp_path):
    record(tmp_path / "cam", T0, T0 + 120)
    index.make_index_dir(tmp_path)
    index.index_path(tmp_path).write_bytes(b"this is not sqlite" * 100)
    report = coverage.compute(tmp_path, T0, T0 + 120, now=T0 + 7200)
    assert report.cameras[0].coverage == pytest.approx(1.0) and report.notes
    os.chmod(tmp_path, 0o755)
