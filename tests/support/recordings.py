"""What the tests look at on disk: the segments in a camera directory, made-up old ones, growth."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from . import procs

SEGMENT = re.compile(r"\d{8}_\d{6}\.mp4")


def segments(directory: Path) -> list[Path]:
    """ffmpeg's segments in ``directory``, oldest first (none when it does not exist)."""
    return sorted(p for p in directory.glob("*.mp4") if SEGMENT.fullmatch(p.name)) if directory.is_dir() else []


def wait_growth(directory: Path, timeout: float = 40) -> None:
    """A new segment appears, or the newest grows: recording is happening now."""
    def snapshot():
        files = segments(directory)
        return (files[-1].name, files[-1].stat().st_size) if files else None

    first = snapshot()
    procs.wait_for(f"recording into {directory}", lambda: (s := snapshot()) is not None and s != first
                   and s[1] > 0, timeout, interval=0.2)


def old_segments(directory: Path, count: int, age: float) -> list[Path]:
    """``count`` 1 kB segments a minute apart, the newest ``age`` seconds old (name and mtime)."""
    directory.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(count):
        stamp = time.time() - age - i * 60
        path = directory / time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(stamp))
        path.write_bytes(b"\x00" * 1000)
        os.utime(path, (stamp, stamp))
        made.append(path)
    return made


def ffmpeg_segments(directory: Path, start: int, count: int, seconds: int = 3) -> list[Path]:
    """``count`` segments of ``seconds`` each, written by real ffmpeg with the worker's muxer
    options (fragments, trailer), named as the worker's ffmpeg names them from ``start`` on (UTC)."""
    import subprocess

    from mirror_supervisor.worker.ffmpeg import MOVFLAGS

    directory.mkdir(parents=True, exist_ok=True)
    work = directory / ".ffmpeg"
    work.mkdir()
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000", "-t", str(count * seconds),
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-f", "segment",
                    "-segment_time", str(seconds), "-segment_format", "mp4", "-segment_format_options", MOVFLAGS,
                    "-reset_timestamps", "1", str(work / "%03d.mp4")], check=True, timeout=120)
    made = []
    for i, path in enumerate(sorted(work.iterdir())):
        made.append(path.rename(directory / time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(start + i * seconds))))
    work.rmdir()
    return made
