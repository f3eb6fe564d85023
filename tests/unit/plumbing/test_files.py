"""The supervisor's own files: modes, planted symlinks, state dirs another user could control.

Tests run as root, so "another user" is made with ``os.chown`` to an unused uid.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import stat
import time
from pathlib import Path

import pytest

from mirror_supervisor import cli
from mirror_supervisor.plumbing import daemon, logs
from mirror_supervisor.plumbing.files import write_atomically
from mirror_supervisor.settings import Settings, SettingsError

OTHER_UID = 54321


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def open_umask():
    """umask 0: what we create must be restricted by our own modes, not by a lucky umask."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_status_file_is_not_world_readable(tmp_path, open_umask):
    write_atomically(tmp_path / "status.json", "{}")
    assert mode(tmp_path / "status.json") & 0o007 == 0
    assert (tmp_path / "status.json").read_text() == "{}"


def test_pidfile_is_written_atomically_and_readable(tmp_path, open_umask):
    daemon.write_pidfile(tmp_path, 4242)
    assert daemon.read_pid(tmp_path) == 4242
    assert [p.name for p in tmp_path.iterdir()] == [daemon.PIDFILE]  # no temporary file left


def test_a_planted_symlink_at_the_temporary_name_is_never_followed(tmp_path, monkeypatch):
    """Another user who can write the state dir plants links at every name it can predict."""
    target = tmp_path / "victim"
    target.write_text("precious\n")
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setattr(secrets, "token_hex", lambda *_: "guessed")
    for name in (f".status.json.{os.getpid()}.tmp", ".status.json.guessed.tmp"):
        (state / name).symlink_to(target)
    with pytest.raises(FileExistsError):
        write_atomically(state / "status.json", "{}")
    assert target.read_text() == "precious\n"
    assert not (state / "status.json").exists()


def test_a_symlink_at_the_final_name_is_replaced_not_followed(tmp_path):
    target = tmp_path / "victim"
    target.write_text("precious\n")
    (tmp_path / "status.json").symlink_to(target)
    write_atomically(tmp_path / "status.json", "{}")
    assert target.read_text() == "precious\n"
    assert not (tmp_path / "status.json").is_symlink()


def test_log_file_is_created_0640_and_never_through_a_symlink(tmp_path, open_umask):
    log = tmp_path / "daemon.log"
    logs.setup("INFO", path=str(log))
    logs.master().info("hello")
    logging.getLogger(logs.LOGGER_NAME).handlers[0].flush()
    assert mode(log) == 0o640 and "hello" in log.read_text()
    log.rename(tmp_path / "daemon.log.1")  # logrotate moved it: the handler re-creates it
    logs.master().info("again")
    assert mode(log) == 0o640 and "again" in log.read_text()

    target = tmp_path / "victim"
    target.write_text("precious\n")
    planted = tmp_path / "planted.log"
    planted.symlink_to(target)
    with pytest.raises(OSError):
        logs.setup("INFO", path=str(planted))
    assert target.read_text() == "precious\n"
    logging.getLogger(logs.LOGGER_NAME).handlers.clear()


def state_settings(state_dir: Path) -> Settings:
    return Settings(db=Path("/nonexistent.db"), mirror_dir=Path("/nonexistent"), state_dir=state_dir)


def test_a_new_state_dir_is_0750(tmp_path, open_umask):
    state = tmp_path / "run" / "mirror-supervisor"
    cli._prepare_state_dir(state_settings(state))
    assert mode(state) == 0o750


@pytest.mark.parametrize("how", ["other owner", "mode 0777", "mode 0770", "symlink"])
def test_a_state_dir_someone_else_can_change_is_refused(tmp_path, how):
    """/tmp/mirror-supervisor-<uid> (the non-root fallback) can be created first by anyone."""
    state = tmp_path / f"mirror-supervisor-{os.geteuid()}"
    if how == "symlink":
        elsewhere = tmp_path / "theirs"
        elsewhere.mkdir(mode=0o700)
        state.symlink_to(elsewhere)
    else:
        state.mkdir(mode=0o700)
        if how == "other owner":
            os.chown(state, OTHER_UID, OTHER_UID)
        else:
            os.chmod(state, int(how.split()[1], 8))
    with pytest.raises(SettingsError) as info:
        cli._prepare_state_dir(state_settings(state))
    message = str(info.value)
    assert message.startswith(f"--state-dir: {str(state)!r}") and "\n" not in message


def test_an_existing_state_dir_of_ours_is_accepted_as_it_is(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    cli._prepare_state_dir(state_settings(state))
    assert mode(state) == 0o755  # the operator's choice of read bits is left alone


def test_mirror_claim_names_the_holder_and_refuses_a_second_master(tmp_path, monkeypatch):
    fd = daemon.acquire_mirror_lock(tmp_path, wait=0)
    try:
        assert list(tmp_path.iterdir()) == [], "nothing may be kept open on the mirror volume"
        monkeypatch.setattr(daemon, "is_master", lambda pid: pid == os.getpid())
        with pytest.raises(daemon.AlreadyRunning) as info:
            daemon.acquire_mirror_lock(tmp_path, wait=0)
        assert str(info.value) == f"mirror dir {tmp_path} is in use by another master, pid {os.getpid()}"
        monkeypatch.setattr(daemon, "is_master", lambda pid: False)  # its workers, still stopping
        with pytest.raises(daemon.AlreadyRunning, match="by processes of another master"):
            daemon.acquire_mirror_lock(tmp_path, wait=0)
    finally:
        os.close(fd)
    again = daemon.acquire_mirror_lock(tmp_path, wait=0)
    os.close(again)


def test_mirror_claim_follows_the_directory_not_the_path(tmp_path, monkeypatch):
    """A symlink to the same directory is the same mirror."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    monkeypatch.setattr(daemon, "is_master", lambda pid: True)
    fd = daemon.acquire_mirror_lock(real, wait=0)
    try:
        with pytest.raises(daemon.AlreadyRunning):
            daemon.acquire_mirror_lock(tmp_path / "link", wait=0)
    finally:
        os.close(fd)


def test_mirror_claim_is_inherited_by_a_forked_child(tmp_path, monkeypatch):
    """Like the state-dir lock: workers keep it while the master is gone."""
    fd = daemon.acquire_mirror_lock(tmp_path, wait=0)
    child = os.fork()
    if child == 0:  # a worker: holds what it inherited until it is killed
        time.sleep(60)
        os._exit(0)
    os.close(fd)  # the master is gone
    monkeypatch.setattr(daemon, "is_master", lambda pid: False)
    try:
        with pytest.raises(daemon.AlreadyRunning, match="did not exit"):
            daemon.acquire_mirror_lock(tmp_path, wait=0.5)
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    os.close(daemon.acquire_mirror_lock(tmp_path, wait=0))
