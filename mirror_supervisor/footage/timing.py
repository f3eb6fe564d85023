"""How much time a segment really covers: what its boxes say, unless the wall clock says less.

A segment's duration comes from its own boxes (:mod:`mp4`: the first fragment's decode time to the
end of the last complete one). A camera's timestamps can leap forward, and the file then claims
time it does not hold: real ffmpeg 5.1 wrote 2.4 s of video whose boxes say 21,096 s. Believed,
such a file covers every hole after it and coverage reports nothing missing. So no segment is
believed past what wall-clock time allows:

- **its mtime**: ffmpeg writes every fragment as it is recorded, so footage cannot end after the
  file was last written. An mtime before the file's own name says the clock or the file was
  changed since; it bounds nothing then.
- **the next segment's start**: one ffmpeg per camera writes one segment at a time, so a segment
  ends where the next one's name begins.
- **the longest segment** (the mirror's own files): ``segment_seconds`` is at most an hour
  (:data:`camera.MAX_SEGMENT_SECONDS`) and ffmpeg cuts at the first keyframe after it. The NVR's
  own recordings (``--primary-dir``) have lengths of its choosing; only the first two bounds hold.

A few seconds past a bound are normal (a name drops the fraction of its second; a camera may send
a burst of buffered frames at the start), so up to :data:`SLACK` is believed as it is. Past that,
the span ends at the nearest bound and the file is reported (:class:`Clamp`): the operator sees
which file's own timing was not believed, and by how much.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..cameras.camera import MAX_SEGMENT_SECONDS
from .intervals import Interval

SLACK = 5.0
LONGEST_SEGMENT = float(MAX_SEGMENT_SECONDS + 60)  # the longest setting plus a long keyframe interval


@dataclass(frozen=True)
class Clamp:
    """A segment whose own timing was not believed: ``claimed`` seconds by its boxes, ``believed``
    seconds counted, and why."""

    name: str
    claimed: float
    believed: float
    reason: str


class Timed(Protocol):
    """What a span is judged from: the name's start, the boxes' playable seconds (0: no footage),
    the file's mtime (ns). The segment index's rows are such (a day of a hundred cameras is
    144,000 of them: judged as they are, not copied)."""

    @property
    def name(self) -> str: ...

    @property
    def start(self) -> float: ...

    @property
    def duration(self) -> float: ...

    @property
    def mtime_ns(self) -> int: ...


def believed_end(start: float, duration: float, mtime: float, next_start: float | None,
                 longest: float | None) -> tuple[float, str | None]:
    """The end of the span counted for a segment, and why its boxes were not believed (or None)."""
    claimed = start + duration
    bounds = [(next_start, "runs past the next segment's start")] if next_start is not None else []
    if mtime >= start:
        bounds.append((mtime, "ends after its file was last written"))
    if longest is not None:
        bounds.append((start + longest, f"is longer than a segment can be ({longest:.0f} s)"))
    broken = [why for bound, why in bounds if claimed > bound + SLACK]
    if not broken:
        return claimed, None
    return max(start, min(bound for bound, _ in bounds)), "; ".join(broken)


def judged(segments: Sequence[Timed], longest: float | None) -> tuple[list[Interval], dict[int, tuple[Timed, str]]]:
    """The span counted for every segment with footage (any order; spans in that order), and, by
    their place among those spans, the segments whose boxes were not believed and why. Every
    segment, footage or not, bounds the one before it: its name says when ffmpeg had moved on."""
    starts = sorted({s.start for s in segments})
    following = dict(zip(starts, starts[1:], strict=False))
    out: list[Interval] = []
    broken: dict[int, tuple[Timed, str]] = {}
    append = out.append
    for s in segments:  # a day of a hundred cameras is 144,000 of them: kept lean
        start, duration = s.start, s.duration
        if not duration > 0:  # (not <= 0: a NaN has no footage either)
            continue
        claimed, after, mtime = start + duration, following.get(start), s.mtime_ns / 1e9
        # what believed_end would believe as it is, without building its lists of bounds and reasons
        if ((after is None or claimed <= after + SLACK) and (mtime < start or claimed <= mtime + SLACK)
                and (longest is None or claimed <= start + longest + SLACK)):
            append((start, claimed))
        else:
            end, reason = believed_end(start, duration, mtime, after, longest)
            if reason is not None:
                broken[len(out)] = (s, reason)
            append((start, end))
    return out, broken


def spans(segments: Sequence[Timed], longest: float | None) -> tuple[list[Interval], list[Clamp]]:
    """The spans counted for a camera's segments, and the segments that were cut."""
    counted, broken = judged(segments, longest)
    return counted, [Clamp(s.name, s.duration, counted[i][1] - s.start, reason) for i, (s, reason) in broken.items()]
