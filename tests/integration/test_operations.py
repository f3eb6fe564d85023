"""Operating it like a daemon (docs/design.md, "Settings" and "Commands"), with real processes.

The init script, ``run --daemon``, the pidfile and lock, ``reload``/``stop``/``status``/``check``
are all exercised as an operator would: as commands, against a real RTSP server and database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from support import procs
from support.rtsp import RtspServer

ROOT = Path(__file__).resolve().parents[2]
INIT_SCRIPT = ROOT / "scripts" / "init.d" / "mirror-supervisor"
CLI = [sys.executable, "-m", "mirror_supervisor"]


def cli(*args: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


def daemon_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / "mirror-supervisor.pid").read_text())
    except (OSError, ValueError):
        return None


def worker_table(master_pid: int) -> dict[str, procs.WorkerView]:
    return {camera: views[0] for camera, views in procs.workers(master_pid).items() if len(views) == 1}


@pytest.fixture
def deployment(tmp_path, nvr, mirror_dir):
    """A /etc/default-style settings file and the paths an init script would use."""
    state = tmp_path / "state"
    log = tmp_path / "daemon.log"
    defaults = tmp_path / "default"
    defaults.write_text(
        f"# written by the test, as an operator would\n"
        f"DAEMON={Path(sys.executable).parent / 'mirror-supervisor'}\n"
        f"LOG_FILE={log}\n"
        f"MIRROR_SUPERVISOR_DB={nvr.path}\n"
        f"MIRROR_SUPERVISOR_MIRROR_DIR={mirror_dir}\n"
        f"MIRROR_SUPERVISOR_STATE_DIR={state}\n"
        f"MIRROR_SUPERVISOR_POLL_INTERVAL=600\n"
        f"MIRROR_SUPERVISOR_CACHE_DIR={tmp_path / 'camera-cache'}\n"
        f"# everything as root here (tmp_path is private to root); tests/faults/test_privilege.py runs\n"
        f"# the init script with its default, workers and ffmpeg as an unprivileged user\n"
        f"RUN_AS=\n"
    )
    yield {"defaults": defaults, "state": state, "log": log}
    pid = daemon_pid(state)
    if pid and procs.alive(pid):
        tree = psutil.Process(pid).children(recursive=True)
        os.kill(pid, signal.SIGKILL)
        for child in tree:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
    for pid in procs.ffmpegs_writing(mirror_dir):
        os.kill(pid, signal.SIGKILL)


def init(deployment, action: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "MIRROR_SUPERVISOR_DEFAULTS": str(deployment["defaults"])}
    return subprocess.run(["sh", str(INIT_SCRIPT), action], capture_output=True, text=True, timeout=60, env=env)


def test_init_script_start_reload_status_stop(rtsp, nvr, mirror_dir, deployment):
    nvr.add_mirrored("front", rtsp.url("/live"))
    result = init(deployment, "start")
    assert result.returncode == 0, result.stderr
    pid = daemon_pid(deployment["state"])
    assert pid and psutil.Process(pid).cmdline()[0].startswith("mirror-supervisor: master")
    assert psutil.Process(pid).ppid() == 1 or psutil.Process(pid).ppid() != os.getpid()  # detached
    procs.wait_for("front worker", lambda: "front" in worker_table(pid), 20)
    assert init(deployment, "status").returncode == 0

    nvr.add_mirrored("back", rtsp.url("/live"))
    assert init(deployment, "reload").returncode == 0
    procs.wait_for("back worker after reload", lambda: "back" in worker_table(pid), 20)
    status = procs.wait_for("status lists back", lambda: (r := init(deployment, "status")).returncode == 0
                            and "back" in r.stdout and r, 10)
    assert "front" in status.stdout

    table = worker_table(pid)
    result = init(deployment, "stop")
    assert result.returncode == 0, result.stderr
    assert init(deployment, "status").returncode == 3
    assert not procs.alive(pid)
    assert not any(procs.alive(v.pid) for v in table.values())
    assert procs.ffmpegs_writing(mirror_dir) == []
    assert not (deployment["state"] / "mirror-supervisor.pid").exists()
    log = deployment["log"].read_text()
    assert "master started" in log and "all workers stopped; master exiting" in log


def test_second_start_is_refused_and_the_first_master_is_unaffected(rtsp, nvr, deployment):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    assert init(deployment, "start").returncode == 0
    pid = daemon_pid(deployment["state"])
    # Recording first: a worker seen while it connects would change its title meanwhile, unaffected.
    before = procs.wait_for("a recording worker", lambda: (view := worker_table(pid).get("cam")) is not None
                            and view.state == "recording" and view, 30)

    second = cli("run", "--config", str(deployment["defaults"]), "--log-file", str(deployment["log"]))
    assert second.returncode == 1
    assert f"already running as pid {pid}" in second.stderr and second.stderr.count("\n") == 1
    assert daemon_pid(deployment["state"]) == pid and procs.alive(pid)
    assert worker_table(pid).get("cam") == before
    daemonized = cli("run", "--daemon", "--config", str(deployment["defaults"]), "--log-file", str(deployment["log"]))
    assert daemonized.returncode == 1 and "already running" in daemonized.stderr
    assert init(deployment, "start").returncode == 0  # LSB: starting a running service succeeds
    assert daemon_pid(deployment["state"]) == pid


def test_stale_pidfile_is_taken_over_and_reported_by_status(rtsp, nvr, deployment):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    state = deployment["state"]
    state.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (state / "mirror-supervisor.pid").write_text(f"{dead.pid}\n")
    assert cli("status", "--state-dir", str(state)).returncode == 1  # dead, pidfile exists

    (state / "mirror-supervisor.pid").write_text(f"{os.getpid()}\n")  # alive, but not a master
    assert cli("status", "--state-dir", str(state)).returncode == 1
    assert init(deployment, "start").returncode == 0
    pid = daemon_pid(state)
    assert pid not in (dead.pid, os.getpid())
    procs.wait_for("worker", lambda: worker_table(pid).get("cam"), 20)
    assert cli("status", "--state-dir", str(state)).returncode == 0


def test_status_json_agrees_with_ps_and_shows_a_down_source_in_backoff(rtsp, nvr, mirror_dir, deployment):
    password = "hunter2-secret"
    with RtspServer() as down:
        down_port = down.port
    nvr.add_mirrored("up", rtsp.url("/live"))
    nvr.add("down", vendor="hikvision", address="127.0.0.1", rtsp_port=down_port, username="admin",
            password=password, segment_seconds=2, mirror_enabled=1)
    nvr.add("bad", vendor="generic", mirror_enabled=1)
    assert init(deployment, "start").returncode == 0
    pid = daemon_pid(deployment["state"])

    def status():
        result = cli("status", "--json", "--state-dir", str(deployment["state"]))
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)

    def settled():
        data = status()
        rows = {row["id"]: row for row in data["cameras"]}
        ok = rows.get("up", {}).get("state") == "recording" and rows.get("down", {}).get("state") == "backoff"
        return ok and data

    data = procs.wait_for("up recording, down in backoff", settled, 30, interval=0.3)
    rows = {row["id"]: row for row in data["cameras"]}
    table = worker_table(pid)
    for camera in ("up", "down"):
        assert rows[camera]["worker_pid"] == table[camera].pid
    assert rows["up"]["ffmpeg_pid"] == table["up"].ffmpeg_pids[0]
    assert rows["up"]["newest_segment"] and rows["up"]["newest_segment_age"] is not None
    assert rows["up"]["generation"] == table["up"].generation
    assert "Connection refused" in rows["down"]["last_error"]
    assert f"rtsp://***@127.0.0.1:{down_port}/" in rows["down"]["last_error"]
    assert rows["bad"]["state"] == "error" and "no URL" in rows["bad"]["last_error"]
    assert data["master"]["pid"] == pid and data["master"]["db"]["state"] == "ok"
    assert data["master"]["last_reconcile"] > 0
    text = cli("status", "--state-dir", str(deployment["state"])).stdout
    assert password not in text and password not in json.dumps(data)
    down_line = next(line for line in text.splitlines() if line.startswith("down "))
    assert "Connection refused" in down_line and ("backoff" in down_line or "connecting" in down_line)
    title = procs.title(psutil.Process(pid))
    assert "cameras=2" in title and "recording=1" in title
    assert "backoff=1" in title or "connecting=1" in title  # the down camera retries all the time


def test_check_names_the_reason_for_every_camera(tmp_path, nvr, mirror_dir):
    nvr.add_mirrored("good", "rtsp://10.0.0.5/stream")
    nvr.add_mirrored("off_cam", "rtsp://10.0.0.5/stream", enabled=0)
    nvr.add_mirrored("no_rec", "rtsp://10.0.0.5/stream", record_enabled=0)
    nvr.add("no_mirror", main_stream_url="rtsp://10.0.0.5/stream")
    nvr.add("no_url", vendor="generic", mirror_enabled=1)
    nvr.add_mirrored("file_url", "file:/etc/passwd")
    nvr.add_mirrored("../escape", "rtsp://10.0.0.5/stream")
    result = cli("check", "--db", str(nvr.path), "--mirror-dir", str(mirror_dir))
    assert result.returncode == 0, result.stderr
    lines = {line.split(":", 1)[0]: line for line in result.stdout.splitlines() if line.startswith("camera ")}
    expected = {
        "good": "mirrored: rtsp://10.0.0.5/stream",
        "off_cam": "not mirrored: disabled (enabled = 0)",
        "no_rec": "not mirrored: recording off (record_enabled = 0)",
        "no_mirror": "not mirrored: mirror off (mirror_enabled = 0)",
        "no_url": "not mirrored: no URL",
        "file_url": "not mirrored: URL scheme 'file' is refused",
        "../escape": "not mirrored: unsafe id",
    }
    for camera, verdict in expected.items():
        assert verdict in lines[f"camera {camera!r}"], (camera, lines)
    assert f"mirror dir {mirror_dir}: writable" in result.stdout
    assert "not a mount point" in result.stdout and "same filesystem as /" in result.stdout


def test_check_and_run_fail_on_a_bad_setting_with_one_line(nvr, mirror_dir):
    for command in ("check", "run"):
        result = cli(command, "--db", str(nvr.path), "--mirror-dir", str(mirror_dir), "--poll-interval", "soon")
        assert result.returncode == 2
        assert result.stderr == "mirror-supervisor: error: --poll-interval: 'soon' is not a number of seconds\n"
    result = cli("check", "--db", str(nvr.path))
    assert result.returncode == 2 and "--mirror-dir: required" in result.stderr
    broken = nvr.path.with_name("broken.db")
    broken.write_bytes(b"not a database" * 100)
    result = cli("check", "--db", str(broken), "--mirror-dir", str(mirror_dir))
    assert result.returncode == 1 and "database: ERROR" in result.stdout


def test_reload_and_stop_without_a_master(tmp_path):
    state = tmp_path / "nothing"
    assert cli("reload", "--state-dir", str(state)).returncode == 7
    assert cli("stop", "--state-dir", str(state)).returncode == 0
    assert cli("status", "--state-dir", str(state)).returncode == 3


def test_log_file_is_reopened_after_rotation(rtsp, nvr, deployment):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    assert init(deployment, "start").returncode == 0
    pid = daemon_pid(deployment["state"])
    procs.wait_for("worker", lambda: worker_table(pid).get("cam"), 20)
    rotated = deployment["log"].with_suffix(".log.1")
    deployment["log"].rename(rotated)
    nvr.add_mirrored("cam2", rtsp.url("/live"))
    assert init(deployment, "reload").returncode == 0
    procs.wait_for("new log file with the reload", lambda: deployment["log"].exists()
                   and "cam2 ffmpeg started" in deployment["log"].read_text(), 20)
    assert "master started" in rotated.read_text()
