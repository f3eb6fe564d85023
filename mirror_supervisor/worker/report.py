"""A worker's report to the master: one JSON line per change, over a pipe shared by all workers.

:func:`encode_report` keeps each line below PIPE_BUF in bytes whatever its content, so a line is
one atomic write and lines from different workers never interleave; the master decodes them with
:func:`decode_reports` and keeps the status table (docs/design.md, "Status").

The same pipe carries the worker's word on its segments, for the segment index (docs/design.md,
"Coverage"): :func:`segment_done` when ffmpeg moved on from a segment, :func:`ffmpeg_ended` when
ffmpeg ended. These are lines with an ``event`` key, which the master forwards to its index writer
child instead of taking them as the worker's state; the worker itself never opens the index.
Every line is sent by :func:`send_line`: never blocking, never raising, dropped when the pipe is full.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

MAX_REPORT_BYTES = 3072  # below PIPE_BUF (4096): a write of a whole line is atomic


# Free-text fields an over-long report may lose the start of (the end of an error says most).
TRIMMABLE_FIELDS = ("last_error", "segment")
# What a report must keep to mean anything to the master.
ESSENTIAL_FIELDS = ("camera", "generation", "pid", "state")

EVENT = "event"  # the key that makes a line an event for the segment index, not a report
SEGMENT_DONE = "done"  # "name" (or null: none seen yet) is complete: ffmpeg opened "next"; "since": ffmpeg's start
FFMPEG_ENDED = "ended"  # "name": the segment last seen open (or null); "since", "until": ffmpeg's run, wall clock


# One encoder, made in the zygote: ``json.dumps`` with options builds an encoder per call, a few
# dozen objects a worker would otherwise allocate and touch for every report.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


def _dumps(report: Mapping[str, Any]) -> bytes:
    """ASCII-only JSON (non-ASCII is escaped), so its length in bytes is its length in characters."""
    return _ENCODER.encode(report).encode("ascii")


def encode_report(report: Mapping[str, Any], limit: int = MAX_REPORT_BYTES) -> bytes:
    """One JSON line of fewer than ``limit`` bytes (newline included), whatever the content.

    Over-long text fields keep their end; if that is not enough, only the essential fields
    stay; a report that cannot fit even then (a camera id far beyond any valid one) becomes an
    empty line, which the master ignores, rather than a write that could interleave.
    """
    line = _dumps(report)
    if len(line) < limit:
        return line + b"\n"
    trimmed = dict(report)
    for key in TRIMMABLE_FIELDS:
        if isinstance(trimmed.get(key), str):
            trimmed[key] = _longest_tail(trimmed, key, limit)
            line = _dumps(trimmed)
            if len(line) < limit:
                return line + b"\n"
    essential = {key: report[key] for key in ESSENTIAL_FIELDS if key in report}
    line = _dumps(essential)
    return line + b"\n" if len(line) < limit else b"\n"


def _longest_tail(report: dict[str, Any], key: str, limit: int) -> str:
    """The longest ``"..." + end`` of ``report[key]`` for which the line stays under ``limit``."""
    text = str(report[key])
    low, high = 0, len(text)  # characters kept: low always fits (or is 0), high may not
    while low < high:
        middle = (low + high + 1) // 2
        candidate = dict(report, **{key: "..." + text[len(text) - middle:]})
        if len(_dumps(candidate)) < limit:
            low = middle
        else:
            high = middle - 1
    return "..." + text[len(text) - low:] if low else "..."


def segment_done(camera: str, generation: int, name: str | None, opened: str | None, since: float | None) -> bytes:
    """The line saying that ffmpeg (started at ``since``, wall clock) moved on from ``name`` to
    ``opened``: ``name`` is complete, and so is any segment between them (one shorter than the
    worker's check, which it never saw open; without a ``name``, since ffmpeg's start)."""
    return _event({"camera": camera, "generation": generation, EVENT: SEGMENT_DONE, "name": name, "next": opened,
                   "since": None if since is None else round(since, 3)})


def ffmpeg_ended(camera: str, generation: int, name: str | None, since: float, until: float) -> bytes:
    """The line saying that ffmpeg, started at ``since`` (wall clock), ended at ``until``: ``name``,
    the segment the worker last saw open, is complete, and so is any segment ffmpeg opened after it
    (the worker looks once a second, so one opened just before the end is unseen)."""
    return _event({"camera": camera, "generation": generation, EVENT: FFMPEG_ENDED, "name": name,
                   "since": round(since, 3), "until": round(until, 3)})


def _event(fields: Mapping[str, Any]) -> bytes:
    """An event is never trimmed (a cut name means nothing): one too long for an atomic write
    (a camera id far beyond any valid one) is not sent at all."""
    line = _dumps(fields) + b"\n"
    return line if len(line) <= MAX_REPORT_BYTES else b""


def is_event(report: Mapping[str, Any]) -> bool:
    return EVENT in report


def send_line(fd: int, line: bytes) -> bool:
    """Write one line to the master's pipe; never blocks (the pipe is non-blocking) and never
    raises. False when it was dropped: the pipe is full (BlockingIOError) or the master is gone."""
    if not line:
        return False
    try:
        os.write(fd, line)
    except OSError:
        return False
    return True


def decode_reports(buffer: bytes) -> tuple[list[dict[str, Any]], bytes]:
    """Complete lines parsed (malformed ones dropped), and the incomplete rest."""
    *lines, rest = buffer.split(b"\n")
    reports = []
    for line in lines:
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if isinstance(report, dict) and isinstance(report.get("camera"), str):
            reports.append(report)
    return reports, rest
