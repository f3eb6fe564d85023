"""Settings: command-line flag > environment > config file > default (docs/design.md, "Settings").

Every setting is defined once, in :data:`OPTIONS`: its flag, environment names, parser, default,
how the default is shown and its help text. The command line (``cli.add_setting_arguments``) and
the settings table in README.md are generated from that one definition; ``python -m
mirror_supervisor.settings --markdown`` prints the table, ``--update-readme README.md`` rewrites it
in place, and ``tests/unit/test_docs.py`` fails when README.md's copy differs.

Flags and the environment are fixed for the life of a process. The optional config file
(``--config``, KEY=VALUE lines using the environment variable names, the format of
``/etc/default/mirror-supervisor``) is re-read on SIGHUP, so an operator can change, say,
``MIRROR_SUPERVISOR_RECORDER_ENABLED`` without restarting the master and cutting footage.

Relative paths. The daemon runs in ``/``, so every path setting (db, mirror_dir, state_dir,
ffmpeg when it contains a ``/``, the config file itself) is made absolute when it is read, against
the directory it was given in: a flag or an environment variable against the working directory
the process *started* in (``cwd``, which the CLI records before it detaches and hands to every
reload), a value in the config file against that file's directory, so the file means the same
wherever it is used from (``/etc/default`` files normally hold absolute paths anyway). A default
(``./data/heldar.db``) counts as given on the command line.

Every problem is a :class:`SettingsError` whose message is one line naming the setting.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import setting_values as values
from .cameras.cache import default_cache_dir
from .cluster import options as cluster
from .plumbing import volume


class SettingsError(Exception):
    """A missing or unusable setting; the message is one line that names it."""


def default_state_dir() -> Path:
    """/run for root (as init scripts run it); otherwise the user's runtime directory.

    The /tmp fallback is a name any local user can create first: whoever uses a state dir
    checks that it is ours and only we can write it (``files.ensure_private_dir``).
    """
    if os.geteuid() == 0:
        return Path("/run/mirror-supervisor")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "mirror-supervisor" if runtime else Path(f"/tmp/mirror-supervisor-{os.geteuid()}")


@dataclass(frozen=True)
class Settings:
    db: Path
    mirror_dir: Path | None  # None only for commands that do not record (status, reload, stop)
    ffmpeg: str = "ffmpeg"
    poll_interval: float = 5.0
    stop_timeout: float = 8.0
    state_dir: Path = Path("/run/mirror-supervisor")
    recorder_enabled: bool = True
    stall_timeout: float | None = None  # None: max(60 s, 3 x segment_seconds) per camera
    require_mount: bool = False
    prune_interval: float = 600.0  # 0: never prune
    user: str | None = None  # None: workers and ffmpeg keep the master's user
    metrics_file: Path | None = None  # Prometheus text exposition, rewritten every few seconds
    metrics_listen: tuple[str, int] | None = None  # (host, port) of the /metrics child
    cache_dir: Path | None = None  # the camera cache's directory; None: no cache (camera_cache.py)
    snapshot_max_age: float = 300.0  # a --db written by `snapshot` older than this is warned about
    shard: tuple[int, int] | None = None  # (I, N): this host is number I of N (cluster/options.py)
    copies: int = 1  # K: hosts that record each camera
    peers: tuple[tuple[str, int], ...] | None = None  # every host's listener, in host order
    peer_timeout: float = 15.0  # a peer silent this long is down
    config: Path | None = None


@dataclass(frozen=True)
class Option:
    """One setting, defined once: where it may come from, how it is read, its default and its help.

    The command line and README.md's settings table are generated from these fields, so a flag,
    variable, default or help text is changed here and nowhere else. ``shown_default`` and
    ``help`` are Markdown (backticks only); the command line shows them without the backticks.
    """

    field: str
    flag: str
    env: tuple[str, ...]  # its own variable first, then the names also read (the NVR's own)
    parse: Callable[[str], Any]
    default: Any  # None means required; a callable is called for the default
    shown_default: str
    help: str
    metavar: str | None = None  # None: a switch without a value (given means "true")
    path: bool = False  # made absolute against the directory it was given in


# Environment names read with another format than their flag, and that format for the README.
_ALIASES: dict[str, tuple[Callable[[str], Any], str]] = {"HELDAR_DATABASE_URL": (values.db_url, "sqlite://PATH")}
_SPECIAL_PARSERS = {name: parse for name, (parse, _) in _ALIASES.items()}

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# The settings every command resolves through :func:`load`, in the order the help lists them.
OPTIONS = (
    Option("db", "--db", ("MIRROR_SUPERVISOR_DB", "HELDAR_DATABASE_URL"), values.path, Path("./data/heldar.db"),
           "`./data/heldar.db`", "the NVR's SQLite database, opened read-only", "PATH", path=True),
    Option("mirror_dir", "--mirror-dir", ("MIRROR_SUPERVISOR_MIRROR_DIR", "HELDAR_MIRROR_RECORDINGS_DIR"), values.path,
           None, "required by `run`, `check` and `prune`; must exist",
           "the mirror root: segments go to `DIR/<camera_id>/`; never created", "DIR", path=True),
    Option("ffmpeg", "--ffmpeg", ("MIRROR_SUPERVISOR_FFMPEG", "HELDAR_FFMPEG_BIN"), values.text, "ffmpeg",
           "`ffmpeg`", "the ffmpeg binary: a name looked up in `PATH`, or a path", "PATH", path=True),
    Option("poll_interval", "--poll-interval", ("MIRROR_SUPERVISOR_POLL_INTERVAL",), values.seconds, 5.0,
           "5", "seconds between reads of the database; SIGHUP reads it at once", "S"),
    Option("stop_timeout", "--stop-timeout", ("MIRROR_SUPERVISOR_STOP_TIMEOUT",), values.seconds, 8.0,
           "8", "seconds a worker gets to stop its ffmpeg before its process group is SIGKILLed", "S"),
    Option("state_dir", "--state-dir", ("MIRROR_SUPERVISOR_STATE_DIR",), values.path, default_state_dir,
           "`/run/mirror-supervisor` for root; otherwise `$XDG_RUNTIME_DIR/mirror-supervisor`, "
           "else `/tmp/mirror-supervisor-<uid>`",
           "lock, pidfile and `status.json`; cannot change on reload", "DIR", path=True),
    Option("cache_dir", "--cache-dir", ("MIRROR_SUPERVISOR_CACHE_DIR",), values.path, default_cache_dir,
           "`$STATE_DIRECTORY` (systemd's `StateDirectory=`) when set; else `/var/lib/mirror-supervisor` for root; "
           "otherwise `$XDG_STATE_HOME/mirror-supervisor`, else `~/.local/state/mirror-supervisor`",
           "the camera cache: the last good read of the camera table (with its passwords: directory 0700, file "
           "0600), which a master that starts while the database is unreadable records from; cannot change on "
           "reload", "DIR", path=True),
    Option("recorder_enabled", "--recorder-enabled", ("MIRROR_SUPERVISOR_RECORDER_ENABLED", "HELDAR_RECORDER_ENABLED"),
           values.parse_bool, True, "true", "mirror at all; false stops every worker", "BOOL"),
    Option("stall_timeout", "--stall-timeout", ("MIRROR_SUPERVISOR_STALL_TIMEOUT",), values.seconds, lambda: None,
           "max(60, 3 x segment_seconds) per camera",
           "restart an ffmpeg whose open segment has not grown for this many seconds", "S"),
    Option("require_mount", "--require-mount", ("MIRROR_SUPERVISOR_REQUIRE_MOUNT",), values.parse_bool, False,
           "false", "record only while the mirror dir is a mount point"),
    Option("prune_interval", "--prune-interval", ("MIRROR_SUPERVISOR_PRUNE_INTERVAL",), values.seconds_or_off, 600.0,
           "600; 0: never prune",
           "seconds between retention passes; the first pass comes at most 30 s after start", "S"),
    Option("user", "--user", ("MIRROR_SUPERVISOR_USER",), values.user, lambda: None, "none (the master's own user)",
           "workers become this user and group before starting ffmpeg, and camera directories are "
           "made theirs; the master may stay root or run as this user; cannot change on reload", "NAME"),
    Option("metrics_file", "--metrics-file", ("MIRROR_SUPERVISOR_METRICS_FILE",), values.path, lambda: None, "off",
           "Prometheus metrics written to this file (text format, atomically, every few seconds): "
           "for node_exporter's textfile collector; on a local file system", "PATH", path=True),
    Option("metrics_listen", "--metrics-listen", ("MIRROR_SUPERVISOR_METRICS_LISTEN",), values.host_port, lambda: None,
           "off", "serve Prometheus metrics at `http://HOST:PORT/metrics` and the status page at `/` (a small "
           "child process; README, \"The status page\")", "HOST:PORT"),
    Option("snapshot_max_age", "--snapshot-max-age", ("MIRROR_SUPERVISOR_SNAPSHOT_MAX_AGE",), values.seconds, 300.0,
           "300", "when `--db` is a copy written by `snapshot`: warn once when it has not been replaced for this "
           "many seconds (the NVR down, or the transfer broken); recording goes on from it", "S"),
    Option("shard", "--shard", ("MIRROR_SUPERVISOR_SHARD",), cluster.shard, lambda: None, "none: this host records "
           "every camera", "this host is number I (0-based) of N mirror hosts; it records the cameras it ranks among the "
           "first K for (README, \"Several mirror hosts\"); fixed until a restart", "I/N"),
    Option("copies", "--copies", ("MIRROR_SUPERVISOR_COPIES",), cluster.copies, 1, "1",
           "K: how many hosts record each camera (at most N); each copy is one more session the camera serves", "K"),
    Option("peers", "--peers", ("MIRROR_SUPERVISOR_PEERS",), cluster.peers, lambda: None, "none: fixed shares, no "
           "failover", "every host's `--metrics-listen` address, comma-separated in host order, this host's included: "
           "where hosts read each other's health; fixed until a restart", "HOST:PORT,..."),
    Option("peer_timeout", "--peer-timeout", ("MIRROR_SUPERVISOR_PEER_TIMEOUT",), values.seconds, 15.0, "15",
           "a peer that has not answered well for this many seconds is down, and its cameras are recorded by the "
           "next hosts in line", "S"),
)

# Read by :func:`load` before the others, because it says where the others may come from.
CONFIG = Option("config", "--config", ("MIRROR_SUPERVISOR_CONFIG",), values.path, lambda: None, "none",
                "`KEY=VALUE` file with the environment names above; re-read on SIGHUP", "FILE", path=True)

# Not resolved by :func:`load`: a flag of ``run`` only, with no environment name.
LOG_LEVEL = Option("log_level", "--log-level", (), str.upper, "INFO", "INFO",
                   "`run` only: " + ", ".join(LOG_LEVELS), "LEVEL")

# Everything README.md's settings table lists, in its order.
TABLE_OPTIONS = (*OPTIONS, CONFIG, LOG_LEVEL)

FLAGS = {option.field: option.flag for option in OPTIONS}


def plain(text: str) -> str:
    """Markdown of an :class:`Option` as terminal text."""
    return text.replace("`", "")


def help_text(option: Option) -> str:
    """The argparse help of an option: its help, default and environment names."""
    text = plain(option.help)
    shown = plain(option.shown_default)
    text += f" (default {shown})" if option.default is not None else f" ({shown})"
    if option.env:
        text += "; env " + ", ".join(option.env)
    return text.replace("%", "%%")


README_TABLE_BEGIN = "<!-- settings table: generated from mirror_supervisor/settings.py by " \
                     "`python -m mirror_supervisor.settings --update-readme README.md`; do not edit by hand -->"
README_TABLE_END = "<!-- end of settings table -->"


def markdown_table(options: tuple[Option, ...] = TABLE_OPTIONS) -> str:
    """README.md's settings table (without the markers around it), rendered from ``options``."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    def row(cells: tuple[str, ...]) -> str:
        return "|" + "|".join(f" {cell(text)} " if text else " " for text in cells) + "|"

    lines = [row(("flag", "environment", "also read", "default", "meaning")), "|---|---|---|---|---|"]
    for option in options:
        flag = f"`{option.flag} {option.metavar}`" if option.metavar else f"`{option.flag}`"
        own = f"`{option.env[0]}`" if option.env else ""
        also = ", ".join(f"`{name}`" + (f" (`{_ALIASES[name][1]}`)" if name in _ALIASES else "")
                         for name in option.env[1:])
        lines.append(row((flag, own, also, option.shown_default, option.help)))
    return "\n".join(lines) + "\n"


