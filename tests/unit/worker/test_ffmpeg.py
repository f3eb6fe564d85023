"""The ffmpeg argv (docs/design.md, "ffmpeg command") and its use as the recording key."""

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from mirror_supervisor.cameras.camera import parse_row
from mirror_supervisor.worker import ffmpeg
from mirror_supervisor.worker.ffmpeg import build_command, environment

BASE = {"id": "cam1", "enabled": 1, "record_enabled": 1, "mirror_enabled": 1, "vendor": "hikvision", "address": "h"}


def command(**columns):
    return build_command("/usr/bin/ffmpeg", parse_row({**BASE, **columns}), Path("/mirror"))


def test_exact_argument_order():
    argv = command(segment_seconds=60)
    name = argv[argv.index("-i") + 1]
    assert name.startswith("cam1.") and name.endswith(".ffconcat") and "/" not in name
    assert argv == (
        "/usr/bin/ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
        "-f", "concat", "-safe", "0", "-protocol_whitelist", "file",
        "-i", name, "-c", "copy", "-an",
        "-f", "segment", "-segment_time", "60", "-segment_format", "mp4",
        "-segment_format_options", "movflags=+frag_keyframe+empty_moov+default_base_moof:flush_packets=1",
        "-reset_timestamps", "1", "-strftime", "1", "/mirror/cam1/%Y%m%d_%H%M%S.mp4",
    )


def test_audio_copied_when_asked():
    argv = command(record_audio=1)
    assert "-an" not in argv and argv[argv.index("-c:a") + 1] == "copy"


def test_segment_time_has_a_floor_of_two():
    argv = command(segment_seconds=1)
    assert argv[argv.index("-segment_time") + 1] == "2"


def test_rtsp_transport_only_for_rtsp_inputs():
    assert "option rtsp_transport 'tcp'" in ffmpeg.concat_script("rtsps://h/x")
    assert "rtsp_transport" not in ffmpeg.concat_script("http://h/x.mjpg")


def test_no_url_or_credential_in_the_argv():
    argv = command(username="admin", password="Zq ss/w%rd", main_stream_url="")
    # The input script's name holds a keyed digest, new every run: hex that may spell "554" by chance.
    (script,) = [arg for arg in argv if arg.endswith(".ffconcat")]
    assert re.fullmatch(r"cam1\.[0-9a-f]{20}\.ffconcat", script), script
    text = " ".join(arg for arg in argv if arg != script)
    for needle in ("admin", "Zq", "w%rd", "Zq%20ss", "rtsp:", "554", " h:"):
        assert needle not in text, needle


def test_each_scheme_gets_only_its_protocols_and_stream_formats():
    assert ffmpeg.input_options("rtsp://u:p@h/x") == [
        ("rtsp_transport", "tcp"), ("timeout", "15000000"), ("protocol_whitelist", "rtsp,tcp"),
        ("format_whitelist", "rtsp")]
    assert dict(ffmpeg.input_options("rtsps://h/x"))["protocol_whitelist"] == "rtsps,tls,tcp"
    https = dict(ffmpeg.input_options("HTTPS://h/x"))
    assert https["protocol_whitelist"] == "https,tls,tcp"
    for hostile in ("hls", "concat", "file", "http", "image2", "dash", "rtsp"):
        assert hostile not in https["format_whitelist"].split(",")


def test_input_file_is_private_and_never_follows_links(tmp_path):
    camera = parse_row({**BASE, "username": "admin", "password": "pw"})
    directory = tmp_path / "in"
    ffmpeg.prepare_input_dir(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    (directory / ffmpeg.input_name(camera)).symlink_to(tmp_path / "target")
    path = ffmpeg.write_input(directory, camera)
    assert not (tmp_path / "target").exists() and not path.is_symlink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == ffmpeg.concat_script(camera.url)
    assert os.listdir(directory) == [path.name]
    ffmpeg.remove_input(path)
    assert os.listdir(directory) == []


def test_a_planted_or_open_input_dir_is_refused(tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(PermissionError):
        ffmpeg.prepare_input_dir(link)
    opened = tmp_path / "open"
    opened.mkdir(mode=0o777)
    os.chmod(opened, 0o777)
    ffmpeg.prepare_input_dir(opened)
    assert stat.S_IMODE(opened.stat().st_mode) == 0o700


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_ffmpeg_reads_back_exactly_the_url_whatever_it_contains(tmp_path):
    """The quoting, checked by ffmpeg itself: it names the URL it failed to open (port 1: refused)."""
    for url in ("rtsp://a:b'c\\d@127.0.0.1:1/x?y='z'#", "http://127.0.0.1:1/a'b"):
        camera = parse_row({**BASE, "main_stream_url": url})
        assert camera.problem is None, camera.problem
        ffmpeg.write_input(tmp_path, camera)
        run = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-f", "concat", "-safe", "0",
                              "-protocol_whitelist", "file", "-i", ffmpeg.input_name(camera), "-f", "null", "-"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=20)
        assert f"Impossible to open '{url}'" in run.stderr, run.stderr


def test_key_changes_with_recording_fields_only():
    same = command(name="Gate", retention_hours=24)
    assert same == command(name="Renamed", retention_hours=48)
    for change in ({"segment_seconds": 30}, {"record_audio": 1}, {"record_stream": "sub"},
                   {"username": "u", "password": "p"}, {"main_stream_url": "rtsp://other/x"}):
        assert command(**change) != same, change
    assert command(username="u", password="p") != command(username="u", password="q")


def test_environment_forces_utc():
    assert environment({"TZ": "Europe/Oslo", "PATH": "/bin"}) == {"TZ": "UTC", "PATH": "/bin"}


def test_scripts_left_by_a_killed_worker_are_removed_at_the_next_start(tmp_path):
    old = parse_row({**BASE, "username": "admin", "password": "old"})
    new = parse_row({**BASE, "username": "admin", "password": "new"})
    other = parse_row({**BASE, "id": "cam1.x", "username": "admin", "password": "old"})
    left = ffmpeg.write_input(tmp_path, old)
    kept = ffmpeg.write_input(tmp_path, other)
    path = ffmpeg.write_input(tmp_path, new)
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, kept.name]) and not left.exists()


