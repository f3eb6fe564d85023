"""--shard, --copies, --peers, --peer-timeout: read like every setting, checked together, fixed
until a restart (cluster/options.py)."""

from __future__ import annotations

import pytest

from mirror_supervisor.settings import SettingsError, check_reload, load


def settings(tmp_path, environ=None, **flags):
    return load(flags, environ or {}, None, cwd=tmp_path, need_mirror_dir=False)


def test_without_shard_nothing_changes(tmp_path):
    found = settings(tmp_path)
    assert (found.shard, found.copies, found.peers, found.peer_timeout) == (None, 1, None, 15.0)


def test_flags_environment_and_config_file(tmp_path):
    found = settings(tmp_path, shard="1/3", copies="2", peers="a:9101,b:9101,[::1]:9102", metrics_listen="0.0.0.0:9101",
                     peer_timeout="7.5")
    assert found.shard == (1, 3) and found.copies == 2 and found.peer_timeout == 7.5
    assert found.peers == (("a", 9101), ("b", 9101), ("::1", 9102))
    env = {"MIRROR_SUPERVISOR_SHARD": "2/3", "MIRROR_SUPERVISOR_COPIES": "3"}
    assert (settings(tmp_path, env).shard, settings(tmp_path, env).copies) == ((2, 3), 3)
    config = tmp_path / "default"
    config.write_text("MIRROR_SUPERVISOR_SHARD=0/2\nMIRROR_SUPERVISOR_COPIES=2\n")
    found = load({}, {}, str(config), cwd=tmp_path, need_mirror_dir=False)
    assert (found.shard, found.copies) == ((0, 2), 2)


@pytest.mark.parametrize(("flags", "message"), [
    ({"shard": "3/3"}, "--shard: '3/3': the host number must be 0 to 2"),
    ({"shard": "1"}, "--shard: '1' is not I/N"),
    ({"shard": "0/0"}, "--shard: '0/0': N must be 1 to 64"),
    ({"shard": "-1/3"}, "--shard: '-1/3' is not I/N"),
    ({"shard": "0/3", "copies": "4"}, "--copies: 4 is more than the 3 hosts of --shard"),
    ({"copies": "2"}, "--copies: 2 copies need --shard I/N with N >= 2"),
    ({"copies": "0"}, "--copies: '0' is not a number of copies"),
    ({"shard": "0/3", "peers": "a:1,b:2", "metrics_listen": "a:1"}, "--peers: 2 addresses for the 3 hosts"),
    ({"peers": "a:1"}, "--peers: needs --shard"),
    ({"shard": "0/2", "peers": "a:1,b:1"}, "--peers: needs --metrics-listen"),
    ({"shard": "0/2", "peers": "a:1,b", "metrics_listen": "a:1"}, "--peers: entry 1 (host 1): 'b' is not HOST:PORT"),
    ({"peer_timeout": "0"}, "--peer-timeout: '0' must be more than 0"),
])
def test_a_bad_value_is_one_line_naming_the_setting(tmp_path, flags, message):
    with pytest.raises(SettingsError) as caught:
        settings(tmp_path, **flags)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_environment_name_is_named_when_it_is_wrong(tmp_path):
    with pytest.raises(SettingsError, match="^MIRROR_SUPERVISOR_SHARD: 'x' is not I/N"):
        settings(tmp_path, {"MIRROR_SUPERVISOR_SHARD": "x"})


@pytest.mark.parametrize("field", ["shard", "copies", "peers", "peer_timeout"])
def test_a_reload_cannot_change_them(tmp_path, field):
    old = settings(tmp_path, shard="0/3", copies="2", peers="a:1,b:1,c:1", metrics_listen="a:1")
    changed = {"shard": "1/3", "copies": "1", "peers": "a:1,b:1,d:1", "peer_timeout": "3"}[field]
    new = settings(tmp_path, **{"shard": "0/3", "copies": "2", "peers": "a:1,b:1,c:1", "metrics_listen": "a:1",
                                field: changed})
    with pytest.raises(SettingsError, match="cannot change while running"):
        check_reload(old, new)
