"""Settings precedence and one-line errors (SPEC section 7)."""

from pathlib import Path

import pytest

from mirror_supervisor.settings import SettingsError, load, parse_bool

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