def test_two_masters_keep_their_scripts_apart(tmp_path, monkeypatch, caplog):
    """Two mirror dirs on one host, a camera of the same id in each: writing one master's script
    does not remove the other's as stale (each worker removes its camera's old scripts)."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    first = parse_row({**BASE, "username": "admin", "password": "one"})
    second = parse_row({**BASE, "username": "admin", "password": "two"})
    dir_a, script_a = ffmpeg.open_input(None, first, None, scope=tmp_path / "mirror-a")
    dir_b, script_b = ffmpeg.open_input(None, second, None, scope=tmp_path / "mirror-b")
    assert dir_a != dir_b and dir_a.parent == dir_b.parent == ffmpeg.input_dir()
    assert script_a.exists() and script_b.exists()
    for path in (dir_a.parent, dir_a, dir_b):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    again, script_c = ffmpeg.open_input(None, second, None, scope=tmp_path / "mirror-a")
    assert again == dir_a and script_c.exists() and not script_a.exists(), "a stale script of its own goes"


def test_scripts_of_the_old_layout_are_removed_and_nothing_else(tmp_path, monkeypatch):
    """Before the per-mirror-dir subdirectories, scripts lay in the input dir itself; nothing looks
    there now, so the master removes them at start: only regular files of ours with our names,
    never through a link, never in a look-alike directory of someone else's."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    uid = os.geteuid()
    base = ffmpeg.input_dir(uid=uid)
    ffmpeg.prepare_input_dir(base)
    old = [base / f"cam.{'a1' * 10}.ffconcat", base / f"cam.1.{'0f' * 10}.ffconcat"]
    for path in old:
        path.write_text("ffconcat version 1.0\nfile 'rtsp://admin:secret@cam/'\n")
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = base / f"link.{'b2' * 10}.ffconcat"
    link.symlink_to(victim)
    scope = ffmpeg.input_dir(tmp_path / "mirror")
    ffmpeg.prepare_input_dir(scope)
    current = scope / f"cam.{'c3' * 10}.ffconcat"
    current.write_text("in use")
    other = base / "notes.txt"
    other.write_text("not ours")
    assert ffmpeg.remove_old_layout_inputs(uid) == 2
    assert not any(p.exists() for p in old)
    assert link.is_symlink() and victim.read_text() == "keep" and current.exists() and other.exists()
    assert ffmpeg.remove_old_layout_inputs(uid) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make files of other users")
def test_root_removes_old_scripts_only_from_that_users_private_directory(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    base = ffmpeg.input_dir(uid=65534)
    base.mkdir(mode=0o700)
    os.chown(base, 65534, 65534)
    planted = base / f"cam.{'d4' * 10}.ffconcat"
    planted.write_text("a file of root's, in that user's directory")  # not the user's: kept
    script = base / f"cam.{'e5' * 10}.ffconcat"
    script.write_text("left by a killed worker")
    os.chown(script, 65534, 65534)
    assert ffmpeg.remove_old_layout_inputs(65534) == 1
    assert planted.exists() and not script.exists()
    os.chown(planted, 65534, 65534)  # a candidate now, but:
    os.chown(base, 54321, 54321)  # someone else made the name first: not the user's to clean
    assert ffmpeg.remove_old_layout_inputs(65534) == 0 and planted.exists()
    os.chown(base, 65534, 65534)
    base.chmod(0o755)  # not private: not a directory of ours either
    assert ffmpeg.remove_old_layout_inputs(65534) == 0 and planted.exists()
