"""Scale benchmark: one real master, N cameras, a cheap ffmpeg stand-in, M minutes.

    .venv/bin/python scripts/bench_scale --cameras 500 --minutes 10 --json build/bench-scale.json

What it does: builds the stand-in recorder (scripts/stand_in_recorder.py, a static C program,
into a temporary directory), writes a temporary NVR database with N mirrored cameras, starts
``python -m mirror_supervisor run`` in the foreground as a child in its own session, and watches
it from outside only (status.json, /proc via psutil, the mirror directory, the ``status``
command), as an operator would. It measures:

- how long until every camera is ``recording`` in status.json, and whether any camera leaves
  ``recording`` afterwards (and the restart count status.json reports);
- whether status.json agrees with the disk at the end: a camera whose newest segment grew in the
  last seconds but is not ``recording`` in status.json means a worker's report was lost;
- the master's CPU (user+system of the master process only) per 30 s window once all cameras
  record, as % of one core; its RSS, USS and open descriptors every 30 s (growth = a leak);
- the total RSS of the workers and of the recorders, and PSS/USS of the workers at the end
  (forked workers share most of their pages with the master, so RSS overstates them);
- the wall time of ``mirror-supervisor status`` with N cameras, and the master's shutdown time.

Everything it starts is stopped in ``finally`` (also on Ctrl-C or SIGTERM): SIGTERM to the
master, then SIGKILL for any process it saw under the master that is still alive, then for any
process whose command line names the temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: bench_scale, stand_in_recorder
import stand_in_recorder  # noqa: E402
from bench_scale import cleanup, observe, stage  # noqa: E402
from bench_scale.common import log  # noqa: E402


class Interrupted(Exception):
    """SIGTERM/SIGHUP to the benchmark: unwind through the same ``finally`` as Ctrl-C."""


def _interrupt(signum: int, _frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)



def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    seconds = args.minutes * 60
    result: dict[str, Any] = {
        "config": {"cameras": args.cameras, "minutes": args.minutes, "segment_seconds": args.segment_seconds,
                   "bytes_per_second": args.bytes_per_second, "poll_interval": 5, "recorder": "static C stand-in"},
        "machine": {"cpus": os.cpu_count(), "load_before": [round(x, 2) for x in os.getloadavg()],
                    "python": platform.python_version(), "kernel": platform.release()},
        "limits": stage.raise_fd_limit(args.cameras),
        "disk_needed_mib": stage.check_disk(tmp, args.cameras, seconds, args.bytes_per_second) >> 20,
    }
    recorder = stand_in_recorder.build(tmp / "bin")
    stage.make_database(tmp / "nvr.db", args.cameras, args.segment_seconds)
    (tmp / "mirror").mkdir()
    master = stage.start_master(tmp, recorder, args.bytes_per_second)
    log(f"master pid {master.pid}: {args.cameras} cameras for {args.minutes} min in {tmp}")
    tree = observe.Tree(psutil.Process(master.pid))
    try:
        result.update(observe.watch(master, tree, tmp, args.cameras, seconds))
        result["status_command"] = observe.time_status_command(tmp)
    except RuntimeError:
        log("master log tail:\n" + "\n".join(cleanup.log_tail(tmp / "master.log")))
        raise
    finally:
        try:
            result["shutdown_s"] = cleanup.stop_master(master)
        finally:  # whatever happened above, nothing started here may outlive the run
            result["left_behind_killed"] = cleanup.sweep(tree, tmp)
            result["log"] = cleanup.log_summary(tmp / "master.log")
    # Steady state starts when every camera records; when that never happens (lost reports), the
    # first 30 s sample stands in for it, so CPU and leaks are still measured.
    samples = result["samples"]
    result["steady_from_s"] = result["all_recording_s"] if result["all_recording_s"] is not None else (
        samples[1]["t"] if len(samples) > 2 else None)
    result["master_cpu_steady_pct"] = observe.steady_cpu(samples, result["steady_from_s"])
    steady = [s for s in samples if result["steady_from_s"] is not None and s["t"] >= result["steady_from_s"] - 0.01]
    result["master_cpu_startup_s"] = round((steady[0] if steady else samples[-1])["cpu_s"] - samples[0]["cpu_s"], 2)
    if result["all_recording_s"] is not None and result["log"].get("start_to_first_fork_s") is not None:
        # Without the time before the first fork (orphan scan, first read), which other processes
        # on the machine can stretch: what is left is forking and the workers' first checks.
        result["all_recording_after_first_fork_s"] = round(
            result["all_recording_s"] - result["log"]["start_to_first_fork_s"], 1)
    return result


def report(result: dict[str, Any]) -> str:
    """The small table: the numbers someone compares between two versions of the master."""
    samples, cpu = result["samples"], result["master_cpu_steady_pct"]
    first, last = samples[0], samples[-1]
    steady = [s for s in samples if result["steady_from_s"] is not None and s["t"] >= result["steady_from_s"] - 0.01]
    base = steady[0] if steady else first
    c = result["config"]
    rows = [
        ("cameras x minutes", f"{c['cameras']} x {c['minutes']}"),
        ("all recording after", f"{result['all_recording_s']:.1f} s" if result["all_recording_s"] else "NEVER"),
        ("  of which after the first fork", f"~{result.get('all_recording_after_first_fork_s')} s"),
        ("milestones (s)", " ".join(f"{k}={v}" for k, v in result["milestones"].items())),
        ("recording at end (status.json)", f"{result['recording_at_end']}/{c['cameras']} {result['states_at_end']}"),
        ("writing on disk at end", f"{result['disk']['cameras_writing']}/{c['cameras']}"),
        ("writing but not 'recording'", f"{result['disk']['writing_but_not_recording']} {result['disk']['examples'][:3]}"),
        ("cameras that left 'recording'", f"{result['cameras_left_recording']} ({result['left_recording_events']} polls)"),
        ("restarts total / after all-rec", f"{result['restarts_total']} / {result['restarts_after_all_recording']}"),
        ("steady state from", f"t={result['steady_from_s']} s"),
        ("master CPU in start-up, s", str(result["master_cpu_startup_s"])),
        ("master CPU steady, % core", f"mean {statistics.mean(cpu):.2f} max {max(cpu):.2f}" if cpu else "-"),
        ("master RSS KiB (steady->end)", f"{base['master_rss_kib']} -> {last['master_rss_kib']}"),
        ("master USS KiB (steady->end)", f"{base['master_uss_kib']} -> {last['master_uss_kib']}"),
        ("master fds (steady->end)", f"{base['master_fds']} -> {last['master_fds']}"),
        ("workers RSS total MiB", f"{last['workers_rss_mib']} ({last['workers']} workers)"),
        ("workers PSS / USS MiB", f"{result['worker_memory']['workers_pss_mib']} / {result['worker_memory']['workers_uss_mib']}"),
        ("recorders RSS total MiB", f"{last['recorders_rss_mib']} ({last['recorders']} recorders)"),
        ("status cmd wall s (text/json)", "/".join(str(result['status_command'][m]['median_s']) for m in ("text", "json"))),
        ("start->first fork, fork spread s", f"{result['log'].get('start_to_first_fork_s')}, "
                                             f"{result['log'].get('first_to_last_fork_s')}"),
        ("master shutdown s", str(result["shutdown_s"])),
        ("log warnings/errors", str(result["log"].get("warnings_or_errors"))),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description="Run one master with N stand-in cameras for M minutes.")
    parser.add_argument("--cameras", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--segment-seconds", type=int, default=60)
    parser.add_argument("--bytes-per-second", type=int, default=2048, help="mean bytes each recorder appends a second")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the full result here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, mirror)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        result = run(args, tmp)
    except (KeyboardInterrupt, Interrupted) as exc:
        log(f"interrupted ({type(exc).__name__} {exc}); everything started was stopped")
        return 130
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(report(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        log(f"wrote {args.json}")
    return 0 if result["all_recording_s"] is not None and result["disk"]["writing_but_not_recording"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
