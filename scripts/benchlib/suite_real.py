"""Real cameras: for each N and each system, scenarios 1-9 with N real ffmpegs pulling from one
local synthetic RTSP camera. Results: ``{"<system>-<N>": {...}}``."""

from __future__ import annotations

import subprocess
import time
from typing import Any

from . import costs, scenarios
from .common import brief, log, mono
from .context import Context
from .nvr import Nvr
from .rtsp import free_port, start_camera
from .session import Session


def run(ctx: Context) -> dict[str, Any]:
    port = free_port()
    camera = start_camera(port, ctx.work)
    url = f"rtsp://127.0.0.1:{port}/live"
    try:
        return {f"{cls.name}-{n}": one(ctx, cls, n, url) for n in ctx.opts.counts for cls in ctx.systems}
    finally:
        camera.terminate()
        try:
            camera.wait(timeout=10)
        except subprocess.TimeoutExpired:
            camera.kill()
            camera.wait(timeout=10)


def one(ctx: Context, system_cls: type, n: int, url: str) -> dict[str, Any]:
    o = ctx.opts
    base = ctx.work / f"{system_cls.name}-{n}"
    mirror = base / "mirror"
    mirror.mkdir(parents=True)
    nvr = Nvr(base / "nvr.db")
    cams = [f"c{i:03d}" for i in range(n)]
    nvr.add_many([(c, url, o.segment_seconds, True) for c in cams])
    system = system_cls(base / "run", nvr, mirror, "ffmpeg", o.poll_interval, 8.0)
    s = Session(system, cams, url, o.segment_seconds, True, o.min_age)
    out: dict[str, Any] = {"system": system.name, "n": n, "poll_interval": o.poll_interval}
    name = f"{system.name} N={n}"

    def step(key: str, label: str, fn: Any, *args: Any) -> None:
        log(f"{name}: {label}")
        out[key] = fn(*args)
        log(f"  {key}: {brief(out[key])}")

    try:
        step("start", "start", scenarios.start, s)
        step("add", f"add camera x{o.repeats}", scenarios.add_camera, s, o.repeats, "a")
        if system.has_rpc:
            system.use_rpc = True
            step("add_rpc", f"add camera via XML-RPC x{o.repeats}", scenarios.add_camera, s, o.repeats, "r")
            system.use_rpc = False
        step("change", f"change segment length x{o.change_repeats}", scenarios.change_segment, s, o.change_repeats)
        step("reload_sighup", "plain reload (SIGHUP)", scenarios.plain_reload, s, "sighup")
        if system.has_gentle_reload:
            step("reload_update", "plain reload (apply)", scenarios.plain_reload, s, "apply")
        time.sleep(2.0)
        step("idle_cpu", f"idle CPU over {o.idle_seconds}s", costs.idle_cpu, s, o.idle_seconds)
        targets = list(reversed(cams))  # the longest-running cameras (scenario 3 touched the first)
        log(f"{name}: kill ffmpeg x{o.kill_repeats}")
        out["kill_ffmpeg"] = [scenarios.kill_ffmpeg(s, c) for c in targets[1:1 + o.kill_repeats]]
        log(f"  kill_ffmpeg: {out['kill_ffmpeg']}")
        if system.has_workers:
            step("kill_worker", "kill worker", scenarios.kill_worker, s, targets[0])
        time.sleep(3.0)
        step("idle_cpu_after_kills", f"idle CPU again after the kills, over {o.idle_after_seconds}s",
             costs.idle_cpu, s, o.idle_after_seconds)
        wait = o.min_age - (mono() - s.started_at)
        if wait > 0:
            time.sleep(wait)
        step("memory", "memory", costs.memory, s)
        step("shutdown", "shutdown", scenarios.shutdown, s)
        step("orphans", "orphans after SIGKILL", scenarios.orphans, s)
    finally:
        system.stop_everything()
    out["log_tail"] = system.log_text()[-3000:]
    return out

