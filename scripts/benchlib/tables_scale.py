"""Tables of the scale suite, from ``results["scale"]`` alone (it carries its own provenance)."""

from __future__ import annotations

import statistics
from typing import Any

from .suite_scale import steady_samples
from .tables import get, section


def _s(x: Any, unit: str = " s") -> str:
    return "–" if x is None else f"{x}{unit}"


def _kib(x: Any) -> str:
    return "–" if x is None else f"{x / 1024:.1f} MiB"


def command(c: dict[str, Any]) -> str:
    return (f"scripts/bench --scale{' --quick' if c.get('quick') else ''} --cameras {c['cameras']} "
            f"--minutes {c['minutes']:g}")


def render(results: dict[str, Any]) -> list[str]:
    r = results.get("scale")
    if not r:
        return []
    c, m = r["config"], r.get("machine") or {}
    n = c["cameras"]
    commit = f"{m.get('commit', '?')}" + (f" (+{m['dirty_files']} uncommitted changes under mirror_supervisor/)"
                                          if m.get("dirty_files") else "")
    lines = section(
        f"Scale: {n} cameras, one master, {c['minutes']:g} min",
        f"Measured by `{command(c)}` on {m.get('date_utc', '?')}, commit {commit}, {m.get('cores', '?')} cores, "
        f"in {r['duration_s'] / 60:.1f} min; load averages before: {', '.join(map(str, m.get('load_before', [])))}. "
        f"Ours only (`mirror-supervisor run --poll-interval {c['poll_interval']:g}`), every recorder the C "
        f"stand-in writing ~{c['bytes_per_second']} B/s in {c['segment_seconds']} s segments, watched from "
        "outside (status.json every 0.5 s, psutil every 30 s). The master's CPU and memory are its own "
        "process only; steady state starts when every camera is `recording`.")
    samples, cpu = r["samples"], r["master_cpu_steady_pct"]
    steady = steady_samples(r)
    base, last = (steady[0] if steady else samples[0]), samples[-1]
    disk, wm, log = r["disk"], r.get("worker_memory") or {}, r.get("log") or {}
    status = r.get("status_command") or {}
    rows = [
        ("every camera `recording` in status.json after",
         _s(r["all_recording_s"]) if r["all_recording_s"] is not None else "NEVER"),
        ("  of which after the master's first fork", _s(r.get("all_recording_after_first_fork_s"))),
        ("  25 / 50 / 90 / 100 % recording after",
         " / ".join(_s(r["milestones"].get(k)) for k in ("25%", "50%", "90%", "100%"))),
        ("master start -> first fork; first -> last fork",
         f"{_s(log.get('start_to_first_fork_s'))}; {_s(log.get('first_to_last_fork_s'))}"),
        ("`recording` at the end (status.json)", f"{r['recording_at_end']} / {n}"),
        ("writing on disk at the end (a segment grew in the last 5 s)", f"{disk['cameras_writing']} / {n}"),
        ("writing on disk but not `recording` (lost reports)",
         f"{disk['writing_but_not_recording']}" + (f" ({', '.join(disk['examples'][:3])})" if disk["examples"] else "")),
        ("cameras that left `recording` after all recorded", f"{r['cameras_left_recording']} "
                                                             f"({r['left_recording_events']} status.json polls)"),
        ("restarts (status.json): total / after all recorded",
         f"{r['restarts_total']} / {r['restarts_after_all_recording']}"),
        ("master CPU until all recorded", _s(r["master_cpu_startup_s"])),
        ("master CPU in steady state, % of one core (30 s windows)",
         f"mean {statistics.mean(cpu):.2f} %, max {max(cpu):.2f} %" if cpu else "–"),
        ("master RSS, steady start -> end", f"{_kib(base['master_rss_kib'])} -> {_kib(last['master_rss_kib'])}"),
        ("master USS, steady start -> end", f"{_kib(base['master_uss_kib'])} -> {_kib(last['master_uss_kib'])}"),
        ("master open descriptors, steady start -> end", f"{base['master_fds']} -> {last['master_fds']}"),
        ("workers: RSS total (end)", f"{last['workers_rss_mib']} MiB ({last['workers']} workers)"),
        ("workers: PSS / USS total (end)", f"{_s(wm.get('workers_pss_mib'), ' MiB')} / "
                                           f"{_s(wm.get('workers_uss_mib'), ' MiB')} "
                                           f"({_s(wm.get('per_worker_uss_kib'), ' KiB')} USS each)"),
        ("worker USS: median / p90 / worst (end)",
         f"{_kib(wm['worker_uss_median_kib'])} / {_kib(wm['worker_uss_p90_kib'])} / {_kib(wm['worker_uss_max_kib'])}"
         if "worker_uss_median_kib" in wm else "–"),
        ("recorders: RSS total (end)", f"{last['recorders_rss_mib']} MiB ({last['recorders']} recorders)"),
        ("`mirror-supervisor status` wall time, text / `--json` (median of 3)",
         f"{_s(get(status, 'text', 'median_s'))} / {_s(get(status, 'json', 'median_s'))}"),
        *_reload_rows(r.get("reload") or {}),
        ("master shutdown (SIGTERM -> exited)", _s(r["shutdown_s"]) if r["shutdown_s"] is not None else "KILLED"),
        ("shutdown: SIGTERM -> every worker and recorder gone", _s(get(r, "shutdown", "all_gone_s"), " s")),
        ("master log: warnings or errors", str(log.get("warnings_or_errors", "–"))),
        ("processes left after the master exited (killed) / after cleanup",
         f"{r['left_behind_killed']} / {r['leftovers']}"),
    ]
    lines += ["| metric | value |", "|---|---|"] + [f"| {name} | {value} |" for name, value in rows] + [""]
    mappings = wm.get("median_worker_mappings") or []
    if mappings:
        roll = wm.get("median_worker_rollup") or {}
        lines += ["The median worker's private pages by mapping (`/proc/<pid>/smaps`, Private_Clean + "
                  "Private_Dirty; rollup: " + ", ".join(f"{k} {v} KiB" for k, v in roll.items()) + "):", "",
                  "| mapping | private |", "|---|---|"]
        lines += [f"| `{name}` | {kib} KiB |" for name, kib in mappings] + [""]
    lines += ["Samples (t from the master's start; CPU = the master's user + system time so far):", "",
              "| t | master CPU | master RSS | master USS | master fds | workers | recorders |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {s['t']:g} s | {s['cpu_s']:.2f} s | {_kib(s['master_rss_kib'])} | {_kib(s['master_uss_kib'])} "
              f"| {s['master_fds']} | {s['workers']} | {s['recorders']} |" for s in samples]
    return lines + [""]


def _reload_rows(reload: dict[str, Any]) -> list[tuple[str, str]]:
    """Add one camera + SIGHUP at N cameras, split by the master's and the worker's log stamps."""
    def cell(key: str) -> str:
        v = reload.get(key + "_ms")
        return f"{v['p50']} / {v['p90']} / {v['max']} ms" if v else "–"
    n = reload.get("repeats", 0)
    return [] if not reload else [
        (f"add a camera, SIGHUP -> its recorder started (worker's log), p50 / p90 / max of {n}", cell("total")),
        ("  of which SIGHUP -> `reload requested`", cell("to_reload")),
        ("  of which `reload requested` -> `worker started` (read, diff, fork)", cell("reload_to_fork")),
        ("  of which `worker started` -> `ffmpeg started` (the worker's start, Popen)", cell("fork_to_ffmpeg")),
    ]
