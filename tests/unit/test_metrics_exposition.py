"""metrics.py without processes: names and units, counters by reason, coverage, footage accounting."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from test_master_loop import loop  # noqa: F401 - the fixture

from mirror_supervisor import __version__, metrics, metrics_children
from mirror_supervisor.camera import Camera
from mirror_supervisor.settings import Settings
from mirror_supervisor.slot import CameraSlot, SlotState, Worker


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

def test_coverage_is_the_recording_share_of_the_watched_part_of_the_window():
    cover = metrics.RecordingTime(window=100.0)
    assert cover("cam", 0.0, 100.0) is None
    cover.observe(0.0, {"cam": (True, False)})
    cover.observe(10.0, {"cam": (True, True)})
    assert cover("cam", 50.0, 100.0) == 40 / 50
    cover.observe(60.0, {"cam": (True, True)})  # unchanged: one interval
    cover.observe(90.0, {"cam": (False, False)})  # not mirrored for a while: counts for nothing
    cover.observe(95.0, {"cam": (True, True)})
    assert cover("cam", 100.0, 100.0) == (80 + 5) / (90 + 5)
    assert cover("cam", 200.0, 100.0) == 1.0, "older than the window: forgotten"
    cover.observe(200.0, {})
    assert cover("cam", 200.0, 100.0) is None, "a camera that is gone is forgotten"


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
    assert got[("mirror_supervisor_coverage_ratio", (("camera", "up"), ("window", "1h")))] == 1.0
    assert got[("mirror_supervisor_coverage_ratio", (("camera", "down"), ("window", "1h")))] == 0.0
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
