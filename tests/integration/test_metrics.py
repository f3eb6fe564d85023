"""Prometheus metrics from a real master recording a real RTSP camera (README, "Metrics").

Counters rise while it records; the restart counter rises by reason after ffmpeg is killed
(``exit``) and after the source stalls (``stall``); the HTTP child is a titled process of its
own, is forked again when it dies, and the files go away with a clean stop.
"""

from __future__ import annotations

import os
import signal
import urllib.request
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families
from support import procs
from support.rtsp import free_port

P = "mirror_supervisor_"


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value}."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return parse(response.read().decode())
    except OSError:
        return {}


def value(metrics: dict, name: str, **labels: str) -> float | None:
    return metrics.get((P + name, tuple(sorted(labels.items()))))


def metrics_child(master_pid: int) -> psutil.Process | None:
    for child in psutil.Process(master_pid).children():
        if procs.title(child).startswith("mirror-supervisor: metrics 127.0.0.1:"):
            return child
    return None


def test_counters_rise_while_recording_and_restarts_count_by_reason(rtsp, nvr, mirror_dir, supervisor, tmp_path):
    nvr.add_mirrored("cam", rtsp.url("/live"), segment_seconds=2)
    port, textfile = free_port(), tmp_path / "textfile" / "mirror.prom"
    textfile.parent.mkdir()
    sup = supervisor("--poll-interval", "600", "--stall-timeout", "5",
                     "--metrics-file", str(textfile), "--metrics-listen", f"127.0.0.1:{port}")
    sup.wait_one_each({"cam"})

    first = procs.wait_for("recording with bytes, segments and coverage measured", lambda: (m := scrape(port))
                           and value(m, "camera_up", camera="cam") == 1
                           and (value(m, "bytes_written_total", camera="cam") or 0) > 0
                           and (value(m, "segments_written_total", camera="cam") or 0) >= 1
                           and (value(m, "coverage_ratio", camera="cam", window="1h") or 0) > 0 and m, 60)
    assert value(first, "database_up") == 1
    assert (value(first, "mirror_free_bytes") or 0) > 0
    assert value(first, "build_info", version=__import__("mirror_supervisor").__version__) == 1
    assert (value(first, "last_segment_end_timestamp_seconds", camera="cam") or 0) > 0
    # From the files (the camera's first footage on): a source that never stopped is close to all of it.
    assert 0.8 < (value(first, "coverage_ratio", camera="cam", window="1h") or 0) <= 1
    for reason in ("exit", "stall", "stop_timeout", "spawn_error"):
        assert value(first, "ffmpeg_restarts_total", camera="cam", reason=reason) == 0
    assert os.stat(textfile).st_mode & 0o777 == 0o644
    assert value(parse(textfile.read_text()), "camera_up", camera="cam") is not None

    def rose(m: dict) -> bool:
        return all((value(m, name, camera="cam") or 0) > (value(first, name, camera="cam") or 0)
                   for name in ("bytes_written_total", "segments_written_total", "last_segment_end_timestamp_seconds"))

    procs.wait_for("counters rising", lambda: rose(scrape(port)), 60)

    # ffmpeg killed: the worker restarts it; reason "exit"
    os.kill(sup.wait_one_each({"cam"})["cam"].ffmpeg_pids[0], signal.SIGKILL)
    procs.wait_for("a restart counted as exit", lambda: value(scrape(port), "ffmpeg_restarts_total",
                                                              camera="cam", reason="exit") == 1, 30)

    # the source stalls: the worker ends ffmpeg after the stall timeout and restarts it; reason "stall"
    rtsp.pause()
    try:
        stalled = procs.wait_for("a restart counted as stall", lambda: (m := scrape(port)) and (
            value(m, "ffmpeg_restarts_total", camera="cam", reason="stall") or 0) >= 1 and m, 60)
        assert value(stalled, "ffmpeg_restarts_total", camera="cam", reason="exit") == 1
        assert value(stalled, "camera_up", camera="cam") == 0
    finally:
        rtsp.resume()
    procs.wait_for("recording again", lambda: value(scrape(port), "camera_up", camera="cam") == 1, 60)

    # the HTTP child dies: another one serves
    child = procs.wait_for("the metrics child", lambda: metrics_child(sup.pid), 10)
    child.kill()
    procs.wait_for("another metrics child serving", lambda: (c := metrics_child(sup.pid)) is not None
                   and c.pid != child.pid and scrape(port), 30)

    assert sup.stop() == 0
    assert not textfile.exists() and not (sup.state_dir / "metrics.prom").exists()
    assert not procs.alive(child.pid)


def test_a_port_in_use_is_logged_and_recording_goes_on(rtsp, nvr, supervisor):
    import socket

    nvr.add_mirrored("cam", rtsp.url("/live"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sup = supervisor("--poll-interval", "600", "--metrics-listen", f"127.0.0.1:{port}")
        sup.wait_log("metrics server cannot listen on 127.0.0.1")
        sup.wait_log("metrics server pid=")
        sup.wait_one_each({"cam"})
    assert sup.stop() == 0
    assert not Path(sup.state_dir / "metrics.prom").exists()


def test_a_reload_that_moves_or_drops_an_output_takes_its_file_back_and_a_stop_the_rest(rtsp, nvr, supervisor,
                                                                                         tmp_path):
    """node_exporter's textfile collector exports every ``*.prom`` it finds for as long as it is
    there: a file the master no longer writes must go, or ``camera_up 1`` is exported forever.
    A reload that moves ``--metrics-file`` removes the old file (ours: the one we wrote), one
    that drops ``--metrics-listen`` removes the served copy; a clean stop removes the new file.
    Another exporter's file in the same directory is never touched."""
    nvr.add_mirrored("cam", rtsp.url("/live"), segment_seconds=2)
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    old, new, theirs = textfiles / "mirror.prom", textfiles / "mirror-moved.prom", textfiles / "other.prom"
    theirs.write_text("other_exporter_up 1\n")
    config, port = tmp_path / "mirror-supervisor.conf", free_port()
    config.write_text(f"MIRROR_SUPERVISOR_METRICS_FILE={old}\nMIRROR_SUPERVISOR_METRICS_LISTEN=127.0.0.1:{port}\n")
    sup = supervisor("--poll-interval", "600", "--config", str(config))
    served = sup.state_dir / "metrics.prom"

    def up(path: Path) -> bool:
        try:
            return value(parse(path.read_text()), "camera_up", camera="cam") == 1
        except OSError:
            return False

    procs.wait_for("camera_up 1 in the metrics file", lambda: up(old) and served.exists(), 60)

    config.write_text(f"MIRROR_SUPERVISOR_METRICS_FILE={new}\n")  # moved; no listener any more
    sup.signal(signal.SIGHUP)
    procs.wait_for("camera_up 1 in the moved file", lambda: up(new), 30)
    procs.wait_for("the old file and the served copy gone", lambda: not old.exists() and not served.exists(), 30)
    procs.wait_for("the listener gone", lambda: metrics_child(sup.pid) is None, 30)
    assert up(new), "the moved file is still written"

    assert sup.stop() == 0
    assert sorted(p.name for p in textfiles.iterdir()) == ["other.prom"], "ours gone, theirs kept"
    assert theirs.read_text() == "other_exporter_up 1\n"
    assert not served.exists()
