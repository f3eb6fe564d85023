"""Settings precedence and one-line errors (docs/design.md, "Settings")."""

import dataclasses
import os
from pathlib import Path

import psutil
import pytest

from mirror_supervisor import cli
from mirror_supervisor.plumbing import daemon, volume
from mirror_supervisor.setting_values import parse_bool
from mirror_supervisor.settings import Settings, SettingsError, absolute, check_mirror_dir, check_reload, load

NO_FLAGS: dict = {}


def test_defaults_need_only_the_mirror_dir():
    s = load({}, {"MIRROR_SUPERVISOR_MIRROR_DIR": "/m"}, cwd=Path("/start"))
    assert (s.db, s.mirror_dir, s.ffmpeg, s.poll_interval, s.stop_timeout, s.recorder_enabled) == (
        Path("/start/data/heldar.db"), Path("/m"), "ffmpeg", 5.0, 8.0, True)


def test_flag_beats_environment_beats_alias():
    env = {"MIRROR_SUPERVISOR_MIRROR_DIR": "/env", "HELDAR_MIRROR_RECORDINGS_DIR": "/heldar"}
    assert load({"mirror_dir": "/flag"}, env).mirror_dir == Path("/flag")
    assert load({}, env).mirror_dir == Path("/env")
    assert load({}, {"HELDAR_MIRROR_RECORDINGS_DIR": "/heldar"}).mirror_dir == Path("/heldar")


@pytest.mark.parametrize("url,path", [("sqlite://data/x.db", "/start/data/x.db"), ("sqlite:///var/x.db", "/var/x.db"),
                                      ("sqlite:x.db?mode=rwc", "/start/x.db")])
def test_heldar_database_url(url, path):
    env = {"HELDAR_DATABASE_URL": url, "MIRROR_SUPERVISOR_MIRROR_DIR": "/m"}
    assert load({}, env, cwd=Path("/start")).db == Path(path)


def test_config_file_is_below_environment(tmp_path):
    config = tmp_path / "default"
    config.write_text('# comment\nexport MIRROR_SUPERVISOR_MIRROR_DIR="/file"\nMIRROR_SUPERVISOR_POLL_INTERVAL=2\n'
                      "MIRROR_SUPERVISOR_RECORDER_ENABLED=off\n")
    s = load({}, {"MIRROR_SUPERVISOR_POLL_INTERVAL": "7"}, str(config))
    assert (s.mirror_dir, s.poll_interval, s.recorder_enabled, s.config) == (Path("/file"), 7.0, False, config)


@pytest.mark.parametrize(
    "flags,env,message",
    [
        ({}, {}, "--mirror-dir: required"),
        ({"mirror_dir": "/m", "poll_interval": "abc"}, {}, "--poll-interval: 'abc' is not a number"),
        ({"mirror_dir": "/m"}, {"MIRROR_SUPERVISOR_STOP_TIMEOUT": "-1"}, "MIRROR_SUPERVISOR_STOP_TIMEOUT:"),
        ({"mirror_dir": "/m"}, {"HELDAR_RECORDER_ENABLED": "perhaps"}, "HELDAR_RECORDER_ENABLED: 'perhaps' is not a boolean"),
        ({"mirror_dir": "/m"}, {"HELDAR_DATABASE_URL": "postgres://x"}, "HELDAR_DATABASE_URL:"),
        ({"mirror_dir": " "}, {}, "--mirror-dir: is empty"),
    ],
)
def test_errors_are_one_line_naming_the_setting(flags, env, message):
    with pytest.raises(SettingsError) as info:
        load(flags, env)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_unreadable_config_file(tmp_path):
    with pytest.raises(SettingsError, match="--config: cannot read"):
        load({}, {}, str(tmp_path / "missing"))
    bad = tmp_path / "bad"
    bad.write_text("this is not a setting\n")
    with pytest.raises(SettingsError, match="line 1 is not KEY=VALUE"):
        load({}, {}, str(bad))


def test_parse_bool():
    assert [parse_bool(v) for v in ("1", "TRUE", "yes", "On", "0", "false", "No", "off")] == [True] * 4 + [False] * 4


# -- relative paths: against the directory they were given in, not the daemon's / ----------------

def test_relative_flags_and_environment_resolve_against_the_start_directory():
    flags = {"mirror_dir": "rec", "state_dir": "./state/../run", "ffmpeg": "bin/ffmpeg"}
    s = load(flags, {"HELDAR_DATABASE_URL": "sqlite://data/x.db?mode=rwc"}, cwd=Path("/start"))
    assert (s.mirror_dir, s.state_dir, s.ffmpeg, s.db) == (
        Path("/start/rec"), Path("/start/run"), "/start/bin/ffmpeg", Path("/start/data/x.db"))
    assert load({}, {"MIRROR_SUPERVISOR_MIRROR_DIR": "m", "MIRROR_SUPERVISOR_DB": "/abs.db"},
                cwd=Path("/start")).db == Path("/abs.db")


