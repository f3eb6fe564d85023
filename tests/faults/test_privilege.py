"""Least privilege: no camera password readable by another local user, ffmpeg never as root.

The supervisor runs with ``--user nobody`` (the master as root, or entirely as that user) against
password-protected cameras; a second local user (a uid of its own, no groups) reads everything it
can while they record: every ``/proc/*/cmdline`` and ``/proc/*/environ``, the log, ``status``, and
every file under the state, mirror and temporary directories.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest
from support import procs
from support.forked import in_fork
from support.nvr import NvrDatabase
from support.rtsp import RtspServer
from support.users import UserPython, as_user, shared_tmpdir, unprivileged

from mirror_supervisor.footage.index import SegmentIndex, index_path
from mirror_supervisor.worker import ffmpeg as ffmpeg_command

RUN_AS = "nobody"
SNOOPER_UID = 54321  # no passwd entry needed: setpriv takes numbers
# Fresh per run: other tests on this machine use fixed passwords of their own.
PASSWORD = f"s3cr@t:p/w%x{secrets.token_hex(4)}"
EXPLICIT_PASSWORD = f"Ex'pl1c1t-{secrets.token_hex(4)}"

SNOOP = textwrap.dedent("""
    import json, os, subprocess, sys
    given = json.loads(sys.stdin.read())  # on stdin: our own argv is readable by everyone
    needles = [n.encode() for n in given["needles"]]
    roots, skip = given["roots"], {str(pid) for pid in given["skip"]} | {str(os.getpid())}
    found, read, ffmpegs = [], 0, 0

    def look(where, data):
        for needle in needles:
            if needle in data:
                found.append(where)

    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid in skip:
            continue
        for name in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    data = f.read()
            except OSError:
                continue
            read += 1
            if name == "cmdline" and b"ffmpeg" in data.split(b"\\0")[0]:
                ffmpegs += 1
            look(f"/proc/{pid}/{name}", data)
    for root in roots:
        for top, dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(top, name)
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                read += 1
                look(path, data)
    look("status output", given["status"].encode())
    print(json.dumps({"found": found, "read": read, "ffmpegs": ffmpegs}))
