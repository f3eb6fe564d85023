"""What the supervisors cost: memory and idle CPU of their own processes (never ffmpeg), and the
price of one reconcile of the ``cameras`` table, in process and in the running master."""

from __future__ import annotations

import cProfile
import os
import pstats
import signal
import statistics
import time
from pathlib import Path
from typing import Any

import psutil

from mirror_supervisor.cameras import database
from mirror_supervisor.master import reconcile
from mirror_supervisor.worker.ffmpeg import build_command

from .common import mono
from .session import Session
from .stats import summary
from .systems import System


def memory(s: Session) -> dict[str, Any]:
    """6. psutil USS / PSS / RSS of the master (or supervisord) and of each worker."""
    pids = s.system.supervisor_pids()
    now = time.time()

    def info(pid: int) -> dict[str, Any] | None:
        try:
            proc = psutil.Process(pid)
            full = proc.memory_full_info()
            return {"pid": pid, "uss": full.uss, "pss": full.pss, "rss": full.rss,
                    "age_s": round(now - proc.create_time(), 1), "threads": proc.num_threads()}
        except psutil.Error:
            return None

    master = [m for m in (info(p) for p in pids["master"]) if m]
    workers = [w for w in (info(p) for p in pids["workers"]) if w]
    aged = [w for w in workers if w["age_s"] >= s.min_age] or workers
    result: dict[str, Any] = {
        "master": master[0] if master else None,
        "workers": len(workers),
        "workers_aged": len([w for w in workers if w["age_s"] >= s.min_age]),
        "min_age_s": s.min_age,
    }
    if workers:
        uss = [w["uss"] for w in aged]
        from_start = [w["uss"] for w in workers if w["pid"] in s.initial_workers]
        result.update({
            "worker_uss_median": statistics.median(uss), "worker_uss_max": max(uss),
            "worker_uss_min": min(uss),
            "worker_pss_mean": statistics.fmean(w["pss"] for w in aged),
            "workers_uss_total": sum(w["uss"] for w in workers),
            "workers_pss_total": sum(w["pss"] for w in workers),
            "workers_rss_total": sum(w["rss"] for w in workers),
            "worker_threads": statistics.median(w["threads"] for w in workers),
            "per_worker": workers,
            "worker_uss_median_since_start": statistics.median(from_start) if from_start else None,
            "workers_since_start": len(from_start),
            "worker_breakdown": smaps_breakdown(aged[0]["pid"]),
        })
    if master:
        result["master_breakdown"] = smaps_breakdown(master[0]["pid"])
        result["total_uss"] = master[0]["uss"] + result.get("workers_uss_total", 0)
        result["total_pss"] = master[0]["pss"] + result.get("workers_pss_total", 0)
    return result


def smaps_breakdown(pid: int, top: int = 8) -> list[dict[str, Any]]:
    """Where a process's USS lives: Private_Clean + Private_Dirty by mapping, largest first."""
    totals: dict[str, int] = {}
    name = "?"
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):
                    parts = line.split()
                    name = parts[5] if len(parts) > 5 else "[anon]"
                    if name.startswith("/"):
                        name = os.path.basename(name)
                elif first in ("Private_Clean:", "Private_Dirty:"):
                    totals[name] = totals.get(name, 0) + int(line.split()[1]) * 1024
    except OSError:
        return []
    ordered = sorted(totals.items(), key=lambda kv: -kv[1])
    return [{"mapping": k, "bytes": v} for k, v in ordered[:top] if v]


