"""The lifecycle scenarios, one function each, run against a started or startable ``Session``.

Each returns a JSON-able dict of raw figures (seconds on the monotonic clock, counts, pids); the
report reads them by key, so keys are the benchmark's data format.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from . import procs, scale_reload
from .common import POLL, mono
from .recordings import playable, segment_names
from .session import Session, in_background, others_restarted, wait_gone
from .stats import summary


def start(s: Session, timeout: float = 120.0) -> dict[str, Any]:
    """1. Launch the supervisor; until every camera has an ffmpeg and a segment with data."""
    t0 = mono()
    s.system.start()
    s.started_at = t0
    result = s.wait_all(t0, timeout)
    s.system.wait_ready()
    s.initial_workers = set(s.system.supervisor_pids()["workers"])
    return result


def add_camera(s: Session, repeats: int, tag: str) -> dict[str, Any]:
    """2. INSERT a camera + apply, until its ffmpeg runs; then DELETE + apply, until it is gone."""
    latencies, removals, restarted, applied, inserts, logged = [], [], [], [], [], []
    for r in range(repeats):
        cam = f"{tag}{r:02d}"
        before = s.snapshot()
        t0 = mono()
        s.system.nvr.add_many([(cam, s.url, s.segment_seconds, True)])
        inserted, signalled = mono() - t0, time.time()
        thread, box = in_background(s.system.apply)
        latency, pid = s.wait_new_ffmpeg(cam, set(), t0, 30.0)
        thread.join(120)
        applied.append(box.get("value") or box.get("error"))
        inserts.append(inserted)
        if (stamps := scale_reload.stamps_of(s.system.log_text(), cam, signalled)) is not None:
            logged.append(stamps)
        latencies.append(latency if latency is not None else float("nan"))
        time.sleep(0.3)
        restarted += others_restarted(before, s.snapshot(), {cam})
        # Remove it again, so every repeat starts from the same N cameras.
        t1 = mono()
        s.system.nvr.delete(cam)
        thread, box = in_background(s.system.apply)
        gone = wait_gone({pid} if pid else set(), t1, 30.0)
        thread.join(120)
        removals.append(gone if gone is not None else float("nan"))
        deadline = mono() + 15
        while mono() < deadline and s.cam_ffmpegs(cam):
            time.sleep(0.02)
        time.sleep(0.2)
    return {
        "ffmpeg_running_s": summary([x for x in latencies if x == x]),
        "failed": sum(1 for x in latencies if x != x),
        "remove_ffmpeg_gone_s": summary([x for x in removals if x == x]),
        "others_restarted": len(restarted), "others_restarted_ids": restarted,
        "apply_timings": applied,
        "insert_s": summary(inserts),
        # From the supervisor's own log stamps (ours): the signal -> its ffmpeg started, and its parts.
        **{f"logged_{key}_s": summary([row[key] for row in logged]) for key in scale_reload.PARTS if logged},
    }


def change_segment(s: Session, repeats: int) -> dict[str, Any]:
    """3. UPDATE one camera's segment_seconds + apply, until an ffmpeg with the new value runs."""
    latencies, recorded, gaps, restarted, same_second = [], [], [], [], []
    for r in range(repeats):
        cam = s.cams[r % len(s.cams)]
        seconds = s.segment_seconds + r + 1
        before = s.snapshot()
        old = set(before.get(cam, ()))
        t0 = mono()
        s.system.nvr.set_segment_seconds(cam, seconds)
        thread, _box = in_background(s.system.apply)
        old_gone = None
        deadline = t0 + 30
        new_at = None
        while mono() < deadline:
            if old_gone is None and not any(procs.running(p) for p in old):
                old_gone = mono() - t0
            for pid in s.cam_ffmpegs(cam):
                if pid not in old and str(seconds) in procs.cmdline(pid):
                    new_at = mono() - t0
            if new_at is not None:
                break
            time.sleep(POLL)
        if old_gone is None:
            old_gone = new_at
        wall_new = time.time()
        # Did a segment name of the second in which the old ffmpeg ended exist? Then the new
        # one may not start before the next second (ours refuses to reuse a segment name).
        if old_gone is not None and new_at is not None:
            gone_second = time.strftime("%Y%m%d_%H%M%S", time.gmtime(wall_new - (new_at - old_gone)))
            same_second.append(f"{gone_second}.mp4" in segment_names(s.system.mirror_dir / cam))
        rec = s.wait_recording(cam, wall_new, t0, 30.0)[0] if new_at is not None else None
        thread.join(120)
        latencies.append(new_at)
        recorded.append(rec)
        if new_at is not None and old_gone is not None:
            gaps.append(new_at - old_gone)
        time.sleep(0.5)
        restarted += others_restarted(before, s.snapshot(), {cam})
    return {
        "new_ffmpeg_s": summary([x for x in latencies if x is not None]),
        "recording_again_s": summary([x for x in recorded if x is not None]),
        "process_gap_s": summary(gaps),
        "segment_opened_in_the_same_second": same_second,
        "failed": sum(1 for x in latencies if x is None),
        "others_restarted": len(restarted), "others_restarted_ids": restarted,
    }


