"""Pure supervisor cost: many stand-in recorders and a larger ``cameras`` table, ours polling
every 1 s. Results: ``{"<system>": {...}}``.

The recorder is the C stand-in of the scale suite (``recorder``), run by both supervisors. Until
the scale suite joined the package this suite ran its own Python stand-in (``python3 -S``, a new
small file every second, exit 0 on SIGTERM); the tables of this suite count the supervisors'
processes only, never the recorders, so every row keeps its meaning. What the switch changes is
the load around the measurement: 200 interpreters (10 ms start, 9 MiB RSS each) competed with the
supervisors for 2 cores, the C recorders (no start-up, 0.9 MiB RSS) do not, so "every stand-in
wrote a file" no longer includes 200 interpreter starts. The report says which recorder a JSON
was measured with (``args["standin_recorder"]``; absent = the Python one).
"""

from __future__ import annotations

import time
from typing import Any

from . import costs, recorder, scenarios
from .common import brief, log, mono
from .context import Context
from .nvr import Nvr
from .session import Session
from .stats import summary

URL = "rtsp://127.0.0.1:9/live"  # never contacted: the stand-in ignores it
SEGMENT_SECONDS = 2
POLL_INTERVAL = 1.0


def run(ctx: Context) -> dict[str, Any]:
    standin = str(recorder.build(ctx.work / "bin"))  # "ffmpeg-stand-in": the observer's recorder name
    return {cls.name: one(ctx, cls, standin) for cls in ctx.systems}


def one(ctx: Context, system_cls: type, standin: str) -> dict[str, Any]:
    o = ctx.opts
    n, rows = o.standin_count, o.rows
    base = ctx.work / f"{system_cls.name}-standin-{n}"
    mirror = base / "mirror"
    mirror.mkdir(parents=True)
    nvr = Nvr(base / "nvr.db")
    cams = [f"s{i:04d}" for i in range(n)]
    nvr.add_many([(c, URL, SEGMENT_SECONDS, True) for c in cams] +
                 [(f"x{i:04d}", URL, SEGMENT_SECONDS, False) for i in range(max(0, rows - n))])
    system = system_cls(base / "run", nvr, mirror, standin, POLL_INTERVAL, 8.0)
    s = Session(system, cams, URL, SEGMENT_SECONDS, False, o.min_age)
    out: dict[str, Any] = {"system": system.name, "n": n, "rows": rows, "poll_interval": POLL_INTERVAL}
    name = f"{system.name} stand-ins N={n}"

    def step(key: str, label: str, fn: Any, *args: Any) -> None:
        log(f"{name}: {label}")
        out[key] = fn(*args)
        log(f"  {key}: {brief(out[key])}")

    try:
        if system.name == "ours":
            # Timed before the system starts, with nothing of the benchmark running.
            step("reconcile_in_process", f"reconcile in process x{o.reconcile_repeats}",
                 costs.reconcile_in_process, nvr.path, standin, mirror, o.reconcile_repeats)
            out["reconcile_profile"] = costs.profile_reconcile(nvr.path, standin, mirror)
        step("start", "start", scenarios.start, s, 180)
        time.sleep(3.0)
        step("idle_cpu", f"idle CPU over {o.idle_seconds}s", costs.idle_cpu, s, o.idle_seconds)
        if system.name == "ours":
            step("reload_cpu", f"master CPU per SIGHUP x{o.reconcile_repeats}", costs.master_cpu_per_reload,
                 system, o.reconcile_repeats, out["idle_cpu"]["master_pct"] / 100)
        else:
            log(f"{name}: apply with nothing changed")
            timings = [system.apply()["total_s"] for _ in range(max(3, o.reconcile_repeats // 4))]
            out["reload_nothing_changed_s"] = summary(timings)
        step("add", f"add camera x{o.standin_repeats}", scenarios.add_camera, s, o.standin_repeats, "a")
        if system.has_rpc:
            system.use_rpc = True
            step("add_rpc", f"add camera via XML-RPC x{o.standin_repeats}",
                 scenarios.add_camera, s, o.standin_repeats, "r")
            system.use_rpc = False
        if system.name == "ours":
            step("reload_sighup", "plain reload (SIGHUP)", scenarios.plain_reload, s, "sighup")
        wait = o.min_age - (mono() - s.started_at)
        if wait > 0:
            time.sleep(wait)
        step("memory", "memory", costs.memory, s)
        step("shutdown", "shutdown", scenarios.shutdown, s)
    finally:
        system.stop_everything()
    out["log_tail"] = system.log_text()[-3000:]
    return out