""")


@pytest.fixture
def shared_tmp():
    """A directory other users can traverse (pytest's tmp_path is private to root)."""
    path = shared_tmpdir("ms-priv-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cameras():
    with RtspServer(user="admin", password=PASSWORD) as built, \
            RtspServer(user="admin", password=EXPLICIT_PASSWORD) as explicit:
        yield built, explicit


class Daemon:
    """``mirror-supervisor run --user nobody --log-file ...``, as root or entirely as that user
    (then from ``python``, an interpreter that user can run: the checkout may be private to root)."""

    def __init__(self, tmp: Path, db: Path, mirror: Path, user: pwd.struct_passwd, python: UserPython | None) -> None:
        self.tmp, self.db, self.mirror, self.user = tmp, db, mirror, user
        self.state = tmp / "state"
        self.log_path = tmp / "log" / "mirror-supervisor.log"
        self.log_path.parent.mkdir()
        self.cache = tmp / "cache"
        self.settings = ["--db", str(db), "--mirror-dir", str(mirror), "--state-dir", str(self.state),
                         "--cache-dir", str(self.cache), "--user", RUN_AS]
        self.status_argv = [sys.executable, "-m", "mirror_supervisor", "status", *self.settings]
        run = ["run", *self.settings, "--poll-interval", "0.5", "--stall-timeout", "4", "--log-file", str(self.log_path)]
        env = {**os.environ, "HOME": str(tmp)}
        if python is not None:
            os.chown(self.log_path.parent, user.pw_uid, user.pw_gid)
            argv, env = python.argv(user.pw_uid, user.pw_gid, *run), python.env(env)
        else:
            argv = [sys.executable, "-m", "mirror_supervisor", *run]
        # What it prints before its log file is open (a failed start): root's alone, like the log.
        self.stderr_path = tmp / "stderr"
        stderr = os.open(self.stderr_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                         env=env, cwd="/")
        finally:
            os.close(stderr)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        """True while the master runs; a master that exited fails the test at once, saying why."""
        if self.proc.poll() is not None:
            said = self.stderr_path.read_text(errors="replace")[-2000:] + self.log()[-2000:]
            raise AssertionError(f"the master exited with status {self.proc.returncode}:\n{said}")
        return True

    def one_each(self, ids: set[str]) -> dict[str, procs.WorkerView]:
        def check():
            self.running()
            table = procs.workers(self.proc.pid)
            if set(table) == ids and all(len(v) == 1 and len(v[0].ffmpeg_pids) == 1 for v in table.values()):
                return {cid: views[0] for cid, views in table.items()}
            return None
        return procs.wait_for(f"one worker+ffmpeg for each of {sorted(ids)}", check, 30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill_everything(self) -> None:
        if self.proc.poll() is None:
            try:
                tree = psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                tree = []
            self.proc.kill()
            self.proc.wait(timeout=10)
            for child in tree:
                try:
                    child.kill()
                except psutil.NoSuchProcess:
                    pass
        for pid in procs.ffmpegs_writing(self.mirror):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _setup(shared_tmp: Path, cameras, user: pwd.struct_passwd, python: UserPython | None) -> tuple[Daemon, NvrDatabase]:
    """The daemon with the master as root, or (``python``: the interpreter to run) as ``user``."""
    built, explicit = cameras
    data, mirror = shared_tmp / "data", shared_tmp / "mirror"
    data.mkdir(mode=0o700)  # the NVR keeps its database (with the passwords) to itself
    mirror.mkdir()
    db = NvrDatabase(data / "nvr.db")
    db.add("built", vendor="hikvision", address="127.0.0.1", rtsp_port=built.port, username="admin",
           password=PASSWORD, segment_seconds=2, mirror_enabled=1)
    db.add_mirrored("explicit", explicit.url("/live", user="admin", password=EXPLICIT_PASSWORD))
    if python is not None:  # the operator gives the user its database (read) and mirror, state and cache dirs
        (shared_tmp / "state").mkdir(mode=0o750)
        (shared_tmp / "cache").mkdir()
        (shared_tmp / "cache").chmod(0o755)  # as systemd's StateDirectory= makes it: the master closes it
        for path in (data, mirror, shared_tmp / "state", shared_tmp / "cache", *data.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)
    daemon = Daemon(shared_tmp, db.path, mirror, user, python)
    return daemon, db


def _secrets() -> list[str]:
    forms = set()
    for password in (PASSWORD, EXPLICIT_PASSWORD):
        forms |= {password, quote(password, safe=""), quote(password), quote(password, safe="/:@")}
    return sorted(forms)


def _recording(daemon: Daemon, camera: str) -> None:
    procs.wait_for(f"{camera} recording", lambda: daemon.running() and f"{camera} recording segment=" in daemon.log(), 30)


def _snoop(daemon: Daemon, cameras, python: UserPython) -> dict:
    """What the second user can read. The synthetic cameras are skipped: they take their
    password on their own command line (test equipment, not part of the supervisor). Its
    ``status`` runs from ``python``, which it can run wherever the checkout is."""
    inputs = Path(tempfile.gettempdir()) / f"mirror-supervisor-{daemon.user.pw_uid}-inputs"
    status = subprocess.run(python.argv(SNOOPER_UID, SNOOPER_UID, "status", *daemon.settings), capture_output=True,
                            text=True, timeout=60, cwd="/", env=python.env(os.environ))
    # It answered (for it, the daemon is "not running": the state dir is closed to it), so its
    # output is one more place a password must not be.
    assert status.returncode == 0 or status.stdout.startswith("mirror-supervisor: "), status.stdout + status.stderr
    given = {"needles": _secrets(), "roots": [str(daemon.tmp), str(inputs)],
             "skip": [camera._proc.pid for camera in cameras], "status": status.stdout + status.stderr}
    # Debian's python: stdlib only, reachable by any user.
    run = subprocess.run([*as_user(SNOOPER_UID, SNOOPER_UID), "/usr/bin/python3", "-c", SNOOP], input=json.dumps(given),
                         capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]}, cwd="/")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _readable_by_snooper(paths: list[Path]) -> list[str]:
    """Which of ``paths`` (directories: listed; files: read) the second user can get at."""
    probe = ("import json, os, sys\nok = []\nfor p in json.loads(sys.stdin.read()):\n"
             "    try:\n        os.listdir(p) if os.path.isdir(p) else open(p, 'rb').read()\n"
             "    except OSError:\n        continue\n    ok.append(p)\nprint(json.dumps(ok))\n")
    run = subprocess.run([*as_user(SNOOPER_UID, SNOOPER_UID), "/usr/bin/python3", "-c", probe],
                         input=json.dumps([str(p) for p in paths]), capture_output=True, text=True, timeout=60,
                         env={"PATH": os.environ["PATH"]}, cwd="/")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _ids_of(table: dict[str, procs.WorkerView]) -> dict[str, tuple[set[int], set[int], int]] | None:
    """Per camera: its worker's uids and gids, its ffmpeg's, and that ffmpeg's real gid; None when
    one of them ended meanwhile (read the table again)."""
    try:
        return {camera: (_uids(view.pid), _uids(view.ffmpeg_pids[0]), psutil.Process(view.ffmpeg_pids[0]).gids().real)
                for camera, view in table.items()}
    except psutil.NoSuchProcess:
        return None


def _uids(pid: int) -> set[int]:
    uids, gids = psutil.Process(pid).uids(), psutil.Process(pid).gids()
    return {*uids, *gids}


@pytest.mark.parametrize("master_as_user", [False, True], ids=["master-root", "master-as-user"])
def test_no_password_readable_by_another_user_and_ffmpeg_runs_as_the_configured_user(shared_tmp, cameras, master_as_user,
                                                                                      user_python):
    user = unprivileged(RUN_AS)
    daemon, _ = _setup(shared_tmp, cameras, user, user_python if master_as_user else None)
    try:
        daemon.one_each({"built", "explicit"})
        for camera in ("built", "explicit"):
            _recording(daemon, camera)
        # Read once recording began, and again when a process ends between listing and reading it
        # (a worker restarts its ffmpeg after a refused first connection on a loaded machine).
        ids = procs.wait_for("the ids of each worker and its ffmpeg", lambda: _ids_of(daemon.one_each({"built", "explicit"})),
                             30)
        for camera, (worker, ffmpeg, ffmpeg_real_gid) in ids.items():
            assert worker == {user.pw_uid, user.pw_gid}, "worker keeps root"
            assert ffmpeg == {user.pw_uid, user.pw_gid}, "ffmpeg is not the configured user"
            assert ffmpeg_real_gid == user.pw_gid
            assert os.stat(daemon.mirror / camera).st_uid == user.pw_uid
        seen = _snoop(daemon, cameras, user_python)
        assert seen["found"] == [], f"a password is readable by another local user in {seen['found']}"
        assert seen["ffmpegs"] >= 2 and seen["read"] > 50, f"the snooper saw too little to mean anything: {seen}"
        # What root sees is masked too; the supervisor's own files are closed to the world.
        status = subprocess.run(daemon.status_argv, capture_output=True, text=True, timeout=30)
        assert status.returncode == 0 and "recording" in status.stdout, status.stdout + status.stderr
        for text in (status.stdout, daemon.log()):
            assert not [s for s in _secrets() if s in text]
        # The camera cache holds the passwords (as the NVR's database does): the master's own, closed.
        master_uid = user.pw_uid if master_as_user else 0
        (cache,) = procs.wait_for("the camera cache written", lambda: list(daemon.cache.glob("cameras-*.json")), 15)
        held = cache.read_text()
        assert PASSWORD in held and quote(EXPLICIT_PASSWORD, safe="") in held, "else the snoop above means nothing"
        assert (cache.stat().st_uid, stat.S_IMODE(cache.stat().st_mode)) == (master_uid, 0o600)
        assert (daemon.cache.stat().st_uid, stat.S_IMODE(daemon.cache.stat().st_mode)) == (master_uid, 0o700)
        assert _readable_by_snooper([daemon.cache, cache]) == [], "another user reads the camera cache"
        assert stat.S_IMODE(os.stat(daemon.state).st_mode) & 0o027 == 0
        assert stat.S_IMODE(os.stat(daemon.log_path).st_mode) & 0o007 == 0
        for path in daemon.state.iterdir():
            assert stat.S_IMODE(path.lstat().st_mode) & 0o002 == 0, path
        # The input scripts exist only until ffmpeg has read them.
        inputs = Path(tempfile.gettempdir()) / f"mirror-supervisor-{user.pw_uid}-inputs"
        ours = [inputs, *(p for p in inputs.rglob("*") if p.is_dir())]  # a subdirectory per mirror dir
        assert len(ours) >= 2 and all(stat.S_IMODE(p.stat().st_mode) == 0o700 and p.stat().st_uid == user.pw_uid
                                      for p in ours)
        # This master's own subdirectory: the other parameter's master (same user) may run meanwhile.
        own = ffmpeg_command.input_dir(daemon.mirror, user.pw_uid)
        assert own in ours and not [p for p in own.iterdir() if p.name.startswith(("built.", "explicit."))]
        assert daemon.stop() == 0
        assert not procs.ffmpegs_writing(daemon.mirror)
        for camera in ("built", "explicit"):
            files = sorted((daemon.mirror / camera).glob("*.mp4"))
            assert files and all(p.stat().st_uid == user.pw_uid for p in files)
            # The newest may have begun a moment before the stop (seen: 0.13 s); the one before is whole.
            newest, whole = procs.probe(files[-1]), procs.probe(files[-2] if len(files) > 1 else files[-1])
            assert newest.get("video_codec") == "h264" and newest["duration"] > 0, (files[-1], newest)
            assert whole.get("video_codec") == "h264" and whole["duration"] > 0.5, (files, whole)
        # The workers, as the configured user, kept the segment index (in a mirror dir that is
        # root's when the master is), and root's `coverage` uses it without taking it over.
        assert "cannot index segment" not in daemon.log()
        def read_index() -> dict:  # in a fork: root acts as the index's owner only where no other thread runs
            with SegmentIndex(daemon.mirror, write=False) as index:
                return {camera: index.rows(camera, "0", "9") for camera in ("built", "explicit")}

        indexed = in_fork(read_index)
        assert all(any(row.playable for row in rows.values()) for rows in indexed.values()), indexed
        report = subprocess.run([*daemon.status_argv[:3], "coverage", *daemon.settings, "--since", "1h", "--json"],
                                capture_output=True, text=True, timeout=60)
        assert report.returncode == 0, report.stderr
        assert not json.loads(report.stdout)["notes"], report.stdout
        owned = [p for p in index_path(daemon.mirror).parent.iterdir() if p.stat().st_uid != user.pw_uid]
        assert not owned, f"files of the index the workers cannot write: {owned}"
    finally:
        daemon.kill_everything()


def test_reload_and_stall_work_as_the_unprivileged_user(shared_tmp, cameras):
    """A changed password restarts the camera (new input, new key), a stalled camera is restarted,
    all as the configured user; stop is clean."""
    user = unprivileged(RUN_AS)
    built, _ = cameras
    daemon, db = _setup(shared_tmp, cameras, user, None)
    try:
        before = daemon.one_each({"built", "explicit"})
        _recording(daemon, "built")
        db.update("built", password="wrong-password")
        daemon.proc.send_signal(signal.SIGHUP)
        procs.wait_for("the changed camera restarted",
                       lambda: daemon.one_each({"built", "explicit"})["built"].pid != before["built"].pid, 30)
        procs.wait_for("401 in the log", lambda: "401" in daemon.log(), 30)
        assert daemon.one_each({"built", "explicit"})["explicit"].pid == before["explicit"].pid
        assert "wrong-password" not in daemon.log()
        db.update("built", password=PASSWORD)
        daemon.proc.send_signal(signal.SIGHUP)
        procs.wait_for("recording again", lambda: daemon.log().count("built recording segment=") >= 2, 40)
        built.pause()
        try:
            procs.wait_for("stall detected", lambda: "built stalled: ffmpeg wrote nothing" in daemon.log(), 30)
        finally:
            built.resume()
        procs.wait_for("recording after the stall", lambda: daemon.log().count("built recording segment=") >= 3, 60)
        for view in daemon.one_each({"built", "explicit"}).values():
            assert _uids(view.ffmpeg_pids[0]) == {user.pw_uid, user.pw_gid}
        assert daemon.stop() == 0
        assert not procs.ffmpegs_writing(daemon.mirror)
    finally:
        daemon.kill_everything()


INIT_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "init.d" / "mirror-supervisor"


def test_init_script_runs_workers_and_ffmpeg_as_run_as(shared_tmp, cameras):
    user = unprivileged(RUN_AS)
    built, _ = cameras
    data, mirror, state = shared_tmp / "data", shared_tmp / "mirror", shared_tmp / "state"
    data.mkdir(mode=0o700)
    mirror.mkdir()
    db = NvrDatabase(data / "nvr.db")
    db.add("built", vendor="hikvision", address="127.0.0.1", rtsp_port=built.port, username="admin",
           password=PASSWORD, segment_seconds=2, mirror_enabled=1)
    log = shared_tmp / "daemon.log"
    defaults = shared_tmp / "default"
    common = (f"DAEMON={Path(sys.executable).parent / 'mirror-supervisor'}\nLOG_FILE={log}\n"
              f"MIRROR_SUPERVISOR_DB={db.path}\nMIRROR_SUPERVISOR_MIRROR_DIR={mirror}\n"
              f"MIRROR_SUPERVISOR_STATE_DIR={state}\nMIRROR_SUPERVISOR_POLL_INTERVAL=600\n"
              f"MIRROR_SUPERVISOR_CACHE_DIR={shared_tmp / 'cache'}\n")

    def init(action: str) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ["PATH"], "MIRROR_SUPERVISOR_DEFAULTS": str(defaults)}
        return subprocess.run(["sh", str(INIT_SCRIPT), action], capture_output=True, text=True, timeout=60, env=env)

    defaults.write_text(common + "RUN_AS=no-such-user-here\n")
    refused = init("start")
    assert refused.returncode != 0 and "user no-such-user-here does not exist" in refused.stderr
    defaults.write_text(common + f"RUN_AS={RUN_AS}\n")
    pid = None
    try:
        assert init("start").returncode == 0
        pid = int((state / "mirror-supervisor.pid").read_text())
        view = procs.wait_for("worker with ffmpeg", lambda: (w := procs.workers(pid).get("built")) and
                              w[0].ffmpeg_pids and w[0], 30)
        assert psutil.Process(pid).uids().real == 0, "the init script's master stays root"
        assert _uids(view.pid) == _uids(view.ffmpeg_pids[0]) == {user.pw_uid, user.pw_gid}
        assert log.stat().st_uid == user.pw_uid and stat.S_IMODE(log.stat().st_mode) == 0o640
        procs.wait_for("recording", lambda: "built recording segment=" in log.read_text(), 30)
        assert init("stop").returncode == 0
        assert not procs.ffmpegs_writing(mirror)
        assert PASSWORD not in log.read_text()
    finally:
        if pid and procs.alive(pid):
            for child in psutil.Process(pid).children(recursive=True):
                child.kill()
            os.kill(pid, signal.SIGKILL)
