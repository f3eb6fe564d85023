"""Scale: one real master, N cameras (default 500) recording through the C stand-in
(``recorder``), M minutes (default 10), watched from outside only (``scale_watch``).

It measures how long until every camera is ``recording`` in status.json, whether any camera leaves
``recording`` afterwards (and the restarts status.json reports); whether status.json agrees with
the disk at the end (a camera whose newest segment grew in the last seconds but is not
``recording`` means a worker's report was lost); the master's CPU (user+system of the master
process only) per 30 s window once all cameras record, as % of one core; its RSS, USS and open
descriptors every 30 s (growth = a leak); the total RSS of the workers and of the recorders, and
PSS/USS of the workers at the end (forked workers share most of their pages with the master, so
RSS overstates them); the wall time of ``mirror-supervisor status`` with N cameras; the master's
shutdown time. supervisord is not run: N programs in one supervisord is a different question.

The value is self-contained (its own options, machine, date, commit, duration and leftovers), so
a run of this suite alone (``scripts/bench --scale``) replaces only this suite's data in an
existing JSON and the other suites' published figures stay as they were (``suites.Suite.standalone``).
Everything started here is stopped in ``finally``: SIGTERM to the master, then SIGKILL for any
process seen under the master that is still alive, then for any process naming the run's directory.
"""

from __future__ import annotations

import os
from typing import Any

import psutil

from . import procs, recorder, scale_reload, scale_stage, scale_watch
from .common import log, mono
from .context import Context
from .machine import machine_info

POLL_INTERVAL = 5.0  # the product default
RELOAD_REPEATS = 20  # add a camera + SIGHUP, at N cameras


def run(ctx: Context) -> dict[str, Any]:
    o = ctx.opts
    tmp = ctx.work / "scale"
    tmp.mkdir()
    seconds = o.minutes * 60
    began = mono()
    result: dict[str, Any] = {
        "config": {"cameras": o.cameras, "minutes": o.minutes, "segment_seconds": o.scale_segment_seconds,
                   "bytes_per_second": o.bytes_per_second, "poll_interval": POLL_INTERVAL,
                   "recorder": "C stand-in (benchlib/recorder.py)", "quick": o.quick},
        "machine": {**machine_info(), "load_before": [round(x, 2) for x in os.getloadavg()]},
        "limits": scale_stage.raise_fd_limit(o.cameras),
        "disk_needed_mib": scale_stage.check_disk(ctx.work, o.cameras, seconds, o.bytes_per_second) >> 20,
    }
    binary = recorder.build(ctx.work / "bin")
    scale_stage.make_database(tmp / "nvr.db", o.cameras, o.scale_segment_seconds)
    (tmp / "mirror").mkdir()
    master = scale_stage.start_master(tmp, binary, o.bytes_per_second, POLL_INTERVAL)
    procs.remember(master.pid)
    log(f"scale: master pid {master.pid}: {o.cameras} cameras for {o.minutes:g} min in {tmp}")
    tree = scale_watch.MasterTree(psutil.Process(master.pid))
    try:
        result.update(scale_watch.watch(master, tree, tmp, o.cameras, seconds))
        result["status_command"] = scale_watch.time_status_command(tmp)
        result["reload"] = scale_reload.measure(master, tmp, RELOAD_REPEATS, o.scale_segment_seconds)
    except RuntimeError:
        log("master log tail:\n" + "\n".join(scale_stage.log_tail(tmp / "master.log")))
        raise
    finally:
        try:
            tree.split()  # every worker and recorder alive now is waited for
            result["shutdown"] = scale_stage.stop_master(master, tree.seen)
            result["shutdown_s"] = result["shutdown"]["exited_s"]
        finally:  # whatever happened above, nothing started here may outlive the run
            result["left_behind_killed"] = scale_stage.sweep(tree.seen, tmp)
            result["log"] = scale_stage.log_summary(tmp / "master.log")
    result["leftovers"] = len(scale_stage.left_behind(tree.seen, tmp))
    result["duration_s"] = round(mono() - began, 1)
    derive(result)
    log(f"scale: {summary_line(result)}")
    return result


def derive(result: dict[str, Any]) -> None:
    """Steady state starts when every camera records; when that never happens (lost reports), the
    first 30 s sample stands in for it, so CPU and leaks are still measured."""
    samples = result["samples"]
    result["steady_from_s"] = result["all_recording_s"] if result["all_recording_s"] is not None else (
        samples[1]["t"] if len(samples) > 2 else None)
    result["master_cpu_steady_pct"] = scale_watch.steady_cpu(samples, result["steady_from_s"])
    steady = steady_samples(result)
    result["master_cpu_startup_s"] = round((steady[0] if steady else samples[-1])["cpu_s"] - samples[0]["cpu_s"], 2)
    if result["all_recording_s"] is not None and result["log"].get("start_to_first_fork_s") is not None:
        # Without the time before the first fork (orphan scan, first read), which other processes
        # on the machine can stretch: what is left is forking and the workers' first checks.
        result["all_recording_after_first_fork_s"] = round(
            result["all_recording_s"] - result["log"]["start_to_first_fork_s"], 1)


def steady_samples(result: dict[str, Any]) -> list[dict[str, Any]]:
    since = result.get("steady_from_s")
    return [s for s in result["samples"] if since is not None and s["t"] >= since - 0.01]


def summary_line(r: dict[str, Any]) -> str:
    cpu = r["master_cpu_steady_pct"]
    return (f"all recording after {r['all_recording_s']} s; writing but not recording "
            f"{r['disk']['writing_but_not_recording']}; master CPU steady max {max(cpu) if cpu else None} %; "
            f"shutdown {r['shutdown_s']} s; leftovers {r['leftovers']}")


def passed(r: dict[str, Any]) -> bool:
    """The run's own verdict: every camera recorded and status.json agreed with the disk."""
    return r.get("all_recording_s") is not None and (r.get("disk") or {}).get("writing_but_not_recording") == 0
