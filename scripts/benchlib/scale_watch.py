"""The scale suite's observer: the master watched from outside, as an operator would (status.json,
/proc through psutil, the mirror directory, the ``status`` command)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from . import procs, recorder
from .common import ROOT, log
from .procs import WORKER_TITLE
from .scale_stage import child_env

SAMPLE_EVERY = 30.0
STATUS_POLL = 0.5
WRITING_WITHIN = 5.0  # a segment modified this recently counts as "being written"


def read_states(state_dir: Path) -> dict[str, dict[str, Any]] | None:
    try:
        data = json.loads((state_dir / "status.json").read_text())
    except (OSError, ValueError):
        return None
    return {row["id"]: row for row in data.get("cameras", []) if isinstance(row, dict) and "id" in row}


class MasterTree:
    """The master's descendants, remembered by (pid, create time) so cleanup never hits a reused pid."""

    def __init__(self, master: psutil.Process) -> None:
        self.master = master
        self.seen: dict[int, float] = {master.pid: master.create_time()}

    def split(self) -> tuple[list[psutil.Process], list[psutil.Process]]:
        """(workers, recorders) alive now."""
        workers, recorders = [], []
        for proc in self.master.children(recursive=True):
            try:
                self.seen.setdefault(proc.pid, proc.create_time())
                procs.remember(proc.pid)  # the run's final leftover count covers them too
                title = " ".join(proc.cmdline())
            except psutil.Error:
                continue
            if WORKER_TITLE.match(title):
                workers.append(proc)
            elif recorder.NAME in title:
                recorders.append(proc)
        return workers, recorders


def _sum_rss(processes: list[psutil.Process]) -> int:
    total = 0
    for proc in processes:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def sample(tree: MasterTree, since: float) -> dict[str, Any]:
    """One 30 s sample of the master and the totals of its workers and recorders."""
    master = tree.master
    mem = master.memory_full_info()
    cpu = master.cpu_times()
    workers, recorders = tree.split()
    return {"t": round(time.monotonic() - since, 1), "cpu_s": cpu.user + cpu.system,
            "master_rss_kib": mem.rss >> 10, "master_uss_kib": mem.uss >> 10, "master_fds": master.num_fds(),
            "master_threads": master.num_threads(), "workers": len(workers), "recorders": len(recorders),
            "workers_rss_mib": round(_sum_rss(workers) / 2**20, 1),
            "recorders_rss_mib": round(_sum_rss(recorders) / 2**20, 1)}


