"""``mirror-supervisor coverage``: its options, its window, its output, and how it stops.

Every time and span option is checked before anything is read (:mod:`timeargs`): a bad one is a
one-line error naming it, exit status 2. ``--html FILE`` also writes the timelines as one HTML
file (:mod:`.web.report_file`). Exit 0; 1 when ``--min-coverage`` is given and a camera
is below it. Reads the mirror's files and the segment index only: works whether or not the
daemon runs.

SIGTERM and SIGINT stop the command at once: the handler raises :class:`Stopped`, which unwinds
the computation; on the way out the pool's parsing processes get SIGKILL (:func:`coverage.probe_all`)
and the index is closed, then the command exits with 128 + the signal's number without waiting
for them (one stuck on a hung volume dies only when the volume answers). They also die with the
command when it is killed outright (their parent-death signal).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from .cameras.camera import is_safe_id
from .settings import SettingsError, absolute, check_mirror_dir

STOPPING_SIGNALS = (signal.SIGTERM, signal.SIGINT)
MAX_TOLERANCE = 3600.0


class Stopped(BaseException):
    """A stopping signal arrived (a BaseException: no ``except Exception`` on the way may keep it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def add_parser(commands: Any, add_settings: Callable[[argparse.ArgumentParser], None],
               ratio: Callable[[str], float]) -> None:
    """The ``coverage`` subcommand; times and spans are kept as text and checked by :func:`run`."""
    coverage = commands.add_parser(
        "coverage", help="seconds of footage the mirror holds per camera, its gaps and invalid segments")
    window = coverage.add_mutually_exclusive_group()
    window.add_argument("--since", metavar="SPAN", help="the window ends now and is this long: 90m, 24h, 7d (default 24h)")
    window.add_argument("--from", dest="from_", metavar="T", help="window start, RFC 3339 (2026-11-25T10:00:00Z); needs --to")
    coverage.add_argument("--to", metavar="T", help="window end, RFC 3339; needs --from")
    coverage.add_argument("--camera", action="append", metavar="ID", help="only this camera (repeatable; default all)")
    coverage.add_argument("--primary-dir", metavar="DIR",
                          help="the NVR's primary recordings, to compare with (default $HELDAR_RECORDINGS_DIR)")
    coverage.add_argument("--min-coverage", type=ratio, metavar="R",
                          help="exit 1 when a camera's coverage ratio is below R (0 to 1)")
    coverage.add_argument("--tolerance", metavar="S",
                          help=f"holes up to S seconds are not gaps (default 2, at most {MAX_TOLERANCE:g})")
    coverage.add_argument("--json", action="store_true", help="machine-readable output")
    coverage.add_argument("--html", metavar="FILE",
                          help="also write the timelines as one self-contained HTML file (replaced if it exists)")
    add_settings(coverage)


@contextmanager
def _stoppable() -> Iterator[None]:
    """SIGTERM and SIGINT raise :class:`Stopped` in the main thread while the block runs."""
    def stop(signum: int, frame: FrameType | None) -> None:
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOPPING_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's exit handlers: multiprocessing's would wait for the pool's
    processes, and one stuck on a hung volume can take any time (it gets its parent-death signal
    as this process ends, and dies when the volume answers). The index is closed by then."""
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(code)


def run(args: argparse.Namespace, load_settings: Callable[[argparse.Namespace], Any], prog: str) -> int:
    """The command; ``load_settings`` reads the usual settings (flags, environment, config file)."""
    from . import timeargs
    from .footage import coverage, coverage_report

    now = time.time()
    start, end = timeargs.window(args.since, args.from_, args.to, now)
    tolerance = coverage.DEFAULT_TOLERANCE if args.tolerance is None else timeargs.seconds(
        "--tolerance", args.tolerance, 0.0, MAX_TOLERANCE)
    bad = [camera for camera in args.camera or () if not is_safe_id(camera)]
    if bad:
        raise SettingsError(f"--camera: not a camera id: {bad[0]!r}")
    settings = load_settings(args)
    check_mirror_dir(settings)
    assert settings.mirror_dir is not None
    primary = args.primary_dir or os.environ.get("HELDAR_RECORDINGS_DIR") or None
    primary_dir = absolute(primary, getattr(args, "cwd", None), "--primary-dir") if primary else None
    if primary_dir is not None and not primary_dir.is_dir():
        raise SettingsError(f"--primary-dir: {str(primary_dir)!r} is not an existing directory")
    html_file = absolute(args.html, getattr(args, "cwd", None), "--html") if args.html else None
    if html_file is not None and not html_file.parent.is_dir():
        raise SettingsError(f"--html: {str(html_file.parent)!r} is not an existing directory")
    try:
        with _stoppable():
            report = coverage.compute(settings.mirror_dir, start, end, cameras=args.camera, primary_dir=primary_dir,
                                      tolerance=tolerance, now=now)
    except Stopped as stopped:
        print(f"{prog}: coverage stopped by {signal.Signals(stopped.signum).name}", file=sys.stderr)
        _exit_now(128 + stopped.signum)
    if html_file is not None:
        _write_html(html_file, report, str(settings.mirror_dir))
    if args.json:
        print(json.dumps(coverage_report.to_json(report), indent=1))
    else:
        print(coverage_report.render(report, args.min_coverage))
    if args.min_coverage is not None and any(cam.coverage < args.min_coverage for cam in report.cameras):
        return 1
    return 0


def _write_html(path: Path, report: Any, mirror_dir: str) -> None:
    """``--html FILE``: the report's timelines (web/report_file.py), replacing the file in one
    rename, mode 0644 (a file to attach to an incident report)."""
    from .plumbing.files import write_atomically
    from .web import report_file

    try:
        write_atomically(path, report_file.render(report, mirror_dir), mode=0o644)
    except OSError as exc:
        raise SettingsError(f"--html: cannot write {str(path)!r}: {exc.strerror or exc}") from None
