"""Tables of the stand-in suite (pure supervisor cost), from ``results["standin"]``."""

from __future__ import annotations

from typing import Any

from .tables import get, mib, ms, num, pcts, section, side_by_side

ROWS = [
    ("start: every stand-in running", lambda r: get(r, "start", "all_ffmpeg_s"), ms),
    ("start: every stand-in wrote a file", lambda r: get(r, "start", "all_recording_s"), ms),
    ("master / supervisord USS", lambda r: get(r, "memory", "master", "uss"), mib),
    ("master / supervisord PSS", lambda r: get(r, "memory", "master", "pss"), mib),
    ("worker USS, median", lambda r: get(r, "memory", "worker_uss_median"), mib),
    ("worker USS, max", lambda r: get(r, "memory", "worker_uss_max"), mib),
    ("all workers USS", lambda r: get(r, "memory", "workers_uss_total"), mib),
    ("all workers PSS", lambda r: get(r, "memory", "workers_pss_total"), mib),
    ("total USS", lambda r: get(r, "memory", "total_uss"), mib),
    ("total PSS", lambda r: get(r, "memory", "total_pss"), mib),
    ("idle CPU, master / supervisord", lambda r: get(r, "idle_cpu", "master_pct"), pcts),
    ("idle CPU, all workers", lambda r: get(r, "idle_cpu", "workers_total_pct"), pcts),
    ("idle CPU, total", lambda r: get(r, "idle_cpu", "total_pct"), pcts),
    ("add camera -> its recorder running, p50", lambda r: get(r, "add", "ffmpeg_running_s", "p50"), ms),
    ("add camera, p90", lambda r: get(r, "add", "ffmpeg_running_s", "p90"), ms),
    ("add camera via XML-RPC (supervisord), p50", lambda r: get(r, "add_rpc", "ffmpeg_running_s", "p50"), ms),
    ("others restarted by those reloads", lambda r: get(r, "add", "others_restarted"), num),
    ("shutdown: every process gone", lambda r: get(r, "shutdown", "all_gone_s"), ms),
]


def render(results: dict[str, Any]) -> list[str]:
    a = results["args"]
    st = results.get("standin") or {}
    if not st:
        return []
    so, ss = st.get("ours") or {}, st.get("supervisord") or {}
    lines = section(f"Pure supervisor cost: {a['standin_count']} stand-in recorders, {a['rows']} rows",
                    f"Ours with `--poll-interval 1`; {a['standin_repeats']} add-camera repeats.")
    lines += side_by_side(ROWS, so, ss)
    lines += reconcile(so, ss, a["rows"])
    lines += breakdown(so, a["standin_count"])
    return lines


def reconcile(so: dict, ss: dict, rows: int) -> list[str]:
    rip = so.get("reconcile_in_process") or {}
    rc = so.get("reload_cpu") or {}
    nothing = ss.get("reload_nothing_changed_s") or {}
    lines = section(f"Reconcile with {rip.get('rows', rows)} rows ({rip.get('mirrored', '?')} mirrored)")
    lines += ["| how measured | p50 | p90 | max |", "|---|---|---|---|"]
    for label, key in (("in-process: `read_cameras` (open, query, parse every row)", "read_and_parse_s"),
                       ("in-process: `wanted` + `build_command` per camera + `diff`", "wanted_build_diff_s"),
                       ("in-process: total", "total_s")):
        s = rip.get(key) or {}
        lines.append(f"| {label} | {ms(s.get('p50'))} | {ms(s.get('p90'))} | {ms(s.get('max'))} |")
    lines.append(f"| the running master: CPU per SIGHUP reload (over {rc.get('reloads', '?')} SIGHUPs, idle CPU "
                 f"subtracted) | {ms(rc.get('cpu_per_reload_s'))} (mean) | | |")
    lines.append(f"| supervisord: regenerate + `supervisorctl reread` + `update`, nothing changed (wall) "
                 f"| {ms(nothing.get('p50'))} | {ms(nothing.get('p90'))} | {ms(nothing.get('max'))} |")
    lines.append("")
    prof = so.get("reconcile_profile") or []
    if prof:
        lines += ["cProfile over 10 in-process reconciles, own time per reconcile (profiler overhead included):", "",
                  "| function | calls per reconcile | own time per reconcile |", "|---|---|---|"]
        lines += [f"| `{i['function']}` | {i['calls']} | {i['tottime_s'] * 1000:.2f} ms |" for i in prof]
        lines.append("")
    return lines


def breakdown(so: dict, count: int) -> list[str]:
    """Private bytes by mapping of one aged worker and of the master (smaps)."""
    items = [(who, item) for who, key in (("worker", "worker_breakdown"), ("master", "master_breakdown"))
             for item in get(so, "memory", key) or []]
    if not items:
        return []
    lines = section(f"Where a worker's and the master's USS lives (largest mappings, {count} stand-in run)")
    lines += ["| process | mapping | private bytes |", "|---|---|---|"]
    lines += [f"| {who} | `{item['mapping']}` | {item['bytes'] / 1024:.0f} KiB |" for who, item in items]
    return lines + [""]
