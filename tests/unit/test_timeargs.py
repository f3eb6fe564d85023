"""Time and span arguments (timeargs.py): every one is a number a segment name can hold, or a
one-line error naming its option, exit status 2; never a traceback."""

from __future__ import annotations

import datetime

import pytest

from mirror_supervisor import cli
from mirror_supervisor.settings import SettingsError

NOW = datetime.datetime(2026, 11, 25, 10, tzinfo=datetime.UTC).timestamp()


def timeargs():
    from mirror_supervisor import timeargs as module  # new: imported here so the CLI tests run on older code

    return module


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800),
                                           ("1w", 604800), ("3600", 3600), (" 2H ", 7200), ("1.5h", 5400)])
def test_spans(text, seconds):
    assert timeargs().parse_span(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "nan", "NaN", "inf", "-inf", "-5m", "0", "0s", "1e400", "1e400h",
                                  "100000000d", "5 parsecs", "0x10"])
def test_bad_spans(text):
    with pytest.raises(ValueError):
        timeargs().parse_span(text)


@pytest.mark.parametrize("text, epoch", [("2026-11-25T10:00:00Z", NOW), ("2026-11-25 10:00:00", NOW),
                                         ("2026-11-25T11:00:00+01:00", NOW), ("2026-11-25t10:00:00z", NOW),
                                         ("1970-01-01T00:00:00Z", 0.0)])
def test_times(text, epoch):
    assert timeargs().parse_time(text) == epoch


@pytest.mark.parametrize("text", ["", "nan", "tomorrow", "2026-02-30T00:00:00Z", "10000-01-01T00:00:00Z",
                                  "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
                                  "9999-12-31T23:59:59-14:00"])
def test_bad_times(text):
    with pytest.raises(ValueError):
        timeargs().parse_time(text)


@pytest.mark.parametrize("since, from_, to, option", [
    ("100000000d", None, None, "--since"),
    ("nan", None, None, "--since"),
    ("-1h", None, None, "--since"),
    (None, "2026-11-25T10:00:00Z", None, "--to"),
    (None, None, "2026-11-25T10:00:00Z", "--from"),
    (None, "0001-01-01T00:00:00+14:00", "2026-11-25T10:00:00Z", "--from"),
    (None, "2026-11-25T10:00:00Z", "99999-01-01T00:00:00Z", "--to"),
    (None, "2026-11-25T10:00:00Z", "2026-11-25T09:00:00Z", "--to"),
])
def test_a_bad_window_names_its_option(since, from_, to, option):
    with pytest.raises(SettingsError) as caught:
        timeargs().window(since, from_, to, NOW)
    assert str(caught.value).startswith(f"{option}: ") and "\n" not in str(caught.value)


def test_windows():
    assert timeargs().window(None, None, None, NOW) == (NOW - 86400, NOW)
    assert timeargs().window("90m", None, None, NOW) == (NOW - 5400, NOW)
    assert timeargs().window(None, "2026-11-25T09:00:00Z", "2026-11-25T10:00:00Z", NOW + 1) == (NOW - 3600, NOW)


@pytest.mark.parametrize("command, args", [
    ("coverage", ["--since", "100000000d"]),
    ("coverage", ["--since", "nan"]),
    ("coverage", ["--since", "1e400"]),
    ("coverage", ["--since=-5m"]),
    ("coverage", ["--from", "1969-01-01T00:00:00Z", "--to", "2026-11-25T10:00:00Z"]),
    ("coverage", ["--to", "0001-01-01T00:00:00+14:00", "--from", "2026-11-25T10:00:00Z"]),
    ("coverage", ["--tolerance", "nan"]),
    ("coverage", ["--tolerance", "inf"]),
    ("coverage", ["--tolerance", "-1"]),
    ("coverage", ["--tolerance", "1e400"]),
    ("stop", ["--timeout", "nan"]),
    ("stop", ["--timeout", "inf"]),
    ("stop", ["--timeout", "-1"]),
    ("stop", ["--timeout", "1e400"]),
])
def test_the_commands_refuse_absurd_times_in_one_line(tmp_path, capsys, command, args):
    code = cli.main([command, "--mirror-dir", str(tmp_path), "--state-dir", str(tmp_path / "s"), *args])
    err = capsys.readouterr().err
    assert code == 2
    option = args[0].split("=")[0]
    assert err.count("\n") == 1 and err.startswith(f"mirror-supervisor: error: {option}: "), err