def test_a_bare_ffmpeg_name_is_left_to_path_lookup():
    assert load({"mirror_dir": "/m", "ffmpeg": "ffmpeg7"}, {}, cwd=Path("/start")).ffmpeg == "ffmpeg7"


def test_config_file_values_resolve_against_the_config_files_directory(tmp_path, monkeypatch):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "default").write_text("MIRROR_SUPERVISOR_MIRROR_DIR=mirror\nHELDAR_DATABASE_URL=sqlite://../data/x.db\n"
                                 "MIRROR_SUPERVISOR_STATE_DIR=/run/abs\nMIRROR_SUPERVISOR_FFMPEG=./ff\n")
    monkeypatch.chdir("/")  # the daemon's cwd: must not matter
    for flag, env in (("etc/default", {}), (None, {"MIRROR_SUPERVISOR_CONFIG": "etc/default"})):
        s = load({}, env, flag, cwd=tmp_path)
        assert (s.config, s.mirror_dir, s.db, s.state_dir, s.ffmpeg) == (
            etc / "default", etc / "mirror", tmp_path / "data" / "x.db", Path("/run/abs"), str(etc / "ff"))


def test_flag_and_environment_still_beat_the_file_and_keep_their_own_base(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "default").write_text("MIRROR_SUPERVISOR_MIRROR_DIR=from-file\n")
    s = load({"mirror_dir": "from-flag"}, {}, "conf/default", cwd=tmp_path)
    assert s.mirror_dir == tmp_path / "from-flag"


def test_relative_path_without_a_working_directory_is_a_settings_error():
    with pytest.raises(SettingsError, match=r"^--mirror-dir: 'rec' is relative"):
        absolute("rec", None, "--mirror-dir")
    assert absolute("/abs/./x", None, "--mirror-dir") == Path("/abs/x")


# -- reload: what a running master may take ----------------------------------------------------

def settings_at(tmp_path: Path, **changes) -> Settings:
    base = Settings(db=tmp_path / "db", mirror_dir=tmp_path, state_dir=tmp_path / "state", ffmpeg="ffmpeg")
    return dataclasses.replace(base, **changes)


def test_reload_refuses_a_missing_mirror_dir_a_moved_state_dir_and_a_missing_ffmpeg(tmp_path):
    old = settings_at(tmp_path)
    cases = [
        (settings_at(tmp_path, mirror_dir=tmp_path / "gone"), "--mirror-dir: "),
        (settings_at(tmp_path, state_dir=tmp_path / "elsewhere"), "--state-dir: cannot change"),
        (settings_at(tmp_path, ffmpeg=str(tmp_path / "no-ffmpeg")), "--ffmpeg: "),
    ]
    for new, message in cases:
        with pytest.raises(SettingsError) as info:
            check_reload(old, new)
        assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_reload_does_not_look_at_an_unchanged_mirror_dir(tmp_path):
    """An unchanged mirror dir may be a hung NFS mount: the reload must not stat it."""
    hung = settings_at(tmp_path, mirror_dir=tmp_path / "not-even-there")
    check_reload(hung, dataclasses.replace(hung, poll_interval=2.0))


def _run_args(tmp_path: Path, *argv: str):
    args = cli.build_parser().parse_args(["run", *argv])
    args.cwd = tmp_path
    return args