def plain_reload(s: Session, how: str) -> dict[str, Any]:
    """4. A reload with nothing changed. ``how``: 'sighup', or 'apply' (the system's own way to
    apply a change, e.g. supervisorctl reread + update)."""
    before = s.snapshot()
    gone_at: dict[str, float] = {}
    new_at: dict[str, float] = {}
    t0 = mono()
    if how == "sighup":
        s.system.sighup()
        thread, box = None, {}
    else:
        thread, box = in_background(s.system.apply)
    window = 3.0
    deadline = t0 + 60
    while mono() < deadline:
        now = mono() - t0
        current = s.snapshot()
        for cam, pids in before.items():
            if cam not in gone_at and not any(procs.running(p) for p in pids):
                gone_at[cam] = now
            if cam not in new_at and current.get(cam) and current[cam] != pids:
                new_at[cam] = now
        restarted_so_far = set(gone_at) | set(new_at)
        if now >= window and (not restarted_so_far or restarted_so_far <= set(new_at)):
            if thread is None or not thread.is_alive():
                break
        time.sleep(0.01)
    if thread is not None:
        thread.join(120)
    restarted = sorted(set(gone_at) | set(new_at))
    gaps = [new_at[c] - gone_at.get(c, new_at[c]) for c in restarted if c in new_at]
    rec_times = []
    for cam in restarted:
        wall_since = time.time() - (mono() - t0 - new_at.get(cam, 0.0))
        rec_times.append(s.wait_recording(cam, wall_since, t0, 30.0)[0])
    return {
        "how": how,
        "restarted": len(restarted),
        "longest_gap_s": max(gaps) if gaps else 0.0,
        "all_back_s": max(new_at.values()) if new_at else 0.0,
        "all_recording_again_s": max([x for x in rec_times if x is not None], default=0.0),
        "apply_timings": box.get("value") or box.get("error"),
    }


def kill_ffmpeg(s: Session, cam: str) -> dict[str, Any]:
    """5a. SIGKILL one camera's ffmpeg; until a replacement runs, and until it records."""
    old = set(s.snapshot().get(cam, ()))
    names_before = set(segment_names(s.system.mirror_dir / cam))
    t0 = mono()
    wall0 = time.time()
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    new_at, _ = s.wait_new_ffmpeg(cam, old, t0, 60.0)
    rec, name = s.wait_recording(cam, wall0 + 0.02, t0, 60.0) if new_at is not None else (None, None)
    return {"camera": cam, "new_ffmpeg_s": new_at, "recording_s": rec,
            "reused_segment_name": bool(name and name in names_before)}


def kill_worker(s: Session, cam: str) -> dict[str, Any]:
    """5b. SIGKILL one camera's worker (systems with workers only)."""
    _, workers = s.system.tree.scan(s.system.root)
    worker = workers.get(cam, [None])[0]
    old = set(s.snapshot().get(cam, ()))
    if worker is None:
        return {"camera": cam, "error": "no worker found"}
    t0 = mono()
    wall0 = time.time()
    os.kill(worker, signal.SIGKILL)
    gone = wait_gone(old, t0, 30.0)
    new_at, _ = s.wait_new_ffmpeg(cam, old, t0, 60.0)
    rec = s.wait_recording(cam, wall0 + 0.02, t0, 60.0)[0] if new_at is not None else None
    return {"camera": cam, "old_ffmpeg_gone_s": gone, "new_ffmpeg_s": new_at, "recording_s": rec}


def shutdown(s: Session) -> dict[str, Any]:
    """8. SIGTERM the supervisor; until it exits and every process under it is gone. With real
    ffmpegs, also whether each camera's last segment plays."""
    proc = s.system.proc
    assert proc is not None
    pids = s.system.all_pids()
    live_cams = sorted(s.snapshot())
    t0 = mono()
    os.kill(s.system.root, signal.SIGTERM)
    root_exit = None
    deadline = t0 + 300  # supervisord stops its program groups one after the other
    while mono() < deadline:
        if root_exit is None and proc.poll() is not None:
            root_exit = mono() - t0
        if root_exit is not None and not any(procs.running(p) for p in pids[1:]):
            break
        time.sleep(POLL if mono() - t0 < 5 else 0.05)
    all_gone = mono() - t0 if mono() < deadline else None
    result: dict[str, Any] = {
        "supervisor_exit_s": root_exit, "all_gone_s": all_gone,
        "exit_code": proc.returncode, "processes": len(pids),
    }
    if s.real:
        ok = 0
        for cam in live_cams:
            names = segment_names(s.system.mirror_dir / cam)
            if names and playable(s.system.mirror_dir / cam / names[-1]):
                ok += 1
        result.update({"last_segments": len(live_cams), "playable_last_segments": ok})
    s.system.stop_everything(extra=[p for p in pids[1:] if procs.running(p)])
    return result


def orphans(s: Session) -> dict[str, Any]:
    """9. Start again (scenario 1 over existing directories), SIGKILL the supervisor once every
    camera records, and count the ffmpegs still writing into the mirror 3 s later."""
    started = start(s)
    proc = s.system.proc
    assert proc is not None
    pids = s.system.all_pids()
    os.kill(s.system.root, signal.SIGKILL)
    proc.wait(timeout=10)
    time.sleep(3.0)
    left = procs.machine_ffmpegs(str(s.system.mirror_dir) + "/")
    others = [p for p in pids[1:] if procs.running(p) and p not in left]
    s.system.stop_everything(extra=others)
    return {"restart": started, "ffmpegs_alive_3s_after": len(left),
            "other_processes_alive_3s_after": len(others), "cameras": len(s.cams)}
