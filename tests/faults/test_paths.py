"""Paths, modes and the mirror lock with real processes: a daemon in /, reloads, two masters.

The daemon chdirs to / after detaching, so every relative path must already mean the directory
it was given in; a second master on the same mirror dir (another state dir) must be refused
before it starts an ffmpeg; and nothing the daemon creates may be world-readable.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from support import procs
from support.recordings import wait_growth

from mirror_supervisor.footage.index import index_dir, index_path

CLI = [sys.executable, "-m", "mirror_supervisor"]
SETTINGS_ENV = ("MIRROR_SUPERVISOR_", "HELDAR_")


def clean_env() -> dict[str, str]:
    """The test runner's environment without any setting that would outrank the config file (but
    the test's own camera cache dir, which the config files here never set: see conftest)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(SETTINGS_ENV) or k == "MIRROR_SUPERVISOR_CACHE_DIR"}


def cli(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=clean_env())


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def one_worker_each(master_pid: int, cameras: set[str]) -> dict[str, procs.WorkerView] | None:
    table = procs.workers(master_pid)
    if set(table) != cameras or any(len(v) != 1 or len(v[0].ffmpeg_pids) != 1 for v in table.values()):
        return None
    return {camera: views[0] for camera, views in table.items()}


def kill_tree(pid: int | None) -> None:
    if not pid or not procs.alive(pid):
        return
    try:
        tree = psutil.Process(pid).children(recursive=True)
        os.kill(pid, signal.SIGKILL)
    except (psutil.NoSuchProcess, ProcessLookupError):
        return
    for child in tree:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture
def site(tmp_path, nvr, mirror_dir):
    """An install under ``tmp_path`` with its settings in etc/mirror-supervisor (absolute paths,
    as in /etc/default; :func:`make_relative` rewrites them relative to etc/)."""
    etc = tmp_path / "etc"
    etc.mkdir()
    config = etc / "mirror-supervisor"
    config.write_text(
        f"MIRROR_SUPERVISOR_MIRROR_DIR={mirror_dir}\n"
        f"HELDAR_DATABASE_URL=sqlite://{nvr.path}\n"
        f"MIRROR_SUPERVISOR_STATE_DIR={tmp_path / 'state'}\n"
        "MIRROR_SUPERVISOR_POLL_INTERVAL=600\n"
    )
    daemons: list[int] = []
    yield {"root": tmp_path, "config": config, "state": tmp_path / "state", "log": tmp_path / "daemon.log",
           "daemons": daemons}
    for pid in [*daemons, read_pid(tmp_path / "state")]:
        kill_tree(pid)
    for pid in procs.ffmpegs_writing(mirror_dir):
        os.kill(pid, signal.SIGKILL)


def make_relative(site) -> None:
    """Values in the file are relative to the file's directory (etc/): ``../mirror`` is the
    ``mirror_dir`` fixture, ``sqlite://../heldar.db`` the ``nvr`` fixture's database."""
    site["config"].write_text(
        "MIRROR_SUPERVISOR_MIRROR_DIR=../mirror\n"
        "HELDAR_DATABASE_URL=sqlite://../heldar.db\n"
        "MIRROR_SUPERVISOR_STATE_DIR=../state\n"
        "MIRROR_SUPERVISOR_POLL_INTERVAL=600\n"
    )


def read_pid(state: Path) -> int | None:
    try:
        return int((state / "mirror-supervisor.pid").read_text())
    except (OSError, ValueError):
        return None


def start_daemon(site) -> int:
    """``run --daemon`` as an operator in ``tmp_path`` would type it: every path relative."""
    result = cli("run", "--daemon", "--config", "etc/mirror-supervisor", "--log-file", "daemon.log", cwd=site["root"])
    assert result.returncode == 0, result.stderr
    pid = read_pid(site["state"])
    assert pid is not None and procs.alive(pid)
    site["daemons"].append(pid)
    assert psutil.Process(pid).cwd() == "/"
    return pid


def test_daemon_with_a_relative_config_records_into_the_directory_the_file_names(rtsp, nvr, mirror_dir, site):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    make_relative(site)
    pid = start_daemon(site)
    table = procs.wait_for("one worker with its ffmpeg", lambda: one_worker_each(pid, {"cam"}), 30)
    wait_growth(mirror_dir / "cam")
    ffmpeg = psutil.Process(table["cam"].ffmpeg_pids[0]).cmdline()
    assert ffmpeg[-1].startswith(str(mirror_dir / "cam") + "/"), ffmpeg

    # A reload in the daemon (cwd /) must read the same relative file the same way.
    nvr.add_mirrored("cam2", rtsp.url("/live"))
    site["config"].write_text(site["config"].read_text().replace("POLL_INTERVAL=600", "POLL_INTERVAL=500"))
    os.kill(pid, signal.SIGHUP)
    after = procs.wait_for("cam2 added by the reload", lambda: one_worker_each(pid, {"cam", "cam2"}), 30)
    assert procs.disturbed({"cam": table["cam"]}, after, site["log"].read_text()) == []
    wait_growth(mirror_dir / "cam2")
    log = site["log"].read_text()
    assert "reload: settings changed" in log and "settings not changed" not in log
    assert f"db={site['root'] / 'heldar.db'} mirror_dir={mirror_dir} " in log

    stopped = cli("stop", "--config", "etc/mirror-supervisor", cwd=site["root"])
    assert stopped.returncode == 0, stopped.stderr
    assert procs.ffmpegs_writing(mirror_dir) == []


