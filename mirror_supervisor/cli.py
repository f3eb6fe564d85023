"""The command line: ``mirror-supervisor <command> [settings]`` (docs/design.md, "Commands").

The settings options are generated from their one definition in :mod:`settings` (flag, metavar,
help, default), so the help, the parser and README.md's settings table cannot disagree.

Exit codes: ``run`` 0 after a clean stop, 1 when another master runs, 2 for a settings error;
``status`` follows LSB (0 running, 1 dead with a pidfile, 3 not running); ``reload`` 7 when
nothing runs (LSB "program is not running").
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__, coverage_command
from .plumbing import daemon, files, logs
from .settings import (
    CONFIG,
    FLAGS,
    LOG_LEVEL,
    LOG_LEVELS,
    OPTIONS,
    Settings,
    SettingsError,
    absolute,
    check_mirror_dir,
    check_reload,
    help_text,
    load,
    start_cwd,
)

PROG = "mirror-supervisor"
EXIT_SETTINGS = 2
LSB_DEAD_WITH_PIDFILE = 1
LSB_NOT_RUNNING = 3
LSB_RELOAD_NOT_RUNNING = 7


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """Every setting's option, from its definition; the value stays None when not given, so that
    the environment and the config file can still supply it (flag > environment > file > default)."""
    group = parser.add_argument_group("settings (flag > environment > --config file > default)")
    for option in (*OPTIONS, CONFIG):
        if option.metavar is None:  # a switch: given means "true", parsed like the variable's value
            group.add_argument(option.flag, dest=option.field, action="store_const", const="true",
                               help=help_text(option))
        else:
            group.add_argument(option.flag, dest=option.field, metavar=option.metavar, help=help_text(option))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Keep a redundant mirror of IP-camera recordings.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the master (foreground unless --daemon)")
    run.add_argument("--daemon", action="store_true", help="detach, write the pidfile once ready")
    run.add_argument("--log-file", metavar="FILE", help="log here (reopened after logrotate moves it)")
    run.add_argument(LOG_LEVEL.flag, dest=LOG_LEVEL.field, default=LOG_LEVEL.default, choices=LOG_LEVELS,
                     type=LOG_LEVEL.parse, metavar=LOG_LEVEL.metavar, help=help_text(LOG_LEVEL))
    _add_settings(run)

    reload_ = commands.add_parser("reload", help="SIGHUP the running master: re-read settings file and database")
    _add_settings(reload_)

    stop = commands.add_parser("stop", help="SIGTERM the running master and wait until it is gone")
    stop.add_argument("--timeout", metavar="S", help=f"how long to wait (default stop timeout + 10; at most {MAX_STOP_WAIT:g})")
    _add_settings(stop)

    status = commands.add_parser("status", help="one line per camera; LSB exit codes")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    _add_settings(status)

    check = commands.add_parser("check", help="read settings and database; say for every camera whether it is mirrored")
    _add_settings(check)

    prune = commands.add_parser("prune", help="one retention pass by hand: delete segments past retention_hours")
    prune.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    _add_settings(prune)

    snapshot = commands.add_parser(
        "snapshot", help="write a consistent copy of the camera table (--db) to --out, for a mirror on another host")
    snapshot.add_argument("--out", required=True, metavar="FILE",
                          help="the copy: replaced atomically (mode 0640); left as it was when --db cannot be read")
    _add_settings(snapshot)

    coverage_command.add_parser(commands, _add_settings, _ratio)
    return parser


def _number_between(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number from ``low`` to ``high``, or a one-line reason."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}: {text!r}")
        return value
    return parse


_ratio = _number_between(0.0, 1.0)
MAX_STOP_WAIT = 86400.0  # stop --timeout


def _settings(args: argparse.Namespace, need_mirror_dir: bool = True) -> Settings:
    """Settings with relative paths resolved against the directory the command started in
    (``args.cwd``, recorded by :func:`main`), which stays right after the daemon moved to /."""
    flags = {field: getattr(args, field, None) for field in FLAGS}
    return load(flags, os.environ, args.config, need_mirror_dir=need_mirror_dir, cwd=getattr(args, "cwd", None))


def _prepare_state_dir(settings: Settings) -> None:
    """Create the state dir 0750, or accept an existing one only we can write (see files.py)."""
    name, path = FLAGS["state_dir"], str(settings.state_dir)
    try:
        files.ensure_private_dir(settings.state_dir)
    except files.UnsafeDirectory as exc:
        raise SettingsError(f"{name}: {path!r} {exc}; refusing to use it") from None
    except OSError as exc:
        raise SettingsError(f"{name}: cannot create {path!r}: {exc.strerror}") from None
    if not os.access(settings.state_dir, os.W_OK):
        raise SettingsError(f"{name}: {path!r} is not writable")


def _check_log_file(args: argparse.Namespace) -> None:
    """Resolve --log-file against the start directory and check it can be written (created 0640)."""
    if not args.log_file:
        return
    args.log_file = str(absolute(args.log_file, getattr(args, "cwd", None), "--log-file"))
    try:
        os.close(files.open_append(Path(args.log_file)))
    except OSError as exc:
        raise SettingsError(f"--log-file: cannot write {args.log_file!r}: {exc.strerror}") from None


class _Reloader:
    """The master's ``reload_settings``: re-reads flags, environment and config file as at start.

    Relative paths resolve against the start directory, never the daemon's /. Anything the running
    master cannot take raises :class:`SettingsError`, so the master keeps its old settings. A new
    mirror dir is locked before it is accepted (and the old lock let go: old workers keep holding
    it until they stop), so a reload cannot make two masters share one mirror either.
    """

    def __init__(self, args: argparse.Namespace, settings: Settings, mirror_lock: int) -> None:
        self.args, self.current, self.mirror_lock = args, settings, mirror_lock

    def __call__(self) -> Settings:
        try:
            new = _settings(self.args)
            check_reload(self.current, new)
        except SettingsError:
            raise
        except Exception as exc:  # the master must never die of a reload: footage would stop
            raise SettingsError(f"reload: {type(exc).__name__}: {exc}".replace("\n", " ")) from None
        if new.mirror_dir != self.current.mirror_dir:
            self._move_mirror_lock(new)
        self.current = new
        return new

    def _move_mirror_lock(self, new: Settings) -> None:
        assert new.mirror_dir is not None
        try:
            fd = daemon.acquire_mirror_lock(new.mirror_dir, wait=0)
        except daemon.AlreadyRunning as exc:
            raise SettingsError(f"{FLAGS['mirror_dir']}: {exc}") from None
        except OSError as exc:
            raise SettingsError(f"{FLAGS['mirror_dir']}: cannot lock {str(new.mirror_dir)!r}: {exc.strerror}") from None
        os.close(self.mirror_lock)
        self.mirror_lock = fd

    def close(self) -> None:
        os.close(self.mirror_lock)


def _take_locks(settings: Settings) -> tuple[int, int]:
    """The state-dir lock, then the mirror-dir lock: both before any ffmpeg can start."""
    assert settings.mirror_dir is not None
    wait = settings.stop_timeout + 5
    state_lock = daemon.acquire_lock(settings.state_dir, wait=wait)
    try:
        return state_lock, daemon.acquire_mirror_lock(settings.mirror_dir, wait=wait)
    except BaseException:
        os.close(state_lock)
        raise


def cmd_run(args: argparse.Namespace) -> int:
    from .master.master import Master
    from .master.system import System
    from .worker.ffmpeg import remove_old_layout

    settings = _settings(args)
    check_mirror_dir(settings)
    _prepare_state_dir(settings)
    if args.daemon and not args.log_file:
        raise SettingsError("--log-file: required with --daemon (a daemon has no terminal to log to)")
    _check_log_file(args)

    ready_fd = daemon.detach() if args.daemon else None
    if ready_fd is not None:
        # Python-level crashes of the daemon land in the log file, not in /dev/null.
        log_fd = files.open_append(Path(args.log_file))
        os.dup2(log_fd, 2)
        os.close(log_fd)
    logs.setup(args.log_level, path=args.log_file)
    try:
        lock_fd, mirror_lock_fd = _take_locks(settings)
    except (daemon.AlreadyRunning, OSError) as exc:
        logs.master().error("not starting: %s", exc)
        daemon.report_ready(ready_fd, str(exc))
        if ready_fd is None:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    remove_old_layout(settings.user, logs.master())  # before any worker writes a script
    pid = os.getpid()
    reloader = _Reloader(args, settings, mirror_lock_fd)

    def ready() -> None:
        daemon.write_pidfile(settings.state_dir, pid)
        daemon.report_ready(ready_fd)

    try:
        system = System(locks=lambda: (lock_fd, reloader.mirror_lock))  # every worker inherits both
        return Master(settings, reload_settings=reloader, on_ready=ready, system=system).run()
    finally:
        if os.getpid() == pid:  # never in a forked worker
            daemon.remove_pidfile(settings.state_dir, pid)
            reloader.close()
            os.close(lock_fd)


def cmd_reload(args: argparse.Namespace) -> int:
    settings = _settings(args, need_mirror_dir=False)
    pid = daemon.running_master(settings.state_dir)
    if pid is None:
        print(f"{PROG}: not running (no live master in {settings.state_dir})", file=sys.stderr)
        return LSB_RELOAD_NOT_RUNNING
    os.kill(pid, signal.SIGHUP)
    print(f"{PROG}: reload signalled to pid {pid}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from . import timeargs

    wait = None if args.timeout is None else timeargs.seconds("--timeout", args.timeout, 0.0, MAX_STOP_WAIT)
    settings = _settings(args, need_mirror_dir=False)
    pid = daemon.running_master(settings.state_dir)
    if pid is None:
        print(f"{PROG}: not running")
        return 0
    timeout = wait if wait is not None else settings.stop_timeout + 10
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while daemon.is_master(pid):
        if time.monotonic() >= deadline:
            print(f"{PROG}: error: pid {pid} still running {timeout:.0f}s after SIGTERM", file=sys.stderr)
            return 1
        time.sleep(0.1)
    print(f"{PROG}: stopped (pid {pid})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .plumbing.status_file import read_status
    from .status import render, with_coverage, with_segments

    settings = _settings(args, need_mirror_dir=False)
    pid = daemon.read_pid(settings.state_dir)
    if pid is None or not daemon.is_master(pid):
        code = LSB_NOT_RUNNING if pid is None else LSB_DEAD_WITH_PIDFILE
        text = "not running" if pid is None else f"dead, but pidfile {settings.state_dir / daemon.PIDFILE} names pid {pid}"
        if args.json:
            print(json.dumps({"running": False, "status": text, "pidfile_pid": pid}))
        else:
            print(f"{PROG}: {text}")
        return code
    data = read_status(settings.state_dir)
    if data is None or data.get("master", {}).get("pid") != pid:
        data = {"master": {"pid": pid}, "cameras": [], "note": "the master has not written its status yet"}
    data = with_segments(data)
    data = with_coverage(data)
    data["running"] = True
    print(json.dumps(data, indent=1) if args.json else render(data))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import run_check

    settings = _settings(args)
    return run_check(settings, sys.stdout)


def cmd_prune(args: argparse.Namespace) -> int:
    """Exit 0 after a pass; 1 when it was skipped (database unreadable, columns missing, clock
    untrustworthy) or files could not go."""
    from .retention.prune import run_pass

    settings = _settings(args)
    check_mirror_dir(settings)
    assert settings.mirror_dir is not None
    report = run_pass(settings.db, settings.mirror_dir, dry_run=args.dry_run, state_dir=settings.state_dir)
    for line in report.format_lines():
        print(line)
    failed = report.error is not None or any(cam.failed_files for cam in report.cameras)
    return 1 if failed else 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    """Exit 0 after the copy; 1 when the database could not be read or the copy not written."""
    from .cameras import snapshot

    settings = _settings(args, need_mirror_dir=False)
    return snapshot.run(settings.db, absolute(args.out, getattr(args, "cwd", None), "--out"), sys.stderr)


def cmd_coverage(args: argparse.Namespace) -> int:
    """Exit 0; 1 when --min-coverage is given and a camera is below it; 2 bad arguments;
    128 + N stopped by signal N (:mod:`coverage_command`)."""
    return coverage_command.run(args, _settings, PROG)


COMMANDS = {"run": cmd_run, "reload": cmd_reload, "stop": cmd_stop, "status": cmd_status, "check": cmd_check,
            "prune": cmd_prune, "coverage": cmd_coverage, "snapshot": cmd_snapshot}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.cwd = start_cwd()  # relative paths mean this directory, also after the daemon moved to /
    try:
        return COMMANDS[args.command](args)
    except SettingsError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_SETTINGS


if __name__ == "__main__":
    sys.exit(main())
