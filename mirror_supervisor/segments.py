"""Segment files: ``<mirror_dir>/<camera_id>/YYYYmmdd_HHMMSS.mp4``, named by ffmpeg in UTC.

Names have one-second resolution, and ffmpeg silently truncates a file whose name it reuses. A new
ffmpeg must therefore never start in a second that already has a segment: the worker waits until
the clock has passed the newest existing name before it starts ffmpeg.
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

SEGMENT_NAME = re.compile(r"([0-9]{8})_([0-9]{6})\.mp4")
# A newest name further ahead of the clock than this means the clock was stepped back: waiting it
# out would stop recording for that long, so the worker starts anyway and says so.
MAX_CLOCK_SKEW_WAIT = 5.0


def parse_name(name: str) -> float | None:
    """The UTC start second encoded in a segment name, or None for any other name.

    Parsed by hand rather than with time.strptime, which imports ``_strptime`` and its regexes
    lazily: in every forked worker that was a few hundred KiB of private memory, and 20 us a call.
    """
    match = SEGMENT_NAME.fullmatch(name)
    if match is None:
        return None
    date, clock = match.groups()
    try:
        moment = datetime.datetime(int(date[:4]), int(date[4:6]), int(date[6:]),
                                   int(clock[:2]), int(clock[2:4]), int(clock[4:]), tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return moment.timestamp()


def newest(directory: Path) -> tuple[str, float] | None:
    """The newest segment (name, start second) directly inside ``directory``, or None.

    Only regular files with a real date count, so a stray ``20261399_999999.mp4`` (or a
    directory of that name) can neither hide the real newest segment nor pose as one.
    """
    names = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if SEGMENT_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    names.append(entry.name)
    except OSError:
        return None
    for name in sorted(names, reverse=True):
        start = parse_name(name)
        if start is not None:
            return name, start
    return None


def wait_before_start(newest_start: float | None, now: float) -> float:
    """Seconds to wait so that no segment ffmpeg opens can take an existing name.

    ffmpeg opens its first segment no earlier than it is started, so starting at or after
    ``newest_start + 1`` is enough; beyond ``MAX_CLOCK_SKEW_WAIT`` the clock is wrong and
    waiting would not help.
    """
    if newest_start is None:
        return 0.0
    wait = newest_start + 1.0 - now
    if wait <= 0 or wait > MAX_CLOCK_SKEW_WAIT:
        return 0.0
    return wait