def worker_memory(tree: MasterTree) -> dict[str, Any]:
    """PSS and USS of all workers, read once (smaps of every worker is not free): totals, the
    median and worst worker, and where the median worker's private pages lie (per mapping)."""
    pss = 0
    uss: list[tuple[int, int]] = []
    workers, _ = tree.split()
    for proc in workers:
        try:
            full = proc.memory_full_info()
        except psutil.Error:
            continue
        pss += full.pss
        uss.append((full.uss, proc.pid))
    uss.sort()
    total = sum(value for value, _ in uss)
    result: dict[str, Any] = {
        "workers_pss_mib": round(pss / 2**20, 1), "workers_uss_mib": round(total / 2**20, 1),
        "per_worker_uss_kib": round(total / 1024 / max(1, len(uss))),
    }
    if uss:
        median_uss, median_pid = uss[len(uss) // 2]
        result.update({
            "worker_uss_median_kib": median_uss >> 10, "worker_uss_max_kib": uss[-1][0] >> 10,
            "worker_uss_min_kib": uss[0][0] >> 10, "worker_uss_p90_kib": uss[int(len(uss) * 0.9)][0] >> 10,
            "median_worker_mappings": private_by_mapping(median_pid),
            "median_worker_rollup": rollup(median_pid),
        })
    return result


def private_by_mapping(pid: int, top: int = 12) -> list[tuple[str, int]]:
    """(mapping, private KiB) of ``pid``'s largest private mappings, from /proc/<pid>/smaps."""
    sizes: dict[str, int] = {}
    name = "?"
    try:
        with open(f"/proc/{pid}/smaps", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):
                    fields = line.split(None, 5)
                    name = os.path.basename(fields[5].strip()) if len(fields) > 5 else "[anon]"
                elif first in ("Private_Clean:", "Private_Dirty:"):
                    sizes[name] = sizes.get(name, 0) + int(line.split()[1])
    except OSError:
        return []
    ranked = sorted(((n, kib) for n, kib in sizes.items() if kib), key=lambda item: -item[1])
    return ranked[:top]


def rollup(pid: int) -> dict[str, int]:
    """The private and anonymous totals of /proc/<pid>/smaps_rollup, in KiB."""
    wanted = ("Rss", "Pss", "Private_Clean", "Private_Dirty", "Anonymous", "Shared_Clean", "Shared_Dirty")
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="utf-8") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                if key in wanted:
                    found[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return found


def disk_truth(mirror: Path, states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Cameras writing on disk right now, and those whose status.json state disagrees."""
    now = time.time()
    writing, segments, disagree = set(), 0, []
    for camera_dir in mirror.iterdir():
        files = [e for e in os.scandir(camera_dir) if e.name.endswith(".mp4")]
        segments += len(files)
        if files and now - max(e.stat().st_mtime for e in files) < WRITING_WITHIN:
            writing.add(camera_dir.name)
    for cid in sorted(writing):
        if states.get(cid, {}).get("state") != "recording":
            disagree.append(f"{cid}={states.get(cid, {}).get('state')}")
    return {"cameras_writing": len(writing), "segments": segments,
            "writing_but_not_recording": len(disagree), "examples": disagree[:10]}


def watch(master: subprocess.Popen, tree: MasterTree, tmp: Path, cameras: int, seconds: float) -> dict[str, Any]:
    """Poll status.json until the run ends; sample the processes every SAMPLE_EVERY seconds."""
    began = time.monotonic()
    milestones: dict[str, float] = {}
    all_at: float | None = None
    left: list[dict[str, Any]] = []
    restarts_at_all = 0
    samples = [sample(tree, began)]
    next_sample = began + SAMPLE_EVERY
    states: dict[str, dict[str, Any]] = {}
    while time.monotonic() - began < seconds:
        if master.poll() is not None:
            raise RuntimeError(f"the master exited with status {master.returncode}; see {tmp / 'master.log'}")
        states = read_states(tmp / "state") or states
        now = time.monotonic() - began
        recording = sum(row.get("state") == "recording" for row in states.values())
        reached = [f"{pct}%" for pct in (25, 50, 90, 100)
                   if recording >= cameras * pct / 100 and f"{pct}%" not in milestones]
        milestones.update({name: round(now, 1) for name in reached})
        if reached:
            log(f"{recording}/{cameras} recording after {now:.1f}s")
        if all_at is None and recording == cameras:
            all_at = round(now, 1)
            restarts_at_all = sum(row.get("restarts", 0) for row in states.values())
            samples.append(sample(tree, began))  # the start of the first steady window
            next_sample = time.monotonic() + SAMPLE_EVERY
        elif all_at is not None:
            left += [{"t": round(now, 1), "camera": cid, "state": row.get("state")}
                     for cid, row in states.items() if row.get("state") != "recording"]
        if time.monotonic() >= next_sample:
            samples.append(sample(tree, began))
            next_sample += SAMPLE_EVERY
            last = samples[-1]
            log(f"t={last['t']}s recording={recording}/{cameras} master rss={last['master_rss_kib']}KiB "
                f"fds={last['master_fds']} workers={last['workers']} recorders={last['recorders']}")
        time.sleep(STATUS_POLL)
    samples.append(sample(tree, began))
    final_recording = sum(row.get("state") == "recording" for row in states.values())
    return {"samples": samples, "milestones": milestones, "all_recording_s": all_at,
            "recording_at_end": final_recording, "left_recording": left[:50], "left_recording_events": len(left),
            "cameras_left_recording": len({event["camera"] for event in left}),
            "restarts_after_all_recording": sum(r.get("restarts", 0) for r in states.values()) - restarts_at_all,
            "restarts_total": sum(r.get("restarts", 0) for r in states.values()),
            "states_at_end": dict(sorted(_count(r.get("state") for r in states.values()).items())),
            "disk": disk_truth(tmp / "mirror", states), "worker_memory": worker_memory(tree),
            "all_recording_sample": all_at is not None}


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts


def steady_cpu(samples: list[dict[str, Any]], since: float | None) -> list[float]:
    """Master CPU, % of one core, for each sampling window from ``since`` (start-up excluded)."""
    if since is None:
        return []
    steady = [s for s in samples if s["t"] >= since - 0.01]
    return [round(100 * (b["cpu_s"] - a["cpu_s"]) / (b["t"] - a["t"]), 2)
            for a, b in zip(steady, steady[1:], strict=False) if b["t"] - a["t"] >= 5]


def time_status_command(tmp: Path, repeats: int = 3) -> dict[str, Any]:
    """Wall time of ``mirror-supervisor status`` (text and --json), as an operator runs it."""
    env = child_env()
    result: dict[str, Any] = {}
    for mode in ("text", "json"):
        argv = [sys.executable, "-m", "mirror_supervisor", "status", "--state-dir", str(tmp / "state")]
        argv += ["--json"] if mode == "json" else []
        times, code, lines = [], None, 0
        for _ in range(repeats):
            t0 = time.monotonic()
            done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=120)
            times.append(time.monotonic() - t0)
            code, lines = done.returncode, done.stdout.count(b"\n")
        result[mode] = {"median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3),
                        "exit": code, "output_lines": lines}
    return result


