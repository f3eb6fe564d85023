"""metrics.py without processes: names and units, counters by reason, coverage, footage accounting."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from test_master_loop import loop  # noqa: F401 - the fixture

from mirror_supervisor import __version__
from mirror_supervisor.cameras.camera import Camera
from mirror_supervisor.master.slot import CameraSlot, SlotState, Worker
from mirror_supervisor.metrics import children as metrics_children
from mirror_supervisor.metrics import metrics
from mirror_supervisor.settings import Settings


def settings(tmp_path: Path, **changes) -> Settings:
    base = Settings(db=tmp_path / "db", mirror_dir=tmp_path / "mirror", state_dir=tmp_path,
                    metrics_file=tmp_path / "out.prom")
    return dataclasses.replace(base, **changes)


def samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def wanted_slot(cid: str = "cam") -> CameraSlot:
    slot = CameraSlot(cid)
    slot.want(Camera(cid, mirrored=True, url=f"rtsp://h/{cid}"), ("v1", cid))
    slot.worker, slot.state = Worker(100, 1, ("v1", cid), 0.0), SlotState.RUNNING
    return slot


def report(slot: CameraSlot, **fields) -> bool:
    return slot.take_report({"camera": slot.camera_id, "generation": slot.worker.generation, **fields})


# -- counters in the slot -------------------------------------------------------------------

def test_restarts_within_a_worker_count_as_exit_or_stall_and_segments_count_once_each():
    slot = wanted_slot()
    report(slot, state="connecting", ffmpeg_starts=1)
    report(slot, state="recording", ffmpeg_starts=1, segment="a.mp4")
    report(slot, state="recording", ffmpeg_starts=1, segment="a.mp4", last_error=None, ffmpeg_pid=5)
    report(slot, state="recording", ffmpeg_starts=1, segment="b.mp4")
    assert slot.segments_opened == 2 and sum(slot.restarts.values()) == 0, "the first start is no restart"
    report(slot, state="backoff", ffmpeg_starts=1, segment="b.mp4", last_error="ffmpeg exited")
    report(slot, state="connecting", ffmpeg_starts=2, segment="b.mp4")
    assert slot.restarts == {"exit": 1}
    report(slot, state="stalled", ffmpeg_starts=2, segment="c.mp4")
    report(slot, state="connecting", ffmpeg_starts=3, segment="c.mp4")
    assert slot.restarts == {"exit": 1, "stall": 1} and slot.segments_opened == 3
    report(slot, state="error", ffmpeg_starts=3, last_error="cannot start ffmpeg")
    report(slot, state="error", ffmpeg_starts=3, last_error="cannot start ffmpeg", ffmpeg_pid=None)
    assert slot.restarts["spawn_error"] == 1, "one failing streak"


def test_a_worker_death_and_a_stop_that_needed_sigkill_count_when_the_replacement_starts(loop):  # noqa: F811
    master, system, source = loop
    source.set("cam")
    master.start()
    slot = master.slots["cam"]
    system.exit(100, -9)
    while len(system.forked) == 1:
        master.step()
    assert slot.restarts == {"exit": 1}
    source.set("cam", key="v2")  # changed settings: a planned restart, counted only if the stop needs SIGKILL
    system.signals = [signal.SIGHUP]
    pid = system.forked[-1]
    while ("killpg", pid, signal.SIGKILL) not in system.sent:
        master.step()
    system.exit(pid, -9)
    master.step()
    assert slot.restarts == {"exit": 1, "stop_timeout": 1}
    source.set("cam", key="v3")
    system.signals = [signal.SIGHUP]
    master.step()
    system.exit(system.forked[-1], 0)  # stopped when asked
    master.step()
    assert len(system.forked) == 4 and slot.restarts == {"exit": 1, "stop_timeout": 1}


def test_a_failed_fork_is_a_spawn_error(loop):  # noqa: F811
    master, system, source = loop
    source.set("cam")
    system.fork = lambda child: (_ for _ in ()).throw(OSError(11, "Resource temporarily unavailable"))
    master.start()
    assert master.slots["cam"].restarts == {"spawn_error": 1}


# -- coverage -------------------------------------------------------------------------------

class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, text: str, *args) -> None:
        self.lines.append(text % args)

    error = warning


def test_coverage_comes_from_a_child_once_a_minute_and_goes_stale(tmp_path):
    cover, log, forked = metrics.CoverageChild(), _Log(), []
    answer = tmp_path / metrics.COVERAGE_FILE
    fork = lambda child: forked.append(child) or 4242  # noqa: E731
    cover.tick(0.0, fork, lambda sequence: (lambda: sequence), log)
    assert len(forked) == 1 and cover.pid == 4242 and forked[0]() == 1, "the child is handed its sequence"
    cover.tick(30.0, fork, lambda sequence: (lambda: sequence), log)
    assert len(forked) == 1, "one child at a time"
    answer.write_text(json.dumps({"sequence": 1, "cameras": {"cam": 0.75, "bad": "x"}}))
    assert not cover.reaped(99, 0, 31.0, answer, log), "another child's pid"
    assert cover.reaped(4242, 0, 31.0, answer, log) and cover.pid is None
    assert cover("cam", 40.0) == 0.75 and cover("bad", 40.0) is None and cover("other", 40.0) is None
    assert cover.next_deadline() == metrics.COVERAGE_INTERVAL
    assert cover("cam", 31.0 + metrics.COVERAGE_STALE + 1) is None, "an old answer is not exported"
    # An answer of an older child changes nothing; a failing child is logged once, not every minute.
    for n, now in enumerate((60.0, 120.0, 180.0)):
        cover.tick(now, fork, lambda sequence: (lambda: sequence), log)
        answer.write_text(json.dumps({"sequence": 1, "cameras": {"cam": 0.1}}))
        cover.reaped(4242, 1 if n else 0, now + 1, answer, log)
    assert cover("cam", 200.0) == 0.75
    assert sum("coverage child exited (status 1)" in line for line in log.lines) == 1


def test_a_camera_that_starts_recording_is_measured_soon():
    cover = metrics.CoverageChild()
    cover.at = 100.0
    cover.recording({"a"}, 50.0)
    assert cover.at == 50.0 + metrics.COVERAGE_AFTER_UP
    cover.at = 200.0
    cover.recording({"a"}, 150.0)
    assert cover.at == 200.0, "still recording: nothing new"
    cover.recording(set(), 160.0)
    cover.recording({"a"}, 170.0)
    assert cover.at == 170.0 + metrics.COVERAGE_AFTER_UP, "recording again after a stop"


def test_a_coverage_child_past_its_time_limit_is_killed_once(tmp_path, monkeypatch):
    cover, log, sent = metrics.CoverageChild(), _Log(), []
    monkeypatch.setattr(metrics.lifeline, "signal_process", lambda pid, sig: sent.append((pid, sig)))
    cover.tick(0.0, lambda child: 77, lambda sequence: (lambda: 0), log)
    assert cover.next_deadline() == metrics.COVERAGE_TIME_LIMIT
    cover.tick(metrics.COVERAGE_TIME_LIMIT, lambda child: 78, lambda sequence: (lambda: 0), log)
    cover.tick(metrics.COVERAGE_TIME_LIMIT + 5, lambda child: 79, lambda sequence: (lambda: 0), log)
    assert sent == [(77, signal.SIGKILL)] and cover.pid == 77 and cover.next_deadline() == float("inf")
    assert cover.reaped(77, -9, metrics.COVERAGE_TIME_LIMIT + 6, tmp_path / "none.json", log)
    assert cover.pid is None and cover.next_deadline() == metrics.COVERAGE_INTERVAL


def test_the_coverage_child_measures_the_last_hour_from_the_files(tmp_path, monkeypatch):
    import time

    from test_coverage_windows import record

    now = time.time()
    record(tmp_path / "mirror" / "old", now - 7200, now - 1800)  # recorded for long, then stopped
    record(tmp_path / "mirror" / "new", now - 600, now)  # mirrored for ten minutes, no gap
    (tmp_path / "mirror" / "none").mkdir()
    monkeypatch.setattr(metrics_children.lifeline, "become_helper", lambda *args: None)  # no helper set-up here
    out = tmp_path / "answer.json"
    assert metrics_children.coverage_main(str(tmp_path / "mirror"), ["old", "new", "none", "gone"], 3600.0,
                                          str(out), 5, (), os.getpid()) == 0
    answer = json.loads(out.read_text())
    assert answer["sequence"] == 5 and set(answer["cameras"]) == {"old", "new", "none"}
    assert abs(answer["cameras"]["old"] - 0.5) < 0.02
    assert answer["cameras"]["new"] > 0.97, "measured from its first footage, not from an hour ago"
    assert answer["cameras"]["none"] == 0.0


# -- footage from the probe -----------------------------------------------------------------

def test_bytes_never_go_down_and_a_closed_segment_is_counted_once_final():
    footage = metrics_children.Footage()
    footage.segment("a.mp4")
    footage.take({"a.mp4": [100, 1.0]}, final=[])
    assert footage.total == 100
    footage.segment("b.mp4")
    assert footage.closed() == ["a.mp4"]
    footage.take({"a.mp4": [150, 2.0], "b.mp4": [10, 3.0]}, final=["a.mp4"])
    assert footage.total == 160 and footage.sizes == {"b.mp4": 10} and footage.newest_mtime == 3.0
    footage.take({"b.mp4": [5, 3.5]}, final=[])  # smaller (a rewritten trailer): the counter keeps its value
    assert footage.total == 160


def test_the_probe_child_measures_free_space_and_the_segments_it_is_given(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "cam").mkdir(parents=True)
    (mirror / "cam" / "a.mp4").write_bytes(b"x" * 1234)
    monkeypatch.setattr(metrics.volume, "probe_main", lambda directory, fds, pid: 0)  # no helper set-up here
    out = tmp_path / "probe.json"
    code = metrics_children.probe_main(str(mirror), (), os.getpid(), str(out), 7,
                              {"cam": ["a.mp4", "gone.mp4", "../escape"]})
    answer = json.loads(out.read_text())
    assert code == 0 and answer["sequence"] == 7 and answer["free"] > 0
    assert list(answer["cameras"]["cam"]) == ["a.mp4"] and answer["cameras"]["cam"]["a.mp4"][0] == 1234


def test_the_volume_probe_answer_reaches_the_exposition(tmp_path):
    exporter = metrics.Exporter(settings(tmp_path))
    slot = wanted_slot()
    report(slot, state="recording", ffmpeg_starts=1, segment="a.mp4")
    exporter.observe(0.0, [slot.status_row()], {"cam": slot}, database_up=True)
    exporter.probe_child("/m", (), 1)
    (tmp_path / metrics.PROBE_FILE).write_text(json.dumps(
        {"sequence": 1, "free": 5_000_000, "cameras": {"cam": {"a.mp4": [4096, 1.7e9]}}}))
    exporter.probe_ended(0)
    got = samples(exporter.render(1.0).decode())
    assert got[("mirror_supervisor_bytes_written_total", (("camera", "cam"),))] == 4096
    assert got[("mirror_supervisor_last_segment_end_timestamp_seconds", (("camera", "cam"),))] == 1.7e9
    assert got[("mirror_supervisor_mirror_free_bytes", ())] == 5_000_000
    (tmp_path / metrics.PROBE_FILE).write_text(json.dumps({"sequence": 0, "free": 1}))
    exporter.probe_ended(0)  # an older probe's answer changes nothing
    assert samples(exporter.render(1.0).decode())[("mirror_supervisor_mirror_free_bytes", ())] == 5_000_000


# -- the exposition -------------------------------------------------------------------------

def test_every_name_of_the_issue_in_base_units(tmp_path):
    exporter = metrics.Exporter(settings(tmp_path))
    up, down = wanted_slot("up"), wanted_slot("down")
    report(up, state="recording", ffmpeg_starts=1, segment="a.mp4")
    report(down, state="backoff", ffmpeg_starts=1)
    exporter.observe(0.0, [s.status_row() for s in (down, up)], {"up": up, "down": down}, database_up=False)
    text = exporter.render(30.0).decode()
    got = samples(text)
    assert got[("mirror_supervisor_camera_up", (("camera", "up"),))] == 1
    assert got[("mirror_supervisor_camera_up", (("camera", "down"),))] == 0
    assert got[("mirror_supervisor_segments_written_total", (("camera", "up"),))] == 1
    assert got[("mirror_supervisor_bytes_written_total", (("camera", "up"),))] == 0
    for reason in ("exit", "stall", "stop_timeout", "spawn_error"):
        assert got[("mirror_supervisor_ffmpeg_restarts_total", (("camera", "up"), ("reason", reason)))] == 0
    assert ("mirror_supervisor_coverage_ratio", (("camera", "up"), ("window", "1h"))) not in got, "not measured yet"
    exporter.coverage.ratios = {"up": (1.0, 29.0), "down": (0.25, 29.0)}
    got = samples(exporter.render(30.0).decode())
    assert got[("mirror_supervisor_coverage_ratio", (("camera", "up"), ("window", "1h")))] == 1.0
    assert got[("mirror_supervisor_coverage_ratio", (("camera", "down"), ("window", "1h")))] == 0.25
    assert got[("mirror_supervisor_database_up", ())] == 0
    assert got[("mirror_supervisor_build_info", (("version", __version__),))] == 1
    assert ("mirror_supervisor_mirror_free_bytes", ()) not in got, "unknown until the probe answers"
    assert "# TYPE mirror_supervisor_segments_written_total counter" in text
    assert "# TYPE mirror_supervisor_camera_up gauge" in text


def test_off_by_default_and_the_file_is_written_when_due(tmp_path):
    off = metrics.Exporter(Settings(db=tmp_path / "db", mirror_dir=tmp_path))
    assert not off.enabled and off.next_deadline() is None
    exporter = metrics.Exporter(settings(tmp_path))
    forks: list = []
    exporter.tick(100.0, forks.append, ())
    assert (tmp_path / "out.prom").stat().st_mode & 0o777 == 0o644
    assert exporter.next_deadline() == 100.0 + metrics.WRITE_INTERVAL and not forks
    (tmp_path / "out.prom").unlink()
    exporter.tick(101.0, forks.append, ())
    assert not (tmp_path / "out.prom").exists(), "at most every few seconds"
    exporter.remove_files()


def test_the_http_child_is_forked_and_forked_again_with_a_back_off(tmp_path, monkeypatch):
    signalled: list = []
    monkeypatch.setattr(metrics.lifeline, "signal_process", lambda pid, sig: signalled.append((pid, sig)))
    exporter = metrics.Exporter(settings(tmp_path, metrics_file=None, metrics_listen=("127.0.0.1", 9)))
    pids = iter([501, 502, 503])
    forked: list = []

    def fork(child):
        forked.append(child)
        return next(pids)

    exporter.tick(0.0, fork, ())
    assert exporter.server_pid == 501 and (tmp_path / metrics.SERVED_FILE).exists()
    assert exporter.next_deadline() == metrics.WRITE_INTERVAL
    assert exporter.reaped(501, 1, 0.5)
    assert exporter.server_at == 1.5 and exporter.next_deadline() == 1.5
    exporter.tick(1.0, fork, ())
    assert len(forked) == 1, "not before its back-off"
    exporter.tick(1.5, fork, ())
    assert exporter.server_pid == 502 and not exporter.reaped(999, 0, 2.0)
    exporter.configure(dataclasses.replace(exporter.settings, metrics_listen=("127.0.0.1", 10)))
    assert signalled == [(502, signal.SIGTERM)], "a new address: the child ends and is forked anew"


def test_a_reload_takes_back_only_the_files_this_master_wrote(tmp_path, caplog):
    """A moved or dropped output is removed when it is still the file we wrote there; a file
    someone else put at that path since is left alone (and said so); a new path is written at
    the next tick, not up to WRITE_INTERVAL later."""
    exporter = metrics.Exporter(settings(tmp_path, metrics_file=tmp_path / "a.prom", metrics_listen=("::1", 9)))
    exporter.tick(100.0, lambda child: 501, ())
    served = tmp_path / metrics.SERVED_FILE
    assert (tmp_path / "a.prom").exists() and served.exists()

    exporter.configure(settings(tmp_path, metrics_file=tmp_path / "b.prom", metrics_listen=None))
    assert not (tmp_path / "a.prom").exists() and not served.exists()
    assert exporter.next_deadline() == 0.0, "the new file is written at once"
    exporter.tick(101.0, lambda child: 502, ())
    assert (tmp_path / "b.prom").exists()

    (tmp_path / "theirs").write_text("other_up 1\n")
    os.replace(tmp_path / "theirs", tmp_path / "b.prom")  # someone else's file now, at our path
    with caplog.at_level("WARNING"):
        exporter.configure(settings(tmp_path, metrics_file=None))
    assert (tmp_path / "b.prom").read_text() == "other_up 1\n"
    assert "not removing" in caplog.text and not exporter.enabled


def test_a_clean_stop_removes_our_file_and_the_state_files(tmp_path):
    exporter = metrics.Exporter(settings(tmp_path, metrics_listen=("127.0.0.1", 9)))
    exporter.tick(100.0, lambda child: 501, ())
    for name in (metrics.PROBE_FILE, metrics.COVERAGE_FILE):
        (tmp_path / name).write_text("{}")
    exporter.remove_files()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