def test_reload_with_a_bad_mirror_dir_keeps_the_old_settings_and_recording(rtsp, nvr, mirror_dir, site):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    pid = start_daemon(site)
    before = procs.wait_for("one worker with its ffmpeg", lambda: one_worker_each(pid, {"cam"}), 30)
    wait_growth(mirror_dir / "cam")

    good = site["config"].read_text()
    site["config"].write_text(good.replace(f"={mirror_dir}\n", f"={mirror_dir.with_name('no-such-mirror')}\n"))
    os.kill(pid, signal.SIGHUP)
    log = procs.wait_for("the refused reload in the log", lambda: "reload: settings not changed" in
                         (text := site["log"].read_text()) and text, 30)
    line = next(x for x in log.splitlines() if "reload: settings not changed" in x)
    assert " ERROR " in line and "--mirror-dir: " in line and "no-such-mirror" in line
    assert not (site["root"] / "no-such-mirror").exists()
    wait_growth(mirror_dir / "cam")
    assert procs.disturbed(before, one_worker_each(pid, {"cam"}), site["log"].read_text()) == []

    site["config"].unlink()  # a missing file: the same, and still recording
    os.kill(pid, signal.SIGHUP)
    procs.wait_for("the second refusal", lambda: "--config: cannot read" in site["log"].read_text(), 30)
    wait_growth(mirror_dir / "cam")
    assert procs.disturbed(before, one_worker_each(pid, {"cam"}), site["log"].read_text()) == []


@pytest.mark.parametrize("daemonize", [False, True], ids=["foreground", "daemon"])
def test_a_second_master_on_the_same_mirror_dir_is_refused(rtsp, nvr, mirror_dir, site, tmp_path, daemonize):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    first = start_daemon(site)
    before = procs.wait_for("one worker with its ffmpeg", lambda: one_worker_each(first, {"cam"}), 30)

    argv = [*CLI, "run", "--db", str(nvr.path), "--mirror-dir", str(mirror_dir),
            "--state-dir", str(tmp_path / "other-state"), "--log-file", str(tmp_path / "other.log")]
    second = subprocess.Popen(argv + (["--daemon"] if daemonize else []), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        _, stderr = second.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        second.kill()
        second.communicate()
        pytest.fail("the second master did not exit: it is running next to the first")
    finally:
        other = read_pid(tmp_path / "other-state")
        site["daemons"].append(other or second.pid)
    assert second.returncode == 1
    assert stderr.count("\n") == 1 and stderr.startswith("mirror-supervisor: error: ")
    assert str(mirror_dir) in stderr and f"pid {first}" in stderr
    assert len(procs.ffmpegs_writing(mirror_dir)) == 1
    assert procs.disturbed(before, one_worker_each(first, {"cam"}), site["log"].read_text()) == []
    assert f"not starting: mirror dir {mirror_dir} is in use by another master, pid {first}" in \
        (tmp_path / "other.log").read_text()


def test_nothing_the_daemon_creates_is_world_readable(rtsp, nvr, mirror_dir, site):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    start_daemon(site)
    procs.wait_for("status.json", lambda: (site["state"] / "status.json").exists(), 30)
    assert mode(site["log"]) == 0o640
    assert mode(site["state"] / "status.json") == 0o640
    assert mode(site["state"]) == 0o750
    assert mode(site["state"] / "mirror-supervisor.lock") == 0o600
    # The master keeps nothing open on the mirror volume (closing it would hang with the volume);
    # the only file of ours there is the workers' segment index, written one segment at a time.
    procs.wait_for("the segment index", lambda: index_path(mirror_dir).exists(), 30)
    ours = [p for p in mirror_dir.iterdir() if p.name.startswith(".")]
    assert ours == [index_dir(mirror_dir)] and mode(ours[0]) == 0o750, ours
    assert all(mode(p) & 0o007 == 0 for p in ours[0].iterdir()), "the index is not world readable"
    assert mode(site["state"] / "mirror-supervisor.pid") == 0o644  # a pid is no secret; the dir is 0750
    leftovers = [p.name for p in site["state"].iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_input_scripts_of_the_old_layout_are_removed_when_the_master_starts(rtsp, nvr, mirror_dir, supervisor, tmp_path):
    """Releases before the per-mirror-dir subdirectories (git e987702) wrote ffmpeg's input script,
    with the camera's password, into the input dir itself; one left by a killed worker stayed there
    for good, as nothing looks there any more. The master removes them at start."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    base = temp / f"mirror-supervisor-{os.geteuid()}-inputs"
    base.mkdir(mode=0o700)
    left = base / f"cam.{'a1' * 10}.ffconcat"
    left.write_text("ffconcat version 1.0\nfile 'rtsp://admin:old-secret@127.0.0.1/'\n")
    left.chmod(0o600)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (base / f"gone.{'b2' * 10}.ffconcat").symlink_to(victim)
    nvr.add_mirrored("cam", rtsp.url("/live"))
    sup = supervisor("--poll-interval", "1", env={"TMPDIR": str(temp)})
    sup.wait_one_each({"cam"})
    sup.wait_log("recording segment=")
    assert not left.exists()
    assert "removed 1 ffmpeg input scripts left in" in sup.log()
    assert victim.read_text() == "keep" and (base / f"gone.{'b2' * 10}.ffconcat").is_symlink()
    assert [p.name for p in base.iterdir() if p.is_dir()], "the current layout: a subdirectory per mirror dir"
    assert sup.stop() == 0
