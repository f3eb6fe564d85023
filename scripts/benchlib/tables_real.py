"""Tables of the real-camera suite (scenarios 1-9), from ``results["real"]``."""

from __future__ import annotations

from typing import Any

from .tables import by_count, get, median_of, mib, ms, num, pcts, section


def _count(key: str, flag: str) -> Any:
    return lambda r: sum(1 for k in r.get(key) or [] if k.get(flag)) if r else None


def render(results: dict[str, Any]) -> list[str]:
    a = results["args"]
    runs, counts = results.get("real") or {}, a["counts"]
    if not runs:
        return []
    lines: list[str] = []

    def table(title: str, caption: str, rows: list) -> None:
        lines.extend(section(title, caption))
        lines.extend(by_count(rows, runs, counts))

    table("1. Start", "Clock from launching the supervisor.", [
        ("every camera has an ffmpeg", lambda r: get(r, "start", "all_ffmpeg_s"), ms),
        ("every camera has a first segment with data", lambda r: get(r, "start", "all_recording_s"), ms),
        ("same, restart over existing directories (scenario 9)", lambda r: get(r, "orphans", "restart", "all_recording_s"), ms),
    ])
    table("2. Add one camera and reload", f"{a['repeats']} repeats; clock from just before the INSERT.", [
        ("new camera's ffmpeg running, p50", lambda r: get(r, "add", "ffmpeg_running_s", "p50"), ms),
        ("p90", lambda r: get(r, "add", "ffmpeg_running_s", "p90"), ms),
        ("max", lambda r: get(r, "add", "ffmpeg_running_s", "max"), ms),
        ("supervisord via XML-RPC instead of supervisorctl, p50", lambda r: get(r, "add_rpc", "ffmpeg_running_s", "p50"), ms),
        ("supervisord via XML-RPC, p90", lambda r: get(r, "add_rpc", "ffmpeg_running_s", "p90"), ms),
        ("of it: the INSERT (the NVR's commit), p50", lambda r: get(r, "add", "insert_s", "p50"), ms),
        ("from its log: SIGHUP -> its ffmpeg started, p50", lambda r: get(r, "add", "logged_total_s", "p50"), ms),
        ("of it: reload requested -> worker started, p50", lambda r: get(r, "add", "logged_reload_to_fork_s", "p50"), ms),
        ("of it: worker started -> ffmpeg started (Popen returned), p50",
         lambda r: get(r, "add", "logged_fork_to_ffmpeg_s", "p50"), ms),
        ("removing it again: its ffmpeg gone, p50", lambda r: get(r, "add", "remove_ffmpeg_gone_s", "p50"), ms),
        ("other cameras' ffmpegs restarted (all repeats)", lambda r: get(r, "add", "others_restarted"), num),
    ])
    table("3. Change one camera's segment length and reload",
          f"{a['change_repeats']} repeats on different cameras; clock from just before the UPDATE.", [
        ("new ffmpeg (new -segment_time) running, p50", lambda r: get(r, "change", "new_ffmpeg_s", "p50"), ms),
        ("max", lambda r: get(r, "change", "new_ffmpeg_s", "max"), ms),
        ("gap: old ffmpeg gone -> new one running, max", lambda r: get(r, "change", "process_gap_s", "max"), ms),
        ("repeats where a segment had been opened in the second the old ffmpeg ended",
         lambda r: sum(get(r, "change", "segment_opened_in_the_same_second") or []) if r else None, num),
        ("new ffmpeg's first data on disk, p50", lambda r: get(r, "change", "recording_again_s", "p50"), ms),
        ("OTHER cameras' ffmpegs restarted (all repeats)", lambda r: get(r, "change", "others_restarted"), num),
    ])
    table("4. Plain reload, nothing changed", "Clock from the signal (or from starting `supervisorctl reread`).", [
        ("SIGHUP: ffmpegs restarted", lambda r: get(r, "reload_sighup", "restarted"), num),
        ("SIGHUP: longest gap (old ffmpeg gone -> new running)", lambda r: get(r, "reload_sighup", "longest_gap_s"), ms),
        ("SIGHUP: until every restarted camera records again", lambda r: get(r, "reload_sighup", "all_recording_again_s"), ms),
        ("supervisorctl reread + update: ffmpegs restarted", lambda r: get(r, "reload_update", "restarted"), num),
    ])
    table("5. Crash recovery", f"{a['kill_repeats']} ffmpeg kill(s), then one worker kill (ours only); "
          "clock from the SIGKILL.", [
        ("ffmpeg SIGKILLed: replacement ffmpeg running (median)", lambda r: median_of(r.get("kill_ffmpeg"), "new_ffmpeg_s"), ms),
        ("ffmpeg SIGKILLed: replacement records (median)", lambda r: median_of(r.get("kill_ffmpeg"), "recording_s"), ms),
        ("replacement reused (truncated) an existing segment name", _count("kill_ffmpeg", "reused_segment_name"), num),
        ("worker SIGKILLed: its ffmpeg gone", lambda r: get(r, "kill_worker", "old_ffmpeg_gone_s"), ms),
        ("worker SIGKILLed: replacement ffmpeg running", lambda r: get(r, "kill_worker", "new_ffmpeg_s"), ms),
        ("worker SIGKILLed: replacement records", lambda r: get(r, "kill_worker", "recording_s"), ms),
    ])
    table("6. Memory (psutil USS / PSS, supervisor processes only, never ffmpeg)",
          f"After >= {a['min_age']:g} s of running; supervisord is one process, in the 'master' rows.", [
        ("master USS", lambda r: get(r, "memory", "master", "uss"), mib),
        ("master PSS", lambda r: get(r, "memory", "master", "pss"), mib),
        ("worker USS, median", lambda r: get(r, "memory", "worker_uss_median"), mib),
        ("worker USS, max", lambda r: get(r, "memory", "worker_uss_max"), mib),
        ("worker USS, median of the workers forked at start (same pid since)",
         lambda r: get(r, "memory", "worker_uss_median_since_start"), mib),
        ("worker PSS, mean", lambda r: get(r, "memory", "worker_pss_mean"), mib),
        ("total USS (master + all workers)", lambda r: get(r, "memory", "total_uss"), mib),
        ("total PSS (master + all workers)", lambda r: get(r, "memory", "total_pss"), mib),
    ])
    table("7. Idle CPU (supervisor processes only, never ffmpeg)",
          f"Percent of one core over {a['idle_seconds']:g} s (after scenario 4), and over "
          f"{a['idle_after_seconds']:g} s after scenario 5's kills.", [
        ("master / supervisord", lambda r: get(r, "idle_cpu", "master_pct"), pcts),
        ("all workers together", lambda r: get(r, "idle_cpu", "workers_total_pct"), pcts),
        ("total", lambda r: get(r, "idle_cpu", "total_pct"), pcts),
        ("master / supervisord, again after scenario 5's kills", lambda r: get(r, "idle_cpu_after_kills", "master_pct"), pcts),
        ("whole machine busy during the window (all processes, both cores = 100 %)",
         lambda r: get(r, "idle_cpu", "machine_busy_pct"), pcts),
    ])
    table("8. Shutdown (SIGTERM)", "Clock from the SIGTERM.", [
        ("supervisor process exited", lambda r: get(r, "shutdown", "supervisor_exit_s"), ms),
        ("every process gone", lambda r: get(r, "shutdown", "all_gone_s"), ms),
        ("playable last segments", lambda r: get(r, "shutdown", "playable_last_segments"), num),
        ("cameras", lambda r: get(r, "shutdown", "last_segments"), num),
    ])
    table("9. Orphans after SIGKILL of the supervisor", "", [
        ("ffmpegs still alive 3 s later", lambda r: get(r, "orphans", "ffmpegs_alive_3s_after"), num),
    ])
    return lines
