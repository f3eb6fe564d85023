"""Worker reports stay one atomic pipe write; ``status`` answers even when the volume hangs."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from mirror_supervisor import status
from mirror_supervisor.status import NOT_RESPONDING, render, with_segments
from mirror_supervisor.worker.report import decode_reports, encode_report

PIPE_BUF = 4096


def base_report(**extra) -> dict:
    return {"camera": "cam", "generation": 3, "pid": 1234, "state": "backoff", "ffmpeg_pid": None,
            "ffmpeg_started": None, "ffmpeg_starts": 2, "last_error": None, "segment": "20261125_110000.mp4",
            **extra}


ADVERSARIAL = [
    "x" * 10_000,
    "é" * 5_000,  # 2 bytes in UTF-8, 6 as \u00e9
    "\U0001F4F9" * 3_000,  # astral: 12 bytes escaped as a surrogate pair
    "\"\\\n\t\x00" * 3_000,  # every one escaped
    "\udcff" * 2_000,  # a lone surrogate cannot even be encoded as UTF-8
    "ok " + "界" * 4_000 + " the end",
]


@pytest.mark.parametrize("error", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_a_report_is_always_one_line_below_pipe_buf_and_keeps_the_end_of_the_error(error):
    line = encode_report(base_report(last_error=error))
    assert len(line) < PIPE_BUF and line.endswith(b"\n") and line.count(b"\n") == 1
    [report], rest = decode_reports(line)
    assert rest == b"" and report["camera"] == "cam" and report["state"] == "backoff"
    assert report["last_error"].startswith("...") and error.endswith(report["last_error"][3:])
    assert len(report["last_error"]) > 100  # trimmed to fit, not thrown away


def test_long_ids_and_segment_names_still_fit():
    line = encode_report(base_report(camera="界" * 128, last_error="é" * 4000, segment="\U0001F4F9" * 500))
    assert len(line) < PIPE_BUF
    [report], _ = decode_reports(line)
    assert report["camera"] == "界" * 128 and report["generation"] == 3


def test_an_id_that_cannot_fit_becomes_an_empty_line_not_a_torn_write():
    line = encode_report(base_report(camera="\U0001F4F9" * 1000))
    assert line == b"\n" and decode_reports(line) == ([], b"")


def test_a_short_report_is_unchanged():
    report = base_report(last_error="ffmpeg exited status 1")
    [decoded], _ = decode_reports(encode_report(report))
    assert decoded == report


# -- with_segments ------------------------------------------------------------------------------

def snapshot(mirror_dir, rows) -> dict:
    return {"master": {"mirror_dir": str(mirror_dir)}, "cameras": rows}


def test_the_reported_segment_is_stat_ed_and_others_fall_back_to_a_scan(tmp_path, monkeypatch):
    for cam, names in {"a": ["20261125_110000.mp4", "20261125_110100.mp4"], "b": ["20261125_100000.mp4"]}.items():
        (tmp_path / cam).mkdir()
        for name in names:
            (tmp_path / cam / name).write_bytes(b"x")
            os.utime(tmp_path / cam / name, (1000, 1000))
    scanned = []
    real = status._newest_cache.newest
    monkeypatch.setattr(status._newest_cache, "newest", lambda d: scanned.append(d.name) or real(d))
    rows = [{"id": "a", "segment": "20261125_110000.mp4"}, {"id": "b"}, {"id": "c", "segment": "gone.mp4"}]
    data = with_segments(snapshot(tmp_path, rows), now=1060)
    a, b, c = data["cameras"]
    assert a["newest_segment"] == "20261125_110000.mp4" and a["newest_segment_age"] == 60  # as reported
    assert b["newest_segment"] == "20261125_100000.mp4" and b["newest_segment_age"] == 60
    assert c["newest_segment"] is None and c["newest_segment_age"] is None
    assert scanned == ["b", "c"] and "volume" not in data


def test_a_hanging_volume_does_not_hang_status(tmp_path, monkeypatch):
    release = threading.Event()
    real_stat = os.stat

    def hanging_stat(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path / "mirror")):
            release.wait(30)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(status.os, "stat", hanging_stat)
    rows = [{"id": "a", "segment": "20261125_110000.mp4", "state": "recording"}, {"id": "b"}]
    begun = time.monotonic()
    try:
        data = with_segments(snapshot(tmp_path / "mirror", rows), timeout=0.3)
    finally:
        release.set()
    assert time.monotonic() - begun < 10
    assert all(row["segment_problem"] == NOT_RESPONDING and row["newest_segment_age"] is None for row in data["cameras"])
    assert NOT_RESPONDING in data["volume"]
    table = render(data, now=time.time())
    assert f"mirror volume: {NOT_RESPONDING}" in table and table.count(NOT_RESPONDING) == 3
    json.dumps(data)
