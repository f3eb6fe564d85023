"""Fixtures with real parts: an RTSP server, an NVR database, the supervisor as a process."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from support.nvr import NvrDatabase
from support.rtsp import RtspServer
from support.supervisor import Supervisor
from support.users import UserPython, shared_tmpdir


def pytest_configure(config):
    """The suite tests real ffmpeg and a real RTSP camera: without them it cannot mean anything,
    so it stops at once, naming what is missing (``scripts/test`` installs all of it)."""
    missing = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if not Path("/usr/bin/python3").exists():
        missing.append("/usr/bin/python3")
    if missing:
        pytest.exit(f"missing {', '.join(missing)}: run scripts/test, which installs them", returncode=3)


@pytest.fixture(scope="session")
def user_python():
    """The interpreter and package for a test that starts our code as another user: laid out
    once per session (per xdist worker) where every user can reach it, since the checkout and
    its .venv may not be (see ``support/users.py``)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run as another user")
    root = shared_tmpdir("ms-python-")
    try:
        yield UserPython(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def camera_cache_dir(tmp_path, monkeypatch) -> Path:
    """Every master a test starts (and every command it runs) keeps its camera cache in the test's
    own directory, never in /var/lib or ~/.local/state, where tests would share one: a master
    started without a database would record another test's cameras."""
    path = tmp_path / "camera-cache"
    monkeypatch.setenv("MIRROR_SUPERVISOR_CACHE_DIR", str(path))
    return path


@pytest.fixture
def rtsp():
    server = RtspServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nvr(tmp_path) -> NvrDatabase:
    return NvrDatabase(tmp_path / "heldar.db")


@pytest.fixture
def mirror_dir(tmp_path) -> Path:
    path = tmp_path / "mirror"
    path.mkdir()
    return path


@pytest.fixture
def supervisor(tmp_path, nvr, mirror_dir):
    """A factory: ``supervisor("--poll-interval", "1")`` starts one; teardown leaves nothing alive."""
    started: list[Supervisor] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Supervisor:
        sup = Supervisor(tmp_path, nvr.path, mirror_dir, *args, env=env).start()
        started.append(sup)
        return sup

    yield start
    for sup in started:
        sup.kill_everything()
        # pytest shows a teardown's output only when the test failed: the master's last words then
        print(f"--- the last lines of {sup.log_path}:\n" + "\n".join(sup.log().splitlines()[-80:]))
