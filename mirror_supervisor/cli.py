"""The command line (SPEC section 8): ``mirror-supervisor <command> [settings]``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import __version__, logs
from .settings import FLAGS, Settings, SettingsError, load

PROG = "mirror-supervisor"


def _add_settings(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (flag > environment > --config file > default)")
    group.add_argument(FLAGS["db"], dest="db", metavar="PATH", help="NVR SQLite database (default ./data/heldar.db)")
    group.add_argument(FLAGS["mirror_dir"], dest="mirror_dir", metavar="DIR", help="mirror root; required")
    group.add_argument(FLAGS["ffmpeg"], dest="ffmpeg", metavar="PATH", help="ffmpeg binary (default ffmpeg)")
    group.add_argument(FLAGS["poll_interval"], dest="poll_interval", metavar="S", help="database poll interval (default 5)")
    group.add_argument(FLAGS["stop_timeout"], dest="stop_timeout", metavar="S", help="per-worker stop budget (default 8)")
    group.add_argument(FLAGS["state_dir"], dest="state_dir", metavar="DIR", help="pidfile and status file directory")
    group.add_argument(FLAGS["recorder_enabled"], dest="recorder_enabled", metavar="BOOL", help="mirror at all (default true)")
    group.add_argument("--config", metavar="FILE", help="KEY=VALUE settings file, re-read on SIGHUP")
    group.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), type=str.upper)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Keep a redundant mirror of IP-camera recordings.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the master in the foreground")
    _add_settings(run)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    flags = {field: getattr(args, field, None) for field in FLAGS}
    return load(flags, os.environ, args.config)


def cmd_run(args: argparse.Namespace) -> int:
    from .master import Master

    settings = _settings(args)
    if not settings.mirror_dir.is_dir():
        raise SettingsError(f"{FLAGS['mirror_dir']}: {str(settings.mirror_dir)!r} is not an existing directory")
    logs.setup(args.log_level)
    return Master(settings, reload_settings=lambda: _settings(args)).run()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"run": cmd_run}[args.command](args)
    except SettingsError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