def idle_cpu(s: Session, seconds: float) -> dict[str, Any]:
    """7. User + system time of the supervisor's own processes over ``seconds``, in % of a core."""
    pids = s.system.supervisor_pids()

    def times(pid: int) -> float | None:
        try:
            t = psutil.Process(pid).cpu_times()
            return t.user + t.system
        except psutil.Error:
            return None

    t_before = {pid: times(pid) for group in pids.values() for pid in group}
    wall0 = mono()
    psutil.cpu_percent(interval=None)
    time.sleep(seconds)
    machine = psutil.cpu_percent(interval=None)
    wall = mono() - wall0
    t_after = {pid: times(pid) for pid in t_before}
    used = {pid: after - before for pid in t_before
            if (before := t_before[pid]) is not None and (after := t_after[pid]) is not None}
    master = sum(used.get(p, 0.0) for p in pids["master"])
    workers = [used[p] for p in pids["workers"] if p in used]
    return {
        "seconds": round(wall, 3),
        "master_pct": 100 * master / wall,
        "workers_total_pct": 100 * sum(workers) / wall,
        "worker_mean_pct": 100 * statistics.fmean(workers) / wall if workers else None,
        "total_pct": 100 * (master + sum(workers)) / wall,
        "workers": len(workers),
        "machine_busy_pct": machine,
        "loadavg_1m": os.getloadavg()[0],
        "tick_s": 1 / os.sysconf("SC_CLK_TCK"),
    }


def reconcile_in_process(db: Path, ffmpeg: str, mirror_dir: Path, repeats: int) -> dict[str, Any]:
    """read_cameras + wanted + build_command + the per-slot argv comparison, timed in this process
    (the master's work on a poll that finds the table changed)."""
    reads, plans, totals = [], [], []
    running_keys: dict[str, tuple[str, ...]] | None = None
    rows = mirrored = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        cameras = database.read_cameras(db)
        t1 = time.perf_counter()
        good, _bad = reconcile.wanted(cameras, True)
        keys = {cid: build_command(ffmpeg, cam, mirror_dir) for cid, cam in good.items()}
        if running_keys is None:
            running_keys = dict(keys)
        # What each camera's slot does with the answer: compare its worker's argv with the wanted one.
        changed = [cid for cid in set(keys) | set(running_keys) if running_keys.get(cid) != keys.get(cid)]
        t2 = time.perf_counter()
        assert not changed, changed
        reads.append(t1 - t0)
        plans.append(t2 - t1)
        totals.append(t2 - t0)
        rows, mirrored = len(cameras), len(keys)
    return {"rows": rows, "mirrored": mirrored, "loadavg_1m": os.getloadavg()[0],
            "read_and_parse_s": summary(reads),
            "wanted_build_diff_s": summary(plans), "total_s": summary(totals)}


def profile_reconcile(db: Path, ffmpeg: str, mirror_dir: Path, repeats: int = 10, top: int = 8) -> list[dict[str, Any]]:
    """Where one in-process reconcile spends its time (cProfile, own time per reconcile)."""

    def once() -> None:
        good, _bad = reconcile.wanted(database.read_cameras(db), True)
        for camera in good.values():
            build_command(ffmpeg, camera, mirror_dir)

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeats):
        once()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]  # {(file, line, name): (cc, nc, tt, ct, callers)}
    rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
    return [{"function": f"{Path(k[0]).name}:{k[1]}({k[2]})", "calls": v[1] // repeats,
             "tottime_s": v[2] / repeats} for k, v in rows]


def master_cpu_per_reload(system: System, reloads: int, idle_rate: float) -> dict[str, Any]:
    """The running master's CPU time per SIGHUP (a full reconcile), measured from outside, with
    the idle rate (CPU seconds per second) subtracted."""
    proc = psutil.Process(system.root)
    t = proc.cpu_times()
    c0, w0 = t.user + t.system, mono()
    for _ in range(reloads):
        os.kill(system.root, signal.SIGHUP)
        time.sleep(0.25)
    t = proc.cpu_times()
    c1, wall = t.user + t.system, mono() - w0
    per = (c1 - c0 - idle_rate * wall) / reloads
    return {"reloads": reloads, "cpu_s_total": c1 - c0, "wall_s": wall, "cpu_per_reload_s": per}
