"""Side-by-side benchmark: mirror-supervisor versus supervisord with one program per camera.

    scripts/bench            # N = 8 and 32 real ffmpegs, 200 stand-ins, 500 cameras x 10 min at scale
    scripts/bench --skip-scale                   # the same without the scale suite (it keeps its tables)
    scripts/bench --scale --cameras 500 --minutes 10   # the scale suite alone (the others keep theirs)
    scripts/bench --quick    # N = 4, few repeats, 10 cameras x 1 min; build/bench-quick.md/.json
    scripts/bench --render-only docs/benchmarks.json   # re-render the tables, no measurement
    scripts/bench --coverage-hour                 # the last hour's coverage against retention, before/after
    scripts/bench --status-page [--status-page-before REV]   # the status page: 100 cameras x a day, warm index

Both systems run the same ffmpeg argv per camera, one system at a time, on this machine. Every
process started here is stopped in ``finally`` blocks, and the run ends by counting what is left.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from . import procs, report, suite_scale, targets
from .common import ROOT, log, mono
from .context import Context
from .machine import machine_info
from .ours import Ours
from .suites import SUITES, Suite
from .supervisord import Supervisord

SYSTEMS = {"ours": Ours, "supervisord": Supervisord}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="N=4, few repeats, short windows (development)")
    p.add_argument("--counts", help="comma-separated camera counts (default 8,32)")
    p.add_argument("--repeats", type=int, help="add-camera repeats (default 20)")
    p.add_argument("--standin-count", type=int, help="stand-in recorders (default 200)")
    p.add_argument("--rows", type=int, help="rows in cameras for the stand-in run (default 1000)")
    p.add_argument("--idle-seconds", type=float, help="idle CPU window (default 30)")
    p.add_argument("--segment-seconds", type=int, default=10)
    p.add_argument("--poll-interval", type=float, default=5.0, help="ours, real cameras (default 5, the product default)")
    p.add_argument("--systems", default="ours,supervisord")
    p.add_argument("--skip-real", action="store_true")
    p.add_argument("--skip-standin", action="store_true")
    p.add_argument("--skip-scale", action="store_true", help="leave the scale suite out (its published tables stay)")
    p.add_argument("--scale", action="store_true",
                   help="run only the scale suite; the other suites' published tables and figures stay")
    p.add_argument("--cameras", type=int, help="scale suite: cameras (default 500; 10 with --quick)")
    p.add_argument("--minutes", type=float, help="scale suite: minutes (default 10; 1 with --quick)")
    p.add_argument("--scale-segment-seconds", type=int, default=60, help="scale suite: segment length (default 60)")
    p.add_argument("--bytes-per-second", type=int, default=2048,
                   help="scale suite: mean bytes each stand-in appends a second (default 2048)")
    p.add_argument("--resume", action="store_true",
                   help="run only the resume suite (outages, a camera that stays down); the others' tables stay")
    p.add_argument("--skip-resume", action="store_true", help="leave the resume suite out (its published tables stay)")
    p.add_argument("--resume-before", help="resume suite: the baseline commit (default: the one before the port probe)")
    p.add_argument("--resume-outages", help="resume suite: outage lengths in s (default 5,30,120; 5,10 with --quick)")
    p.add_argument("--resume-down-seconds", type=float,
                   help="resume suite: how long the camera that stays down is watched (default 300; 60 with --quick)")
    p.add_argument("--coverage", action="store_true",
                   help="run only the coverage suite (index, box parsing; not in the default run); others' tables stay")
    p.add_argument("--skip-coverage", action="store_true", help="leave the coverage suite out (its tables stay)")
    p.add_argument("--coverage-cameras", type=int, help="coverage suite: cameras (default 100; 10 with --quick)")
    p.add_argument("--coverage-segments", type=int, help="coverage suite: segments each (default 1440; 144 with --quick)")
    p.add_argument("--worker-pages", action="store_true",
                   help="run only the worker-pages suite (what each part of a worker costs in private pages; "
                        "not in the default run); others' tables stay")
    p.add_argument("--coverage-hour", action="store_true",
                   help="run only the coverage-hour suite (the last hour of one camera against its retention, "
                        "before and after; not in the default run); others' tables stay")
    p.add_argument("--coverage-hour-files", help="coverage-hour suite: segments in the camera, comma-separated "
                                                 "(default 1440,43200; 144,4320 with --quick)")
    p.add_argument("--coverage-hour-before", help="coverage-hour suite: the baseline commit (default: the one "
                                                  "before coverage_files.py)")
    p.add_argument("--status-page", action="store_true",
                   help="run only the status-page suite (a page of 100 cameras x a day from a warm index; not in "
                        "the default run); others' tables stay")
    p.add_argument("--status-page-cameras", type=int, help="status-page suite: cameras (default 100; 10 with --quick)")
    p.add_argument("--status-page-segments", type=int,
                   help="status-page suite: 60 s segments each (default 1440, a day; 1440 with --quick too)")
    p.add_argument("--status-page-before", metavar="REV",
                   help="status-page suite: measure commit REV's package too, on the same files (before/after)")
    p.add_argument("--output", help="markdown report (default docs/benchmarks.md; build/bench-quick.md with --quick)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--render-only", metavar="JSON", help="re-write the report's tables from a previous run's JSON")
    return p.parse_args()


def options(args: argparse.Namespace) -> SimpleNamespace:
    """Every knob the suites read, defaults filled in (quick or full)."""
    q = args.quick
    only = (args.scale or args.resume or args.coverage or args.coverage_hour  # standalone suites asked for by name
            or args.worker_pages or args.status_page)
    return SimpleNamespace(
        quick=q,
        counts=[int(x) for x in (args.counts or ("4" if q else "8,32")).split(",")],
        repeats=args.repeats or (5 if q else 20),
        change_repeats=2 if q else 5,
        kill_repeats=1 if q else 3,
        standin_count=args.standin_count or (20 if q else 200),
        rows=args.rows or (100 if q else 1000),
        idle_seconds=args.idle_seconds or (10.0 if q else 30.0),
        idle_after_seconds=5.0 if q else 10.0,
        min_age=15.0 if q else 60.0,
        segment_seconds=args.segment_seconds,
        poll_interval=args.poll_interval,
        standin_repeats=3 if q else 10,
        reconcile_repeats=8 if q else 20,
        skip_real=args.skip_real or only,
        skip_standin=args.skip_standin or only,
        skip_fork=only,
        skip_scale=(args.skip_scale and not args.scale) or (only and not args.scale),
        skip_resume=args.skip_resume or (only and not args.resume),
        skip_coverage=args.skip_coverage or not args.coverage,  # opt-in: its cold pass is slow
        skip_coverage_hour=not args.coverage_hour,  # opt-in, like the coverage suite
        skip_worker_pages=not args.worker_pages,  # opt-in: about 5 minutes of single-worker runs
        resume_before=args.resume_before,
        resume_outages=[float(x) for x in (args.resume_outages or ("5,10" if q else "5,30,120")).split(",")],
        resume_down_seconds=args.resume_down_seconds or (60.0 if q else 300.0),
        coverage_cameras=args.coverage_cameras or (10 if q else 100),
        coverage_segments=args.coverage_segments or (144 if q else 1440),
        coverage_repeats=1 if q else 3,
        coverage_hour_files=[int(x) for x in (args.coverage_hour_files or ("144,4320" if q else "1440,43200")).split(",")],
        coverage_hour_repeats=5 if q else 20,
        coverage_hour_before=args.coverage_hour_before,
        skip_status_page=not args.status_page,  # opt-in, like the coverage suites
        status_page_cameras=args.status_page_cameras or (10 if q else 100),
        status_page_segments=args.status_page_segments or 1440,
        status_page_repeats=3 if q else 10,
        status_page_before=args.status_page_before,
        standin_recorder="recorder: the C stand-in (`scripts/benchlib/recorder.py`)",
        cameras=args.cameras or (10 if q else 500),
        minutes=args.minutes or (1.0 if q else 10.0),
        scale_segment_seconds=args.scale_segment_seconds,
        bytes_per_second=args.bytes_per_second,
    )


def measure(ctx: Context, suites: list[Suite]) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_info(), "args": dict(vars(ctx.opts))}
    began = mono()
    try:
        for suite in suites:
            results[suite.key] = suite.run(ctx)
    finally:
        procs.kill_leftovers(ctx.work)
        time.sleep(0.5)
        results["leftovers"] = procs.count_leftovers(ctx.work)
    results["duration_s"] = mono() - began
    return results


def merge(previous: dict[str, Any], fresh: dict[str, Any], ran: list[Suite]) -> dict[str, Any]:
    """What to publish. Standalone suites carry their own provenance: a run of those only replaces
    their keys in ``previous`` (the main run's figures, machine and args stay as published); a run
    with any other suite is a new main run, and standalone suites it left out keep their value."""
    if all(s.standalone for s in ran):
        return {**previous, **{s.key: fresh[s.key] for s in ran}}
    kept = {s.key: previous[s.key] for s in SUITES if s.standalone and s not in ran and s.key in previous}
    return {**fresh, **kept}


def load(json_path: Path) -> dict[str, Any]:
    try:
        return json.loads(json_path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise SystemExit(f"{json_path} is not valid JSON ({exc}); move it away to start afresh") from None


def main() -> int:
    args = parse()
    if args.render_only:
        json_path = Path(args.render_only)
        results = json.loads(json_path.read_text())
        output = Path(args.output) if args.output else json_path.with_suffix(".md")
        report.write(output, report.render(results))
        log(f"re-rendered the tables of {output} from {json_path}")
        return 0
    opts = options(args)
    output = Path(args.output) if args.output else ROOT / ("build/bench-quick.md" if opts.quick else "docs/benchmarks.md")
    output.parent.mkdir(parents=True, exist_ok=True)
    if not report.writable(output):
        print(f"{output} has no generated:start/generated:end markers; not measuring", file=sys.stderr)
        return 2
    json_path = output.with_suffix(".json")
    previous = load(json_path)  # read before measuring, so a broken file does not waste a run
    systems = [SYSTEMS[s] for s in args.systems.split(",")]
    ctx = Context(opts, Path(), systems)  # the work directory is made once the checks passed
    ran = [suite for suite in SUITES if suite.wanted(ctx)]
    if not ran:
        print("no suite left to run", file=sys.stderr)
        return 2
    if Supervisord in systems and not all(s.standalone for s in ran):
        try:
            import supervisor  # noqa: F401
        except ImportError:
            print("supervisor is not installed in this venv; run scripts/bench (it installs it)", file=sys.stderr)
            return 2
    for signum in (signal.SIGTERM, signal.SIGHUP):  # run the finally blocks
        signal.signal(signum, lambda *_: sys.exit(143))
    ctx.work = Path(tempfile.mkdtemp(prefix="mirror-bench-"))
    log(f"work dir {ctx.work}; suites: {', '.join(s.key for s in ran)}")
    try:
        fresh = measure(ctx, ran)
    finally:
        if not args.keep:
            shutil.rmtree(ctx.work, ignore_errors=True)
    fresh["json_name"] = json_path.name
    results = merge(previous, fresh, ran)
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    report.write(output, report.render(results))
    log(f"wrote {output} and {json_path} in {fresh['duration_s'] / 60:.1f} min; leftovers: {fresh['leftovers']}")
    if not all(s.standalone for s in ran):
        for t in targets.evaluate(results):
            log(f"{'pass' if t['pass'] else 'MISS'}  {t['target']}: {t['measured']}")
    if "scale" in fresh:
        verdict = "pass" if suite_scale.passed(fresh["scale"]) else "FAIL"
        log(f"scale {verdict}: {suite_scale.summary_line(fresh['scale'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
