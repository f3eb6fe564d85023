"""The bodies of the boxes :mod:`mp4` reads: ``moov`` (tracks, timescales, ``trex`` defaults) and
``moof`` (each ``traf``'s ``tfdt`` and ``trun`` durations), and what they add up to.

All of it works on bytes already read, checks every offset against the box it is in, and keeps
per file no more than :data:`MAX_TRACKS` tracks: a box that claims more than a camera has is
refused (:class:`Refused`), so a crafted file cannot make the parser's memory grow.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

MAX_TRACKS = 16  # ffmpeg writes a camera's video, maybe its audio: far more is not a recording


class Refused(Exception):
    """A file the parser will not read to its end; the message is the segment's problem text."""


@dataclass
class Track:
    timescale: int = 0
    handler: bytes = b""
    default_duration: int = 0  # trex
    media_duration: int = 0  # mdhd (plain MP4)
    first: int | None = None  # decode time of the first complete fragment
    end: int | None = None  # end decode time of the last complete fragment
    ended: bool = False  # ``end`` was set by the backward search for the last fragment


@dataclass
class Movie:
    tracks: dict[int, Track] = field(default_factory=dict)
    timescale: int = 0
    duration: int = 0  # mvhd
    has_ftyp: bool = False
    has_moov: bool = False
    fragments: int = 0
    truncated: bool = False
    all_timed: bool = True  # every traf parsed had a tfdt

    def track(self, track_id: int) -> Track:
        """The moov's track ``track_id``, new if need be; more than :data:`MAX_TRACKS` is refused."""
        track = self.tracks.get(track_id)
        if track is None:
            if len(self.tracks) >= MAX_TRACKS:
                raise Refused(f"not an MP4 written by ffmpeg: more than {MAX_TRACKS} tracks")
            track = self.tracks[track_id] = Track()
        return track

    def started(self) -> set[int]:
        """The tracks the first fragment holds: the ones whose end the search must find."""
        return {k for k, t in self.tracks.items() if t.first is not None}

    def all_ended(self, started: set[int]) -> bool:
        return all(self.tracks[k].ended for k in started)


def blank(movie: Movie) -> Movie:
    """The movie as its ``moov`` describes it, before any fragment was parsed."""
    return Movie(tracks={k: Track(t.timescale, t.handler, t.default_duration, t.media_duration)
                         for k, t in movie.tracks.items()},
                 timescale=movie.timescale, duration=movie.duration, has_ftyp=movie.has_ftyp,
                 has_moov=movie.has_moov, truncated=movie.truncated)


