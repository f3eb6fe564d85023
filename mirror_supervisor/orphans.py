"""Compatibility name only: the leftover-ffmpeg scan lives in :mod:`recorders`.

Kept until ``master.py`` imports :mod:`recorders` (``recorders.recording_into(mirror_dir, ffmpeg,
strict=True)`` and ``recorders.end``); then delete this module.
"""

from __future__ import annotations

from pathlib import Path

from .recorders import Recorder, end, recording_into

__all__ = ["Recorder", "end", "recorders"]


def recorders(mirror_dir: Path, ffmpeg: str = "ffmpeg") -> list[Recorder]:
    return recording_into(mirror_dir, ffmpeg, strict=True)