def replace_readme_table(text: str) -> str:
    """``text`` (README.md) with the block between the table markers rendered afresh."""
    begin, end = text.find(README_TABLE_BEGIN), text.find(README_TABLE_END)
    if begin < 0 or end < begin:
        raise ValueError("README.md has no settings table markers")
    return f"{text[:begin]}{README_TABLE_BEGIN}\n\n{markdown_table()}\n{text[end:]}"


def read_config_file(path: Path) -> dict[str, str]:
    """Read KEY=VALUE lines as a shell would source them (comments, ``export``, simple quotes)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"--config: cannot read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"--config: {str(path)!r} is not UTF-8 text") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise SettingsError(f"--config: {str(path)!r} line {number} is not KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def start_cwd() -> Path | None:
    """The working directory now, or None when it was removed (then only absolute paths work)."""
    try:
        return Path(os.getcwd())
    except OSError:
        return None


def absolute(value: str | Path, base: Path | None, name: str) -> Path:
    """``value`` made absolute against ``base`` (lexically: symlinks are left as they are)."""
    path = Path(value)
    if not path.is_absolute():
        if base is None:
            raise SettingsError(f"{name}: {str(value)!r} is relative, but the working directory is gone")
        path = base / path
    return Path(os.path.normpath(path))


def load(
    flags: Mapping[str, str | None],
    environ: Mapping[str, str] | None = None,
    config_path: str | None = None,
    need_mirror_dir: bool = True,
    cwd: Path | None = None,
) -> Settings:
    """Resolve every setting; ``flags`` maps field names to flag values (None when not given).

    ``cwd`` is the directory flags and environment were given in (default: the current one);
    a reload in the daemon must pass the directory the process started in, not ``/``.
    """
    environ = os.environ if environ is None else environ
    cwd = start_cwd() if cwd is None else cwd
    config_name = CONFIG.flag if config_path else CONFIG.env[0]
    config_path = config_path or environ.get(CONFIG.env[0]) or None
    config = absolute(config_path, cwd, config_name) if config_path else None
    file_values = read_config_file(config) if config else {}
    bases = {"flag": cwd, "env": cwd, "file": config.parent if config else None}
    resolved: dict[str, Any] = {}
    for option in OPTIONS:
        if option.field == "mirror_dir" and not need_mirror_dir:
            option = dataclasses.replace(option, default=_no_mirror_dir)
        resolved[option.field] = _resolve(option, flags.get(option.field), environ, file_values, bases)
    resolved["config"] = config
    try:
        cluster.check(settings := Settings(**resolved))
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return settings


def _resolve(option: Option, flag_value: str | None, environ: Mapping[str, str], file_values: Mapping[str, str],
             bases: Mapping[str, Path | None]) -> Any:
    candidates: list[tuple[str, str, Callable[[str], Any], str]] = []
    if flag_value is not None:
        candidates.append((option.flag, flag_value, option.parse, "flag"))
    for source, origin in ((environ, "env"), (file_values, "file")):
        for name in option.env:
            if name in source:
                candidates.append((name, source[name], _SPECIAL_PARSERS.get(name, option.parse), origin))
    if not candidates:
        if option.default is None:
            names = " or ".join((option.flag,) + option.env)
            raise SettingsError(f"{option.flag}: required (set {names})")
        default = option.default() if callable(option.default) else option.default
        return _anchor(option, option.flag, default, bases["flag"])
    name, value, parse, origin = candidates[0]
    try:
        parsed = parse(value)
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from None
    return _anchor(option, name, parsed, bases[origin])


def _anchor(option: Option, name: str, value: Any, base: Path | None) -> Any:
    """A path setting made absolute; a bare ffmpeg name stays a name, looked up in PATH."""
    if not option.path or value is None:
        return value
    if isinstance(value, str):
        return str(absolute(value, base, name)) if "/" in value else value
    return absolute(value, base, name)


def _no_mirror_dir() -> None:
    return None


def check_mirror_dir(settings: Settings, timeout: float = volume.START_TIMEOUT) -> None:
    """Recording needs an existing mirror dir: ffmpeg must never create one on the disk under a
    missing mount. Called once at start and on a reload that changes it, never periodically. The
    volume may be a hung NFS mount, so a child asks it first, with a deadline: a command (and an
    init script at boot) fails in one line instead of hanging in the kernel."""
    if settings.mirror_dir is None:
        raise SettingsError(f"{FLAGS['mirror_dir']}: required")
    if not volume.answers_within(settings.mirror_dir, timeout):
        raise SettingsError(f"{FLAGS['mirror_dir']}: {str(settings.mirror_dir)!r} does not answer (no reply in "
                            f"{timeout:.0f}s: a hung network volume?)")
    if not settings.mirror_dir.is_dir():
        raise SettingsError(f"{FLAGS['mirror_dir']}: {str(settings.mirror_dir)!r} is not an existing directory")


def check_reload(old: Settings, new: Settings) -> None:
    """Refuse new settings a running master cannot take; the master then keeps the old ones.

    Only what changed is checked, so a reload never touches an unchanged (maybe hung) mirror
    volume. The state dir holds the lock and pidfile of this very master: it cannot move.
    A changed ffmpeg that is not there would restart every camera into a failure.
    """
    if new.state_dir != old.state_dir:
        raise SettingsError(f"{FLAGS['state_dir']}: cannot change from {str(old.state_dir)!r} to "
                            f"{str(new.state_dir)!r} while running (it holds the lock and pidfile); restart instead")
    if new.cache_dir != old.cache_dir:
        raise SettingsError(f"{FLAGS['cache_dir']}: cannot change from {str(old.cache_dir)!r} to "
                            f"{str(new.cache_dir)!r} while running; restart instead")
    if (problem := cluster.reload_problem(old, new)) is not None:
        raise SettingsError(problem)
    if new.user != old.user:
        raise SettingsError(f"{FLAGS['user']}: cannot change from {old.user!r} to {new.user!r} while running "
                            "(running workers would keep their user); restart instead")
    if new.mirror_dir != old.mirror_dir:
        check_mirror_dir(new, timeout=volume.PROBE_TIMEOUT)  # the master's loop waits meanwhile
    if new.ffmpeg != old.ffmpeg and not _executable(new.ffmpeg):
        raise SettingsError(f"{FLAGS['ffmpeg']}: {new.ffmpeg!r} is not an executable file")


def _executable(program: str) -> bool:
    if "/" in program:
        return os.path.isfile(program) and os.access(program, os.X_OK)
    return shutil.which(program) is not None


def main(argv: list[str] | None = None) -> int:
    """``python -m mirror_supervisor.settings --markdown`` or ``--update-readme README.md``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mirror_supervisor.settings",
                                     description="Render the settings table of README.md from the definitions.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--markdown", action="store_true", help="print the table")
    group.add_argument("--update-readme", metavar="README", help="rewrite the table between its markers in place")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table(), end="")
        return 0
    readme = Path(args.update_readme)
    readme.write_text(replace_readme_table(readme.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
