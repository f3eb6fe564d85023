"""Which of this host's cameras record with a complete segment, from the workers' reports.

A camera counts once its current ffmpeg (the worker's generation and its ffmpeg start count) has
moved on from one segment to the next: the first one is then closed, on the mirror, playable.
Recording without that is not enough to let another host release its copy: an ffmpeg that has
connected may still fail before its first segment is whole. Reports that were lost in a full
pipe only delay this (every report carries the current segment name).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .states import WorkerState


@dataclass
class _Run:
    run: tuple[Any, Any]  # (generation, ffmpeg_starts): one ffmpeg of one worker
    first: str | None
    complete: bool = False


class CompleteSegments:
    def __init__(self) -> None:
        self._runs: dict[str, _Run] = {}

    def report(self, report: Mapping[str, Any]) -> None:
        """A report the master took as the current worker's (never an older generation's)."""
        cid, segment = report.get("camera"), report.get("segment")
        if not isinstance(cid, str):
            return
        run = (report.get("generation"), report.get("ffmpeg_starts"))
        found = self._runs.get(cid)
        if found is None or found.run != run:
            self._runs[cid] = _Run(run, segment if isinstance(segment, str) else None)
        elif isinstance(segment, str) and segment:
            if found.first is None:
                found.first = segment
            elif segment != found.first:
                found.complete = True

    def cameras(self, current: Mapping[str, Mapping[str, Any] | None]) -> frozenset[str]:
        """Of ``current`` (camera -> its current worker's latest report, None without a worker),
        the cameras recording now with a complete segment of their current ffmpeg."""
        found = set()
        for cid, report in current.items():
            run = self._runs.get(cid)
            if report is None or run is None or not run.complete:
                continue
            if run.run == (report.get("generation"), report.get("ffmpeg_starts")) \
                    and report.get("state") == WorkerState.RECORDING:
                found.add(cid)
        return frozenset(found)

    def forget_others(self, cameras: Iterable[str]) -> None:
        keep = set(cameras)
        for cid in [cid for cid in self._runs if cid not in keep]:
            del self._runs[cid]
