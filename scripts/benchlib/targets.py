"""The project's targets for mirror-supervisor, checked against a run's figures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .tables import get, mib, ms, num, pcts, section

MIB_2MB = 2e6  # the worker memory target: 2 MB (1.91 MiB)


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    a = results["args"]
    real = results.get("real") or {}
    so = (results.get("standin") or {}).get("ours") or {}
    counts = a["counts"]
    big = max(counts)
    ours_big = real.get(f"ours-{big}") or {}
    found: list[dict[str, Any]] = []

    def add(target: str, value: Any, limit: float, fmt: Callable[[Any], str], note: str = "") -> None:
        entry: dict[str, Any] = {"target": target, "value": value, "limit": limit,
                                 "pass": value is not None and value <= limit, "measured": fmt(value) + note}
        if value is None:
            entry["by"] = "not measured"
        elif value > limit:
            entry["by"] = f"{fmt(value - limit)} over ({value / limit:.1f}x the target)" if limit else fmt(value)
        found.append(entry)

    for label, r in ([(f"N={n} real", real.get(f"ours-{n}") or {}) for n in counts] +
                     [(f"N={a['standin_count']} stand-ins, {a['rows']} rows", so)]):
        add(f"reload -> new camera's ffmpeg running, p50 <= 50 ms ({label})",
            get(r, "add", "ffmpeg_running_s", "p50"), 0.050, ms)
        add(f"reload -> new camera's ffmpeg running, p90 <= 200 ms ({label})",
            get(r, "add", "ffmpeg_running_s", "p90"), 0.200, ms)
    restarted = 0
    for r in [real.get(f"ours-{n}") or {} for n in counts] + [so]:
        restarted += (get(r, "add", "others_restarted") or 0) + (get(r, "change", "others_restarted") or 0)
        restarted += get(r, "reload_sighup", "restarted") or 0
    add("unchanged cameras restarted by any reload = 0 (scenarios 2, 3, 4, all N)", restarted, 0, num)
    add(f"shutdown of {big} real cameras <= 2 s", get(ours_big, "shutdown", "all_gone_s"), 2.0, ms)
    add(f"shutdown of {a['standin_count']} stand-ins <= 3 s", get(so, "shutdown", "all_gone_s"), 3.0, ms)
    for label, r in ((f"N={big} real", ours_big), (f"{a['standin_count']} stand-ins", so)):
        add(f"worker USS <= 2 MB (1.91 MiB) each after {a['min_age']:g} s (max over workers, {label})",
            get(r, "memory", "worker_uss_max"), MIB_2MB, mib,
            f" (median {mib(get(r, 'memory', 'worker_uss_median'))})")
    add(f"master idle CPU <= 1 % of one core (N={a['standin_count']}, 1 s poll)",
        get(so, "idle_cpu", "master_pct"), 1.0, pcts)
    add(f"reconcile of {a['rows']} rows <= 20 ms (in-process, p50)",
        get(so, "reconcile_in_process", "total_s", "p50"), 0.020, ms)
    add(f"reconcile of {a['rows']} rows <= 20 ms (running master, CPU per SIGHUP)",
        get(so, "reload_cpu", "cpu_per_reload_s"), 0.020, ms)
    orphans = sum(get(real.get(f"ours-{n}") or {}, "orphans", "ffmpegs_alive_3s_after") or 0 for n in counts)
    add("orphans after SIGKILL of the master = 0 (all N)", orphans, 0, num)
    return found


def render(results: dict[str, Any]) -> list[str]:
    lines = section("Targets") + ["| target | measured | verdict |", "|---|---|---|"]
    for t in evaluate(results):
        verdict = "pass" if t["pass"] else "MISS"
        lines.append(f"| {t['target']} | {t['measured']} | {verdict}{(' — ' + t['by']) if t.get('by') else ''} |")
    return lines + [""]
