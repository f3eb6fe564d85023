"""Segments on disk: which exist, which hold data, which play."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def segment_names(directory: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(directory) if e.name.endswith(".mp4"))
    except OSError:
        return []


def has_data(path: Path, real: bool) -> bool:
    """A real segment has data once its first fragment (a 'moof' box) is on disk; a stand-in's
    once it is not empty."""
    try:
        if not real:
            return path.stat().st_size > 0
        with open(path, "rb") as f:
            return b"moof" in f.read(262144)
    except OSError:
        return False


def recording_since(directory: Path, wall_since: float, real: bool) -> str | None:
    """Name of a segment written at or after ``wall_since`` that holds data, or None."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    for entry in sorted(entries, key=lambda e: e.name, reverse=True)[:3]:
        try:
            if entry.name.endswith(".mp4") and entry.stat().st_mtime >= wall_since - 0.01:
                if has_data(Path(entry.path), real):
                    return entry.name
        except OSError:
            continue
    return None


def playable(path: Path) -> bool:
    """ffprobe reads at least one video packet from ``path``."""
    try:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
             "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    try:
        return out.returncode == 0 and int(out.stdout.strip().split(",")[0]) > 0
    except ValueError:
        return False