def test_the_reload_callable_resolves_against_the_start_directory_after_chdir(tmp_path, monkeypatch):
    for name in ("m1", "m2", "state"):
        (tmp_path / name).mkdir()
    config = tmp_path / "default"
    config.write_text("MIRROR_SUPERVISOR_MIRROR_DIR=m1\nMIRROR_SUPERVISOR_STATE_DIR=state\n")
    for key in ("MIRROR_SUPERVISOR_MIRROR_DIR", "HELDAR_MIRROR_RECORDINGS_DIR", "MIRROR_SUPERVISOR_STATE_DIR",
                "MIRROR_SUPERVISOR_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    args = _run_args(tmp_path, "--config", "default", "--db", "heldar.db")
    start = cli._settings(args)
    lock = daemon.acquire_mirror_lock(start.mirror_dir, wait=0)
    reload_settings = cli._Reloader(args, start, lock)
    monkeypatch.chdir("/")  # what the daemon does
    try:
        config.write_text("MIRROR_SUPERVISOR_MIRROR_DIR=m2\nMIRROR_SUPERVISOR_STATE_DIR=state\n")
        new = reload_settings()
        assert (new.mirror_dir, new.db, new.state_dir) == (tmp_path / "m2", tmp_path / "heldar.db", tmp_path / "state")
        # the new mirror dir is locked by us now, the old one let go
        with pytest.raises(daemon.AlreadyRunning):
            daemon.acquire_mirror_lock(tmp_path / "m2", wait=0)
        os.close(daemon.acquire_mirror_lock(tmp_path / "m1", wait=0))

        for bad in ("MIRROR_SUPERVISOR_MIRROR_DIR=missing\n", "MIRROR_SUPERVISOR_POLL_INTERVAL=soon\n"):
            config.write_text(bad + "MIRROR_SUPERVISOR_STATE_DIR=state\n")
            with pytest.raises(SettingsError):
                reload_settings()
        config.unlink()
        with pytest.raises(SettingsError, match="^--config: cannot read"):
            reload_settings()
    finally:
        reload_settings.close()


def test_user_from_flag_environment_or_config_file(tmp_path):
    assert load({}, {"MIRROR_SUPERVISOR_MIRROR_DIR": "/m"}).user is None
    assert load({"user": "nobody"}, {"MIRROR_SUPERVISOR_MIRROR_DIR": "/m"}).user == "nobody"
    config = tmp_path / "default"
    config.write_text("MIRROR_SUPERVISOR_MIRROR_DIR=/m\nMIRROR_SUPERVISOR_USER=nobody\n")
    assert load({}, {}, str(config)).user == "nobody"
    with pytest.raises(SettingsError, match=r"^MIRROR_SUPERVISOR_USER: 'no-such-user-x' is not a user"):
        load({}, {"MIRROR_SUPERVISOR_MIRROR_DIR": "/m", "MIRROR_SUPERVISOR_USER": "no-such-user-x"})


def test_reload_refuses_a_changed_user(tmp_path):
    old = Settings(db=tmp_path / "db", mirror_dir=tmp_path, user="nobody")
    with pytest.raises(SettingsError, match="^--user: cannot change"):
        check_reload(old, dataclasses.replace(old, user=None))
    check_reload(old, dataclasses.replace(old, poll_interval=1.0))


def test_the_mirror_dir_is_asked_from_a_child_and_an_error_is_an_answer(tmp_path):
    """``volume.answers_within`` (the hung case is tests/faults/test_volume.py, on a real FUSE
    mount): a directory answers, so does a missing one (the caller reports that), and each asks
    from a child it reaps, leaving no zombie behind."""
    before = {child.pid for child in psutil.Process().children()}
    assert volume.answers_within(tmp_path, 10.0) is True
    assert volume.answers_within(tmp_path / "missing", 10.0) is True
    with pytest.raises(SettingsError, match="is not an existing directory"):
        check_mirror_dir(settings_at(tmp_path, mirror_dir=tmp_path / "missing"))
    assert {child.pid for child in psutil.Process().children()} <= before


# -- the camera cache's directory ----------------------------------------------------------------

@pytest.mark.parametrize(("euid", "env", "expected"), [
    (0, {"STATE_DIRECTORY": "/var/lib/mirror-supervisor:/var/lib/other"}, "/var/lib/mirror-supervisor"),
    (0, {}, "/var/lib/mirror-supervisor"),
    (1000, {"XDG_STATE_HOME": "/home/u/.state", "HOME": "/home/u"}, "/home/u/.state/mirror-supervisor"),
    (1000, {"XDG_STATE_HOME": "relative", "HOME": "/home/u"}, "/home/u/.local/state/mirror-supervisor"),
    (1000, {"HOME": "/home/u"}, "/home/u/.local/state/mirror-supervisor"),
])
def test_the_cache_dir_defaults_to_systemds_state_directory_then_var_lib_for_root_then_the_users(
        monkeypatch, euid, env, expected):
    for name in ("STATE_DIRECTORY", "XDG_STATE_HOME", "MIRROR_SUPERVISOR_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    assert load({}, {"MIRROR_SUPERVISOR_MIRROR_DIR": "/m"}).cache_dir == Path(expected)
    assert load({"cache_dir": "c"}, {"MIRROR_SUPERVISOR_MIRROR_DIR": "/m"}, cwd=Path("/s")).cache_dir == Path("/s/c")


def test_reload_refuses_a_changed_cache_dir(tmp_path):
    old = settings_at(tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(SettingsError, match="^--cache-dir: cannot change"):
        check_reload(old, dataclasses.replace(old, cache_dir=tmp_path / "other"))
