"""The core contract (docs/design.md: every section but "Retention") with real processes.

Every test runs the real ``mirror-supervisor run`` as a child process, against a real RTSP server
on 127.0.0.1, a real SQLite file written from another connection, with real ffmpeg, fork and
signals. Time-outs are generous bounds on eventual state, never performance assertions.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest
from support import procs
from support.rtsp import RtspServer

from mirror_supervisor.footage.segments import parse_name

SEGMENT = re.compile(r"\d{8}_\d{6}\.mp4")


def segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.mp4") if SEGMENT.fullmatch(p.name)) if directory.is_dir() else []


def finished_segments(directory: Path) -> list[Path]:
    """All but the newest segment: ffmpeg has closed those."""
    return segments(directory)[:-1]


def wait_new_segment(directory: Path, after: set[Path], timeout: float = 30) -> Path:
    def fresh():
        new = [p for p in segments(directory) if p not in after and p.stat().st_size > 0]
        return new[-1] if new else None

    return procs.wait_for(f"a new segment in {directory}", fresh, timeout)


def test_one_worker_per_mirrored_camera_writes_playable_utc_segments(rtsp, nvr, mirror_dir, supervisor):
    nvr.add_mirrored("gate_a_01", rtsp.url("/live"))
    nvr.add_mirrored("yard", rtsp.url("/live"), segment_seconds=3)
    nvr.add("hik_01", vendor="hikvision", address="127.0.0.1", rtsp_port=rtsp.port, segment_seconds=2, mirror_enabled=1)
    nvr.add_mirrored("disabled_cam", rtsp.url("/live"), enabled=0)
    nvr.add("unmirrored", main_stream_url=rtsp.url("/live"), segment_seconds=2, mirror_enabled=0)
    started = time.time()
    sup = supervisor("--poll-interval", "1")

    table = sup.wait_one_each({"gate_a_01", "yard", "hik_01"})
    for camera, view in table.items():
        assert view.generation >= 1
        assert procs.title(psutil.Process(view.pid)).startswith(
            f"mirror-supervisor: worker {camera} gen={view.generation} ")
    for camera, seconds in (("gate_a_01", 2), ("yard", 3), ("hik_01", 2)):
        directory = mirror_dir / camera
        procs.wait_for(f"2 finished segments of {camera}", lambda directory=directory: len(finished_segments(directory)) >= 2, 40)
        for path in finished_segments(directory)[1:]:  # the very first one starts mid-GOP
            info = procs.probe(path)
            assert info.get("video_codec") == "h264", (path, info)
            assert seconds - 0.6 <= info["duration"] <= seconds + 1.1, (path, info)
        for path in segments(directory):
            named = parse_name(path.name)
            assert started - 2 <= named <= time.time() + 1, f"{path.name} is not UTC wall-clock time"
    assert not (mirror_dir / "disabled_cam").exists() and not (mirror_dir / "unmirrored").exists()
    assert set(sup.workers()) == {"gate_a_01", "yard", "hik_01"}


def test_unmirroring_one_camera_on_sighup_leaves_the_others_untouched(rtsp, nvr, mirror_dir, supervisor):
    for camera in ("a", "b", "c"):
        nvr.add_mirrored(camera, rtsp.url("/live"))
    sup = supervisor("--poll-interval", "600")
    before = sup.wait_one_each({"a", "b", "c"})

    nvr.update("b", mirror_enabled=0)
    sup.signal(signal.SIGHUP)
    after = sup.wait_one_each({"a", "c"}, timeout=15)
    procs.wait_for("b's ffmpeg gone", lambda: not procs.alive(before["b"].ffmpeg_pids[0]), 15)
    # The worker outlives its ffmpeg by the moment it takes to reap it and exit (seen alive here).
    procs.wait_for("b's worker gone", lambda: not procs.alive(before["b"].pid), 15)
    assert procs.disturbed({c: before[c] for c in ("a", "c")}, after, sup.log()) == []
    assert procs.ffmpegs_writing(mirror_dir / "b") == []


def test_inserted_camera_starts_on_the_next_poll_without_sighup(rtsp, nvr, supervisor):
    nvr.add_mirrored("first", rtsp.url("/live"))
    sup = supervisor("--poll-interval", "2")
    sup.wait_one_each({"first"})
    nvr.add_mirrored("second", rtsp.url("/live"))
    sup.wait_one_each({"first", "second"}, timeout=20)
    assert "reload requested" not in sup.log()


@pytest.mark.parametrize(
    "change",
    [
        {"segment_seconds": 3},
        {"record_audio": 1},
        {"main_stream_url": "PLACEHOLDER_OTHER_PATH"},
        {"username": "viewer", "password": "new-secret"},
    ],
    ids=["segment_seconds", "audio", "url", "credentials"],
)
def test_changed_camera_is_restarted_alone_and_never_doubled(rtsp, nvr, mirror_dir, supervisor, change):
    if "main_stream_url" in change:
        change = {"main_stream_url": rtsp.url("/Streaming/Channels/102")}
    if "username" in change:  # credentials only reach a built URL; the server has no auth, so any pass
        nvr.add("cam", vendor="hikvision", address="127.0.0.1", rtsp_port=rtsp.port, segment_seconds=2, mirror_enabled=1)
    else:
        nvr.add_mirrored("cam", rtsp.url("/live"))
    nvr.add_mirrored("other", rtsp.url("/live"))
    sup = supervisor("--poll-interval", "600")
    before = sup.wait_one_each({"cam", "other"})

    nvr.update("cam", **change)
    sup.signal(signal.SIGHUP)
    most = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # sample every 20 ms through the restart
        most = max(most, len(procs.ffmpegs_writing(mirror_dir / "cam")))
        table = sup.one_each({"cam", "other"})
        if table and table["cam"].generation > before["cam"].generation:
            break
        time.sleep(0.02)
    after = sup.wait_one_each({"cam", "other"}, timeout=1)
    assert most <= 1, "two ffmpegs wrote into one camera's directory at once"
    assert after["cam"].generation > before["cam"].generation
    assert after["cam"].pid != before["cam"].pid
    assert not procs.alive(before["cam"].ffmpeg_pids[0])
    assert procs.disturbed({"other": before["other"]}, after, sup.log()) == []
    assert "new-secret" not in sup.log()


def test_killed_worker_is_replaced_and_its_ffmpeg_does_not_linger(rtsp, nvr, mirror_dir, supervisor):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    sup = supervisor("--poll-interval", "600")
    before = sup.wait_one_each({"cam"})["cam"]
    procs.wait_for("first segment", lambda: segments(mirror_dir / "cam"), 30)

    os.kill(before.pid, signal.SIGKILL)
    procs.wait_for("old ffmpeg gone", lambda: not procs.alive(before.ffmpeg_pids[0]), 15)
    after = procs.wait_for(
        "replacement worker", lambda: (t := sup.one_each({"cam"})) and t["cam"].generation > before.generation and t, 20)
    assert after["cam"].pid != before.pid
    assert procs.ffmpegs_writing(mirror_dir / "cam") == list(after["cam"].ffmpeg_pids)
    wait_new_segment(mirror_dir / "cam", set(segments(mirror_dir / "cam")))
    assert "worker died unexpectedly" in sup.log()


def test_lost_rtsp_server_backs_off_then_resumes_by_itself(rtsp, nvr, mirror_dir, supervisor):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    sup = supervisor("--poll-interval", "600")
    worker = sup.wait_one_each({"cam"})["cam"]
    procs.wait_for("recording", lambda: segments(mirror_dir / "cam"), 30)

    rtsp.stop()
    # A lost source: the back-off starts at 1 s, and while the camera's port refuses, ffmpeg is
    # held (its port is probed once a second) instead of being restarted into the refusal.
    sup.wait_log("camera port refuses; ffmpeg waits until it accepts", timeout=40)
    retries = [int(n) for n in re.findall(r"cam retrying in (\d+)s", sup.log())]
    assert retries[:1] == [1]
    assert sup.workers()["cam"][0].pid == worker.pid, "a lost source restarts ffmpeg, not the worker"

    have = set(segments(mirror_dir / "cam"))
    rtsp.start()
    wait_new_segment(mirror_dir / "cam", have, timeout=60)
    assert sup.workers()["cam"][0].pid == worker.pid


def test_sigterm_stops_all_workers_in_parallel_and_leaves_playable_segments(rtsp, nvr, mirror_dir, supervisor):
    cameras = {"a", "b", "c"}
    for camera in cameras:
        nvr.add_mirrored(camera, rtsp.url("/live"), segment_seconds=10)
    sup = supervisor("--poll-interval", "600", "--stop-timeout", "8")
    table = sup.wait_one_each(cameras)
    for camera in cameras:
        procs.wait_for(f"{camera} recording",
                       lambda camera=camera: (s := segments(mirror_dir / camera)) and s[-1].stat().st_size > 50_000, 30)

    assert sup.stop(timeout=30) == 0
    for view in table.values():
        assert not procs.alive(view.pid) and not procs.alive(view.ffmpeg_pids[0])
    assert procs.ffmpegs_writing(mirror_dir) == []
    log = sup.log().splitlines()
    stop_lines = [i for i, line in enumerate(log) if "stopping worker" in line]
    exit_lines = [i for i, line in enumerate(log) if "worker exited" in line]
    assert len(stop_lines) == 3 and len(exit_lines) == 3
    assert max(stop_lines) < min(exit_lines), "workers were stopped one after another, not in parallel"
    for camera in cameras:
        last = segments(mirror_dir / camera)[-1]
        info = procs.probe(last)
        assert info.get("video_codec") == "h264" and info["duration"] > 0.5, (last, info)


def test_sigkill_of_the_master_leaves_no_worker_or_ffmpeg(rtsp, nvr, mirror_dir, supervisor):
    for camera in ("a", "b"):
        nvr.add_mirrored(camera, rtsp.url("/live"))
    sup = supervisor("--poll-interval", "600")
    table = sup.wait_one_each({"a", "b"})
    pids = [v.pid for v in table.values()] + [p for v in table.values() for p in v.ffmpeg_pids]

    sup.signal(signal.SIGKILL)
    sup.proc.wait(timeout=10)
    procs.wait_for("no worker or ffmpeg left", lambda: not any(procs.alive(pid) for pid in pids), 5, interval=0.05)
    assert procs.ffmpegs_writing(mirror_dir) == []


def test_passwords_never_reach_logs_or_titles(nvr, mirror_dir, supervisor):
    password = "s3cr@t:p/w%x"
    with RtspServer(user="admin", password=password) as server:
        nvr.add("hik", vendor="hikvision", address="127.0.0.1", rtsp_port=server.port,
                username="admin", password=password, segment_seconds=2, mirror_enabled=1)
        explicit_password = "p@ss@word9"
        with RtspServer(user="admin", password=explicit_password) as server2:
            nvr.add_mirrored("explicit", f"rtsp://admin:{explicit_password}@127.0.0.1:{server2.port}/live")
            # A camera that fails makes ffmpeg print its URL in the stderr tail we log.
            nvr.add("refused", vendor="hikvision", address="127.0.0.1", rtsp_port=1,
                    username="admin", password=password, segment_seconds=2, mirror_enabled=1)
            sup = supervisor("--poll-interval", "600")
            # "refused"'s ffmpeg lives a moment (connection refused), then its worker waits for the
            # port: only its worker is sure to be seen, beside the other two's worker and ffmpeg.
            procs.wait_for("a worker each, an ffmpeg each for hik and explicit", lambda: (
                table := sup.workers()).keys() == {"hik", "explicit", "refused"} and all(
                len(views) == 1 and (camera == "refused" or len(views[0].ffmpeg_pids) == 1)
                for camera, views in table.items()), 30)
            for camera in ("hik", "explicit"):
                procs.wait_for(f"{camera} records with credentials",
                               lambda camera=camera: len(segments(mirror_dir / camera)) >= 2, 30)
            sup.wait_log("refused ffmpeg exited status", timeout=30)
            titles = [procs.title(psutil.Process(sup.pid))]
            titles += [procs.title(psutil.Process(v[0].pid)) for v in sup.workers().values()]
            sup.stop()
    log = sup.log()
    assert "Connection refused" in log and "rtsp://***@127.0.0.1:1/" in log
    for secret in (password, quote(password, safe=""), explicit_password, "s3cr", "p@ss@"):
        assert secret not in log
        assert not any(secret in t for t in titles), titles


def test_a_burst_of_sighups_changes_nothing(rtsp, nvr, supervisor):
    for camera in ("a", "b"):
        nvr.add_mirrored(camera, rtsp.url("/live"))
    sup = supervisor("--poll-interval", "600")
    before = sup.wait_one_each({"a", "b"})
    for _ in range(20):
        sup.signal(signal.SIGHUP)
    sup.wait_log("reload requested")
    time.sleep(2)
    after = sup.wait_one_each({"a", "b"}, timeout=5)
    assert procs.disturbed(before, after, sup.log()) == []
    assert sup.log().count("worker started") == 2


def test_recorder_disabled_starts_nothing_and_turning_it_off_stops_everything(tmp_path, rtsp, nvr, mirror_dir, supervisor):
    nvr.add_mirrored("a", rtsp.url("/live"))
    nvr.add_mirrored("b", rtsp.url("/live"))
    off = supervisor("--poll-interval", "1", "--recorder-enabled", "false")
    off.wait_log("recorder disabled")
    time.sleep(2.5)  # two more polls
    assert off.workers() == {} and procs.ffmpegs_writing(mirror_dir) == []
    assert off.stop() == 0

    config = tmp_path / "mirror-supervisor.conf"
    config.write_text("MIRROR_SUPERVISOR_RECORDER_ENABLED=true\n")
    on = supervisor("--poll-interval", "600", "--config", str(config))
    table = on.wait_one_each({"a", "b"})
    config.write_text("MIRROR_SUPERVISOR_RECORDER_ENABLED=false\n")
    on.signal(signal.SIGHUP)
    procs.wait_for("all workers gone", lambda: on.workers() == {}, 20)
    procs.wait_for("all ffmpegs gone", lambda: procs.ffmpegs_writing(mirror_dir) == [], 10)
    assert all(not procs.alive(v.pid) for v in table.values())
    assert on.proc.poll() is None, "the master keeps running, idle"


def test_unusable_rows_are_reported_and_never_started(rtsp, nvr, mirror_dir, supervisor):
    nvr.add_mirrored("good", rtsp.url("/live"))
    nvr.add("generic_no_url", vendor="generic", address="127.0.0.1", mirror_enabled=1)
    nvr.add_mirrored("file_url", "file:/etc/passwd")
    nvr.add_mirrored("concat_url", "concat:/etc/passwd|/etc/shadow")
    sup = supervisor("--poll-interval", "1")
    sup.wait_one_each({"good"})
    procs.wait_for("segments of the good camera", lambda: segments(mirror_dir / "good"), 30)
    time.sleep(2.5)  # a few more polls: still reported once each, still never started
    log = sup.log()
    assert re.search(r"ERROR generic_no_url not recorded: no URL: vendor 'generic'", log)
    assert re.search(r"ERROR file_url not recorded: URL scheme 'file' is refused", log)
    assert re.search(r"ERROR concat_url not recorded: URL scheme 'concat' is refused", log)
    assert log.count("file_url not recorded") == 1
    assert set(sup.workers()) == {"good"}
    assert sorted(p.name for p in mirror_dir.iterdir() if not p.name.startswith(".")) == ["good"]  # the index dir aside


def test_reload_with_a_new_mirror_dir_in_the_config_file_moves_every_camera(tmp_path, rtsp, nvr, mirror_dir):
    from support.supervisor import Supervisor

    second = tmp_path / "second_volume"
    second.mkdir()
    config = tmp_path / "mirror.conf"
    config.write_text(f"MIRROR_SUPERVISOR_MIRROR_DIR={mirror_dir}\nMIRROR_SUPERVISOR_POLL_INTERVAL=600\n")
    nvr.add_mirrored("a", rtsp.url("/live"))
    nvr.add_mirrored("b", rtsp.url("/live"))
    sup = Supervisor(tmp_path, nvr.path, mirror_dir, "--config", str(config), mirror_flag=False).start()
    try:
        before = sup.wait_one_each({"a", "b"})
        sup.signal(signal.SIGHUP)  # nothing changed: nothing restarts
        sup.wait_log("reload requested")
        time.sleep(1)
        assert procs.disturbed(before, sup.wait_one_each({"a", "b"}, timeout=5), sup.log()) == []

        config.write_text(f"MIRROR_SUPERVISOR_MIRROR_DIR={second}\nMIRROR_SUPERVISOR_POLL_INTERVAL=600\n")
        sup.signal(signal.SIGHUP)
        procs.wait_for("both cameras recording into the new volume",
                       lambda: all(segments(second / cam) for cam in ("a", "b")), 30)
        after = sup.wait_one_each({"a", "b"})
        assert all(after[c].generation > before[c].generation for c in ("a", "b"))
        assert procs.ffmpegs_writing(mirror_dir) == []
    finally:
        sup.kill_everything()
        for pid in procs.ffmpegs_writing(second):
            os.kill(pid, signal.SIGKILL)