def result(movie: Movie) -> tuple[float, str | None]:
    """The playable seconds, or 0 and why there are none."""
    if not movie.has_ftyp or not movie.has_moov:
        return 0.0, "not playable: no complete moov box" if movie.has_ftyp else "not an MP4: no ftyp box"
    tracks = [t for t in movie.tracks.values() if t.timescale > 0]
    if movie.fragments:
        timed = [t for t in tracks if t.first is not None and t.end is not None]
        video = [t for t in timed if t.handler == b"vide"]
        chosen = video or timed
        if chosen:
            seconds = max((t.end - t.first) / t.timescale for t in chosen)  # type: ignore[operator]
            if seconds > 0:
                return seconds, None
        return 0.0, "not playable: fragments hold no samples"
    video = [t for t in tracks if t.handler == b"vide" and t.media_duration > 0]
    if video:
        return video[0].media_duration / video[0].timescale, None
    if movie.timescale > 0 and movie.duration > 0 and movie.duration != 0xFFFFFFFF:
        return movie.duration / movie.timescale, None
    if movie.truncated:
        return 0.0, "not playable: no complete fragment (cut short)"
    return 0.0, "not playable: no samples"


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, body end) of the boxes in ``data[start:end]``; stops at a bad size."""
    end = len(data) if end is None else end
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        head = 8
        if size == 1:
            if offset + 16 > end:
                return
            size, head = struct.unpack_from(">Q", data, offset + 8)[0], 16
        elif size == 0:
            size = end - offset
        if size < head or offset + size > end:
            return
        yield kind, offset + head, offset + size
        offset += size


def moov(data: bytes, movie: Movie) -> None:
    for kind, start, end in boxes(data):
        if kind == b"mvhd" and end - start >= 32:
            if data[start] == 1:
                movie.timescale, movie.duration = struct.unpack_from(">IQ", data, start + 20)
            else:
                movie.timescale, movie.duration = struct.unpack_from(">II", data, start + 12)
        elif kind == b"trak":
            _trak(data, start, end, movie)
        elif kind == b"mvex":
            for sub, s, e in boxes(data, start, end):
                if sub == b"trex" and e - s >= 24:
                    track_id, _, default_duration = struct.unpack_from(">III", data, s + 4)
                    movie.track(track_id).default_duration = default_duration


def _trak(data: bytes, start: int, end: int, movie: Movie) -> None:
    track_id, timescale, duration, handler = None, 0, 0, b""
    stack = [(start, end)]
    while stack:
        s0, e0 = stack.pop()
        for kind, s, e in boxes(data, s0, e0):
            if kind == b"tkhd" and e - s >= 24:
                track_id = struct.unpack_from(">I", data, s + (20 if data[s] == 1 else 12))[0]
            elif kind == b"mdhd" and e - s >= 24:
                if data[s] == 1 and e - s >= 36:
                    timescale, duration = struct.unpack_from(">IQ", data, s + 20)
                else:
                    timescale, duration = struct.unpack_from(">II", data, s + 12)
            elif kind == b"hdlr" and e - s >= 12:
                handler = data[s + 8:s + 12]
            elif kind in (b"mdia",):
                stack.append((s, e))
    if track_id is None:
        return
    track = movie.track(track_id)
    track.timescale, track.handler = timescale, handler
    track.media_duration = 0 if duration == 0xFFFFFFFF else duration


def moof(data: bytes, movie: Movie, late: bool = False) -> None:
    """Add a fragment's ``traf`` boxes to ``movie``; ``late``: searching back from the last one."""
    movie.fragments += 1
    for kind, start, end in boxes(data):
        if kind == b"traf":
            _traf(data, start, end, movie, late)


def _traf(data: bytes, start: int, end: int, movie: Movie, late: bool = False) -> None:
    track: Track | None = None
    default_duration = 0
    decode_time: int | None = None
    total = 0
    for kind, s, e in boxes(data, start, end):
        if kind == b"tfhd" and e - s >= 8:
            flags = int.from_bytes(data[s + 1:s + 4], "big")
            # A track the moov does not declare has no timescale and cannot count: not kept.
            track = movie.tracks.get(struct.unpack_from(">I", data, s + 4)[0])
            default_duration = track.default_duration if track is not None else 0
            at = s + 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
            if flags & 0x08 and at + 4 <= e:
                default_duration = struct.unpack_from(">I", data, at)[0]
        elif kind == b"tfdt" and e - s >= 8:
            if data[s] == 1 and e - s >= 12:
                decode_time = struct.unpack_from(">Q", data, s + 4)[0]
            else:
                decode_time = struct.unpack_from(">I", data, s + 4)[0]
        elif kind == b"trun" and e - s >= 8:
            total += _trun_duration(data, s, e, default_duration)
    if track is None or (late and track.ended):
        return
    if decode_time is None:  # no tfdt: fragments follow each other
        movie.all_timed = False
        decode_time = track.end if track.end is not None else 0
    if track.first is None:
        track.first = decode_time
    track.end = decode_time + total
    track.ended = late


def _trun_duration(data: bytes, start: int, end: int, default_duration: int) -> int:
    flags = int.from_bytes(data[start + 1:start + 4], "big")
    count = struct.unpack_from(">I", data, start + 4)[0]
    at = start + 8 + (4 if flags & 0x001 else 0) + (4 if flags & 0x004 else 0)
    if not flags & 0x100:
        return count * default_duration
    per_sample = 4 * bin(flags & 0xF00).count("1")
    if at + count * per_sample > end:
        count = max(0, (end - at) // per_sample)
    total = 0
    for i in range(count):
        total += struct.unpack_from(">I", data, at + i * per_sample)[0]
    return total
