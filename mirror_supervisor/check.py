"""``mirror-supervisor check``: what would be mirrored, and why not, without starting anything.

Meant to be run by an operator after editing cameras or settings, and by init scripts before a
start: it reads the same settings and database as the master and prints one verdict per camera.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import stat
import time
from pathlib import Path
from typing import TextIO

from .cameras import cache as camera_cache
from .cameras.database import DatabaseError, read_cameras, require_answer
from .cluster import options as cluster_options
from .cluster.present import check_verdict
from .master.reconcile import wanted
from .plumbing.volume import START_TIMEOUT, answers_within, folds_case
from .retention.prune import prune_pass
from .retention.prune_report import format_bytes
from .retention.rules import parse_retention
from .settings import Settings
from .status import duration


def mirror_dir_findings(settings: Settings) -> list[str]:
    """Lines about the mirror directory: exists, writable, a mount point, a separate volume."""
    path = settings.mirror_dir
    assert path is not None
    if not path.is_dir():
        return [f"mirror dir {path}: MISSING (or not a directory)"]
    lines = [f"mirror dir {path}: exists"]
    usable = os.access(path, os.W_OK | os.X_OK)
    lines.append(f"mirror dir {path}: {'writable' if usable else 'NOT WRITABLE'}")
    if os.path.ismount(path):
        lines.append(f"mirror dir {path}: is a mount point")
    else:
        lines.append(f"mirror dir {path}: not a mount point")
    try:
        if os.stat(path).st_dev == os.stat("/").st_dev:
            lines.append(f"WARNING: mirror dir {path} is on the same filesystem as / (not a separate volume)")
    except OSError:
        pass
    return lines


def security_findings(settings: Settings, euid: int | None = None) -> list[str]:
    """Lines about privilege: which user ffmpeg runs as, and whether that user can do its job."""
    euid = os.geteuid() if euid is None else euid
    if settings.user is None:
        if euid == 0:
            return ["WARNING: workers and ffmpeg run as root: set --user (MIRROR_SUPERVISOR_USER) to an "
                    "unprivileged user (README, Security)"]
        return [f"security: workers and ffmpeg run as uid {euid}, the master's own user"]
    try:
        user = pwd.getpwnam(settings.user)
    except KeyError:
        return [f"ERROR: --user {settings.user!r}: no such user"]
    if euid not in (0, user.pw_uid):
        return [f"ERROR: --user {settings.user!r}: the master must run as root or as that user, not as uid {euid}"]
    if user.pw_uid == 0:
        return [f"WARNING: --user {settings.user!r} is root: ffmpeg runs as root"]
    lines = [f"security: workers and ffmpeg run as user {user.pw_name} (uid {user.pw_uid}, gid {user.pw_gid})"]
    if settings.mirror_dir is not None and not _writable_by(settings.mirror_dir, user):
        lines.append(f"WARNING: mirror dir {settings.mirror_dir} is not writable by user {user.pw_name}: a camera "
                     f"directory that is missing when a worker starts cannot be created "
                     f"(chown {user.pw_name}: {settings.mirror_dir})")
    return lines


def _writable_by(path: os.PathLike, user: pwd.struct_passwd) -> bool:
    """Could ``user`` create entries in the directory ``path`` (mode bits, its groups)?"""
    try:
        info = os.stat(path)
        groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    except OSError:
        return True  # reported by the mirror dir findings
    need = stat.S_IWUSR | stat.S_IXUSR
    if info.st_uid == user.pw_uid:
        return info.st_mode & need == need
    if info.st_gid in groups:
        return info.st_mode & (need >> 3) == need >> 3
    return info.st_mode & (need >> 6) == need >> 6


def run_check(settings: Settings, out: TextIO) -> int:
    """Print findings; 0 when the database was read, 1 when it could not be or the mirror dir
    does not answer (then nothing more is asked of it: every look would hang on a hung mount)."""
    print(f"settings: db={settings.db} mirror_dir={settings.mirror_dir} ffmpeg={settings.ffmpeg} "
          f"poll_interval={settings.poll_interval:g}s stop_timeout={settings.stop_timeout:g}s "
          f"state_dir={settings.state_dir} recorder_enabled={str(settings.recorder_enabled).lower()}", file=out)
    if (line := cluster_options.describe(settings)) is not None:
        print(line, file=out)
    assert settings.mirror_dir is not None
    answers = answers_within(settings.mirror_dir, START_TIMEOUT)
    if answers:
        mirror = settings
        for line in mirror_dir_findings(settings):
            print(line, file=out)
    else:  # every finding below that would look at the mirror dir is skipped
        mirror = dataclasses.replace(settings, mirror_dir=None)
        print(f"mirror dir {settings.mirror_dir}: NOT RESPONDING (no reply in {START_TIMEOUT:.0f}s: a hung network "
              "volume?)", file=out)
    for line in security_findings(mirror):
        print(line, file=out)
    found = shutil.which(settings.ffmpeg)
    print(f"ffmpeg {settings.ffmpeg}: {found or 'NOT FOUND (workers will retry every 15 s)'}", file=out)
    cache_line, cache_usable = describe_cache(settings.cache_dir, settings.mirror_dir)
    print(cache_line, file=out)
    try:
        require_answer(settings.db)
        cameras = read_cameras(settings.db)
    except DatabaseError as exc:
        print(f"database: ERROR: {exc}", file=out)
        if cache_usable:
            print("database: a master started now records from the camera cache above until the database reads", file=out)
        return 1
    print(f"database {settings.db}: {len(cameras)} cameras", file=out)
    fold_case = answers and folds_case(settings.mirror_dir) is True
    good, bad = wanted(cameras, settings.recorder_enabled, fold_case=fold_case)
    for camera in cameras:
        if camera.id in good:
            audio = "copy" if camera.record_audio else "off"
            where = check_verdict(settings, camera.id) or "mirrored"  # with --shard: which hosts record it
            verdict = f"{where}: {camera.masked_url} segment={camera.segment_seconds}s audio={audio}"
            if camera.warnings:
                verdict += " (" + "; ".join(camera.warnings) + ")"
        elif camera.id in bad:
            verdict = f"not mirrored: {bad[camera.id].problem}"
        elif not settings.recorder_enabled and camera.mirrored:
            verdict = "not mirrored: recorder disabled (recorder_enabled = false)"
        elif camera.problem:
            verdict = f"not mirrored: {camera.problem}"
        else:
            verdict = f"not mirrored: {camera.not_mirrored_because}"
        print(f"camera {camera.id!r}: {verdict}", file=out)
    _retention_findings(mirror, cameras, out)
    return 0 if answers else 1


def _retention_findings(settings: Settings, cameras: list, out: TextIO) -> None:
    """Orphaned camera directories and retention values that keep pruning from working."""
    for camera in cameras:
        hours, reason = parse_retention(camera.retention_hours)
        if hours is None:
            print(f"retention {camera.id!r}: never pruned: {reason}", file=out)
    if settings.mirror_dir is None or not settings.mirror_dir.is_dir():
        return
    report = prune_pass(settings.mirror_dir, cameras, running=set(), now=time.time(), dry_run=True)
    for orphan in report.orphans:
        print(f"orphaned mirror directory {orphan.name!r}: not in the database, never pruned: "
              f"{orphan.files} files, {format_bytes(orphan.bytes)}", file=out)


def describe_cache(cache_dir: Path | None, mirror_dir: Path | None, now: float | None = None) -> tuple[str, bool]:
    """``check``'s line about the cache (where it is, its age, or why it would not be used), and
    whether a master starting now could record from it."""
    if cache_dir is None:
        return "camera cache: none (no --cache-dir)", False
    path = camera_cache.cache_path(cache_dir, mirror_dir)
    now = time.time() if now is None else now
    try:
        cached = camera_cache.load(path, mirror_dir)
    except FileNotFoundError:
        return f"camera cache {path}: none yet (a running master writes it after a good read of the database)", False
    except camera_cache.CacheError as exc:
        return f"camera cache {path}: UNUSABLE: {exc}", False
    except OSError as exc:
        return f"camera cache {path}: cannot be read as uid {os.geteuid()}: {exc.strerror}", False
    return (f"camera cache {path}: {len(cached.table.rows)} cameras, matched the database at "
            f"{camera_cache.utc(cached.confirmed_at)} ({duration(now - cached.confirmed_at)} ago)"), True
