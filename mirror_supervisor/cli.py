"""The command line (SPEC section 8): ``mirror-supervisor <command> [settings]``.

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
from collections.abc import Sequence
from pathlib import Path

from . import __version__, daemon, logs
from .settings import FLAGS, Settings, SettingsError, load

PROG = "mirror-supervisor"
EXIT_SETTINGS = 2
LSB_DEAD_WITH_PIDFILE = 1
LSB_NOT_RUNNING = 3
LSB_RELOAD_NOT_RUNNING = 7


def _add_settings(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (flag > environment > --config file > default)")
    group.add_argument(FLAGS["db"], dest="db", metavar="PATH", help="NVR SQLite database (default ./data/heldar.db)")
    group.add_argument(FLAGS["mirror_dir"], dest="mirror_dir", metavar="DIR", help="mirror root")
    group.add_argument(FLAGS["ffmpeg"], dest="ffmpeg", metavar="PATH", help="ffmpeg binary (default ffmpeg)")
    group.add_argument(FLAGS["poll_interval"], dest="poll_interval", metavar="S", help="database poll interval (default 5)")
    group.add_argument(FLAGS["stop_timeout"], dest="stop_timeout", metavar="S", help="per-worker stop budget (default 8)")
    group.add_argument(FLAGS["state_dir"], dest="state_dir", metavar="DIR", help="pidfile and status file directory")
    group.add_argument(FLAGS["recorder_enabled"], dest="recorder_enabled", metavar="BOOL", help="mirror at all (default true)")
    group.add_argument(FLAGS["stall_timeout"], dest="stall_timeout", metavar="S",
                       help="restart an ffmpeg that wrote nothing for this long (default max(60, 3 x segment))")
    group.add_argument(FLAGS["require_mount"], dest="require_mount", action="store_const", const="true",
                       help="record only while the mirror dir is a mount point")
    group.add_argument(FLAGS["prune_interval"], dest="prune_interval", metavar="S",
                       help="delete segments past their camera's retention_hours this often (default 600; 0 = never)")
    group.add_argument("--config", metavar="FILE", help="KEY=VALUE settings file, re-read on SIGHUP")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Keep a redundant mirror of IP-camera recordings.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the master (foreground unless --daemon)")
    run.add_argument("--daemon", action="store_true", help="detach, write the pidfile once ready")
    run.add_argument("--log-file", metavar="FILE", help="log here (reopened after logrotate moves it)")
    run.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), type=str.upper)
    _add_settings(run)

    reload_ = commands.add_parser("reload", help="SIGHUP the running master: re-read settings file and database")
    _add_settings(reload_)

    stop = commands.add_parser("stop", help="SIGTERM the running master and wait until it is gone")
    stop.add_argument("--timeout", type=float, default=None, metavar="S", help="how long to wait (default stop timeout + 10)")
    _add_settings(stop)

    status = commands.add_parser("status", help="one line per camera; LSB exit codes")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    _add_settings(status)

    check = commands.add_parser("check", help="read settings and database; say for every camera whether it is mirrored")
    _add_settings(check)

    prune = commands.add_parser("prune", help="one retention pass by hand: delete segments past retention_hours")
    prune.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    _add_settings(prune)
    return parser


def _settings(args: argparse.Namespace, need_mirror_dir: bool = True) -> Settings:
    flags = {field: getattr(args, field, None) for field in FLAGS}
    return load(flags, os.environ, args.config, need_mirror_dir=need_mirror_dir)


def _absolute(args: argparse.Namespace) -> None:
    """A daemon runs in /, so every path given relative to the caller is fixed first."""
    for name in ("db", "mirror_dir", "state_dir", "config", "log_file"):
        value = getattr(args, name, None)
        if value:
            setattr(args, name, os.path.abspath(value))
    if os.environ.get("MIRROR_SUPERVISOR_CONFIG"):
        os.environ["MIRROR_SUPERVISOR_CONFIG"] = os.path.abspath(os.environ["MIRROR_SUPERVISOR_CONFIG"])


def _prepare_state_dir(settings: Settings) -> None:
    try:
        Path(settings.state_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"{FLAGS['state_dir']}: cannot create {str(settings.state_dir)!r}: {exc.strerror}") from None
    if not os.access(settings.state_dir, os.W_OK):
        raise SettingsError(f"{FLAGS['state_dir']}: {str(settings.state_dir)!r} is not writable")


def cmd_run(args: argparse.Namespace) -> int:
    from .master import Master

    _absolute(args)
    settings = _settings(args)
    assert settings.mirror_dir is not None
    if not settings.mirror_dir.is_dir():
        raise SettingsError(f"{FLAGS['mirror_dir']}: {str(settings.mirror_dir)!r} is not an existing directory")
    _prepare_state_dir(settings)
    if args.daemon and not args.log_file:
        raise SettingsError("--log-file: required with --daemon (a daemon has no terminal to log to)")
    if args.log_file:
        try:
            open(args.log_file, "a").close()
        except OSError as exc:
            raise SettingsError(f"--log-file: cannot write {args.log_file!r}: {exc.strerror}") from None

    ready_fd = daemon.detach() if args.daemon else None
    if ready_fd is not None:
        # Python-level crashes of the daemon land in the log file, not in /dev/null.
        log_fd = os.open(args.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log_fd, 2)
        os.close(log_fd)
    logs.setup(args.log_level, path=args.log_file)
    try:
        lock_fd = daemon.acquire_lock(settings.state_dir, wait=settings.stop_timeout + 5)
    except (daemon.AlreadyRunning, OSError) as exc:
        logs.master().error("not starting: %s", exc)
        daemon.report_ready(ready_fd, str(exc))
        if ready_fd is None:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    pid = os.getpid()

    def ready() -> None:
        daemon.write_pidfile(settings.state_dir, pid)
        daemon.report_ready(ready_fd)

    try:
        return Master(settings, reload_settings=lambda: _settings(args), on_ready=ready).run()
    finally:
        if os.getpid() == pid:  # never in a forked worker
            daemon.remove_pidfile(settings.state_dir, pid)
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
    settings = _settings(args, need_mirror_dir=False)
    pid = daemon.running_master(settings.state_dir)
    if pid is None:
        print(f"{PROG}: not running")
        return 0
    timeout = args.timeout if args.timeout is not None else settings.stop_timeout + 10
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
    from .status import read_status, render, with_segments

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
    data["running"] = True
    print(json.dumps(data, indent=1) if args.json else render(data))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import run_check

    settings = _settings(args)
    return run_check(settings, sys.stdout)


def cmd_prune(args: argparse.Namespace) -> int:
    """Exit 0 after a pass, 1 when it was skipped (database unreadable) or files could not go."""
    from .prune import run_pass

    settings = _settings(args)
    assert settings.mirror_dir is not None
    if not settings.mirror_dir.is_dir():
        raise SettingsError(f"{FLAGS['mirror_dir']}: {str(settings.mirror_dir)!r} is not an existing directory")
    report = run_pass(settings.db, settings.mirror_dir, dry_run=args.dry_run)
    for line in report.format_lines():
        print(line)
    failed = report.error is not None or any(cam.failed_files for cam in report.cameras)
    return 1 if failed else 0


COMMANDS = {"run": cmd_run, "reload": cmd_reload, "stop": cmd_stop, "status": cmd_status, "check": cmd_check,
            "prune": cmd_prune}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SettingsError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_SETTINGS


if __name__ == "__main__":
    sys.exit(main())
