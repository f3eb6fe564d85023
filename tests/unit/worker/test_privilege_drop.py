"""Least privilege in the units that implement it: check's findings, the worker's user switch."""

import os
import pwd
from pathlib import Path

import pytest

from mirror_supervisor import check
from mirror_supervisor.cameras.camera import Camera
from mirror_supervisor.settings import Settings
from mirror_supervisor.worker import privileges
from mirror_supervisor.worker.worker import Worker, WorkerSpec


def settings(tmp_path: Path, user: str | None) -> Settings:
    return Settings(db=tmp_path / "db", mirror_dir=tmp_path, user=user)


def test_check_warns_when_ffmpeg_would_run_as_root(tmp_path):
    (line,) = check.security_findings(settings(tmp_path, None), euid=0)
    assert line.startswith("WARNING: workers and ffmpeg run as root")
    assert "uid 1000" in check.security_findings(settings(tmp_path, None), euid=1000)[0]


def test_check_names_the_user_and_a_mirror_dir_it_cannot_write(tmp_path):
    nobody = pwd.getpwnam("nobody")
    tmp_path.chmod(0o755)
    lines = check.security_findings(settings(tmp_path, "nobody"), euid=0)
    assert lines[0].startswith(f"security: workers and ffmpeg run as user nobody (uid {nobody.pw_uid}")
    assert lines[1].startswith(f"WARNING: mirror dir {tmp_path} is not writable by user nobody")
    os.chown(tmp_path, nobody.pw_uid, nobody.pw_gid) if os.geteuid() == 0 else tmp_path.chmod(0o777)
    assert len(check.security_findings(settings(tmp_path, "nobody"), euid=0)) == 1


def test_check_refuses_a_master_that_cannot_switch(tmp_path):
    (line,) = check.security_findings(settings(tmp_path, "nobody"), euid=12345)
    assert line.startswith("ERROR: --user 'nobody': the master must run as root or as that user")


def _worker(tmp_path: Path, run_as: str | None) -> Worker:
    spec = WorkerSpec(camera=Camera(id="cam", url="rtsp://127.0.0.1/x"), argv=("ffmpeg",), directory=tmp_path / "cam",
                      generation=1, stop_timeout=1.0, master_pid=os.getppid(), status_fd=-1, run_as=run_as)
    return Worker(spec)


def test_a_worker_without_user_or_already_that_user_does_not_switch(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "setuid", calls.append)
    assert _worker(tmp_path, None).become_user()
    me = pwd.getpwuid(os.geteuid()).pw_name
    if os.getegid() == pwd.getpwnam(me).pw_gid:
        assert _worker(tmp_path, me).become_user()
    assert calls == []


def test_a_worker_that_cannot_switch_stays_in_error_and_never_runs_ffmpeg_as_root(tmp_path, monkeypatch):
    monkeypatch.setattr("setproctitle.setproctitle", lambda title: None)
    worker = _worker(tmp_path, "no-such-user-x")
    assert not worker.become_user()
    assert worker.state == "error" and "no such user" in (worker.last_error or "")
    if os.geteuid() == 0:
        pytest.skip("the not-root case needs a non-root test run")
    worker = _worker(tmp_path, "nobody")
    assert not worker.become_user()
    assert "cannot switch user" in (worker.last_error or "")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_the_camera_directory_is_made_the_users_through_no_link(tmp_path):
    nobody = pwd.getpwnam("nobody")
    worker = _worker(tmp_path, "nobody")
    privileges._give_directory(worker.spec.directory, nobody, worker.log)
    assert (tmp_path / "cam").stat().st_uid == nobody.pw_uid
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "cam").rmdir()
    (tmp_path / "cam").symlink_to(target)
    privileges._give_directory(worker.spec.directory, nobody, worker.log)
    assert target.stat().st_uid == 0, "followed a planted link"


def test_an_input_dir_taken_by_someone_else_is_replaced_by_a_random_one(tmp_path, monkeypatch):
    from mirror_supervisor.worker import ffmpeg
    monkeypatch.setattr("setproctitle.setproctitle", lambda title: None)
    taken = tmp_path / "taken"
    taken.symlink_to(tmp_path)  # not a directory of ours
    monkeypatch.setattr(ffmpeg, "input_dir", lambda scope=None: taken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    worker = _worker(tmp_path, None)
    worker.camera = Camera(id="cam", url="rtsp://u:p@127.0.0.1/x")
    directory = worker._write_input()
    assert directory is not None and directory.parent == tmp_path and directory.name.startswith("mirror-supervisor-cam-")
    assert (directory / ffmpeg.input_name(worker.camera)).exists()
    worker._remove_input()
    assert os.listdir(directory) == []
