"""A segment's playable duration, read from its MP4 boxes without reading the media.

ffmpeg writes fragmented MP4 (``frag_keyframe+empty_moov+default_base_moof``): ``ftyp``, a
``moov`` without samples (track ids, timescales, handler types, ``trex`` defaults), then one
``moof`` + ``mdat`` pair per keyframe interval, and on a clean stop an ``mfra`` index. Every
fragment's ``traf`` holds a ``tfdt`` (its first decode time) and a ``trun`` (its samples'
durations), so the playable span of a file is the first fragment's ``tfdt`` to the end of the
last *complete* fragment (its ``moof`` and its whole ``mdat`` on disk). That is what a player gets
from a file of a killed ffmpeg (no trailer, a fragment cut short) too.

Cost: a segment ffmpeg closed cleanly ends in an ``mfra`` box (``tfra``: the offset of every
track's fragments) and a 16-byte ``mfro`` that says where ``mfra`` begins. Then three reads of a
few KiB do: the head (``ftyp``, ``moov``, first ``moof``), the tail (``mfra``), and the last
fragment's ``moof``; that fragment must end exactly where ``mfra`` begins, else the file is
walked. Without a trailer (ffmpeg was killed) or when anything in it does not add up, the box
headers are walked from the start, one ``pread`` of a few KiB per fragment (the ``moof``, and the
next ``mdat``'s header with it): a 60 s segment with a keyframe every second costs about 60 small
reads. Either way the media in the ``mdat`` boxes is never read, and only the first and the last
complete fragments are parsed (every fragment when one lacks a ``tfdt``). Reads matter more than
parsing: a day of 100 cameras has ~9 million fragment headers, more pages than a page cache holds.

A plain (non-fragmented) MP4, as an NVR may write, is read from its ``moov``: the video track's
``mdhd`` duration, else ``mvhd``'s.

Everything here is pure parsing: it raises nothing for bad data; :func:`probe` says what it found
in a :class:`SegmentInfo` (``playable`` and a ``problem`` text when not).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

CHUNK = 4096  # one read covers a typical moof (a few hundred bytes) and the next mdat header
MAX_META_BOX = 16 << 20  # a moov or moof larger than this is not one ffmpeg wrote: stop there
_CONTAINERS = (b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"traf", b"edts")
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0)


@dataclass(frozen=True)
class SegmentInfo:
    """What a segment file holds: playable seconds, its size, and why it is not playable."""

    duration: float
    size: int
    playable: bool
    problem: str | None = None
    mtime_ns: int = 0


@dataclass
class _Track:
    timescale: int = 0
    handler: bytes = b""
    default_duration: int = 0  # trex
    media_duration: int = 0  # mdhd (plain MP4)
    first: int | None = None  # decode time of the first complete fragment
    end: int | None = None  # end decode time of the last complete fragment
    ended: bool = False  # ``end`` was set by the backward search for the last fragment


@dataclass
class _Movie:
    tracks: dict[int, _Track] = field(default_factory=dict)
    timescale: int = 0
    duration: int = 0  # mvhd
    has_ftyp: bool = False
    has_moov: bool = False
    fragments: int = 0
    truncated: bool = False
    all_timed: bool = True  # every traf parsed had a tfdt


class _Reader:
    """``pread`` through a one-chunk cache: the next box header is often in the last read."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self._at, self._buf = 0, b""

    def read(self, offset: int, length: int) -> bytes:
        end = offset + length
        if self._at <= offset and end <= self._at + len(self._buf):
            return self._buf[offset - self._at:end - self._at]
        self._buf = os.pread(self.fd, max(length, CHUNK), offset)
        self._at = offset
        return self._buf[:length]


def probe(path: str | os.PathLike[str], dir_fd: int | None = None) -> SegmentInfo:
    """Parse one segment file; never raises (an unreadable file is reported, not playable)."""
    try:
        fd = os.open(path, _OPEN_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        return SegmentInfo(0.0, 0, False, f"unreadable: {exc.strerror or exc}")
    try:
        info = os.fstat(fd)
        if info.st_size == 0:
            return SegmentInfo(0.0, 0, False, "empty file", info.st_mtime_ns)
        try:
            duration, problem = _parse(_Reader(fd, info.st_size))
        except OSError as exc:
            return SegmentInfo(0.0, info.st_size, False, f"unreadable: {exc.strerror or exc}", info.st_mtime_ns)
        return SegmentInfo(duration, info.st_size, problem is None, problem, info.st_mtime_ns)
    finally:
        os.close(fd)


def _parse(reader: _Reader) -> tuple[float, str | None]:
    """Hop from box to box; remember where each complete fragment's moof is, parse only the first
    and the last (their tfdt and trun say where the playable span starts and ends)."""
    movie = _Movie()
    moofs: list[tuple[int, int, int]] = []  # (offset, header length, size) of complete fragments
    offset = 0
    while offset + 8 <= reader.size:
        header = reader.read(offset, 16)
        size, kind = struct.unpack_from(">I4s", header)
        head = 8
        if size == 1:
            if len(header) < 16:
                movie.truncated = True
                break
            size, head = struct.unpack_from(">Q", header, 8)[0], 16
        elif size == 0:  # "to the end of the file": an mdat being written
            size = reader.size - offset
        if size < head:
            return 0.0, f"not an MP4: bad box size at offset {offset}"
        if offset == 0 and kind != b"ftyp":
            return 0.0, "not an MP4: no ftyp box at the start"
        if offset + size > reader.size:
            movie.truncated = True
            break
        if kind == b"moof":
            if size > MAX_META_BOX:
                return 0.0, f"not an MP4 written by ffmpeg: moof of {size} bytes"
            if not _fragment_complete(reader, offset + size):
                movie.truncated = True
                break
            moofs.append((offset, head, size))
            if len(moofs) == 1:
                quick = _from_trailer(reader, _blank(movie), moofs[0])
                if quick is not None:
                    return quick
        elif kind == b"ftyp":
            movie.has_ftyp = True
        elif kind == b"moov":
            if size > MAX_META_BOX:
                return 0.0, f"not an MP4 written by ffmpeg: moov of {size} bytes"
            movie.has_moov = True
            _moov(reader.read(offset + head, size - head), movie)
        offset += size
    if moofs:
        at, head, size = moofs[0]
        _moof(reader.read(at + head, size - head), movie)
        # The end: the newest fragment holding each track, searched from the last one back.
        started = {k for k, t in movie.tracks.items() if t.first is not None}
        for at, head, size in reversed(moofs[1:]):
            _moof(reader.read(at + head, size - head), movie, late=True)
            if all(movie.tracks[k].ended for k in started):
                break
    if not movie.all_timed and len(moofs) > 1:
        # A fragment without tfdt: its time follows from every fragment before it.
        movie = _blank(movie)
        for at, head, size in moofs:
            _moof(reader.read(at + head, size - head), movie)
    return _result(movie)


def _blank(movie: _Movie) -> _Movie:
    """The movie as its ``moov`` describes it, before any fragment was parsed."""
    return _Movie(tracks={k: _Track(t.timescale, t.handler, t.default_duration, t.media_duration)
                          for k, t in movie.tracks.items()},
                  timescale=movie.timescale, duration=movie.duration, has_ftyp=movie.has_ftyp,
                  has_moov=movie.has_moov, truncated=movie.truncated)


def _from_trailer(reader: _Reader, movie: _Movie, first: tuple[int, int, int]) -> tuple[float, str | None] | None:
    """The playable span from the first fragment and the last ones ``mfra`` points at, or None
    (no trailer, or one that does not add up: the caller walks the file instead)."""
    _moof(reader.read(first[0] + first[1], first[2] - first[1]), movie)
    at = _mfra_offset(reader, first[0] + first[2])
    lasts = _last_fragments(reader.read(at, reader.size - at)) if at is not None else set()
    if at is None or not lasts:
        return None
    started = {k for k, t in movie.tracks.items() if t.first is not None}
    for n, offset in enumerate(sorted(lasts, reverse=True)):
        whole = _whole_moof(reader, offset, first[0], at)
        if whole is None or (n == 0 and whole[1] != at):  # the newest must end where the trailer begins
            return None
        _moof(reader.read(offset + 8, whole[0] - 8), movie, late=True)
    if not movie.all_timed or not all(movie.tracks[k].ended for k in started):
        return None
    return _result(movie)


def _mfra_offset(reader: _Reader, after: int) -> int | None:
    """Where ``mfra`` starts, from the ``mfro`` that ends the file, if both are sound."""
    if reader.size < after + 16 + 8:
        return None
    tail = reader.read(max(after, reader.size - CHUNK), reader.size - max(after, reader.size - CHUNK))
    size, kind, _, mfra_size = struct.unpack_from(">I4sII", tail, len(tail) - 16)
    if size != 16 or kind != b"mfro" or not 16 + 8 <= mfra_size <= min(MAX_META_BOX, reader.size - after):
        return None
    at = reader.size - mfra_size
    size, kind = struct.unpack_from(">I4s", reader.read(at, 8))
    return at if size == mfra_size and kind == b"mfra" else None


def _last_fragments(mfra: bytes) -> set[int]:
    """The ``moof`` offset of each track's last random-access entry in ``tfra``."""
    lasts = set()
    for kind, start, end in _boxes(mfra, 8):
        if kind != b"tfra" or end - start < 16:
            continue
        version = mfra[start]
        sizes, count = struct.unpack_from(">II", mfra, start + 8)
        width = (16 if version == 1 else 8) + ((sizes >> 4) & 3) + ((sizes >> 2) & 3) + (sizes & 3) + 3
        if count == 0 or start + 16 + count * width > end:
            return set()
        last = start + 16 + (count - 1) * width
        offset = struct.unpack_from(">Q" if version == 1 else ">I", mfra, last + (8 if version == 1 else 4))[0]
        lasts.add(offset)
    return lasts


def _whole_moof(reader: _Reader, offset: int, low: int, limit: int) -> tuple[int, int] | None:
    """(its size, where the ``mdat`` after it ends) of a sound ``moof`` at ``offset`` within ``[low, limit)``."""
    if not low <= offset or offset + 16 > limit:
        return None
    size, kind = struct.unpack_from(">I4s", reader.read(offset, 8))
    if kind != b"moof" or not 16 <= size <= MAX_META_BOX or offset + size + 8 > limit:
        return None
    length, kind = struct.unpack_from(">I4s", reader.read(offset + size, 8))
    if kind != b"mdat" or length < 8 or offset + size + length > limit:
        return None
    return size, offset + size + length


def _fragment_complete(reader: _Reader, offset: int) -> bool:
    """The ``mdat`` after a ``moof`` is wholly on disk."""
    if offset + 8 > reader.size:
        return False
    header = reader.read(offset, 16)
    size, kind = struct.unpack_from(">I4s", header)
    if kind != b"mdat":
        return True  # samples elsewhere (not ffmpeg's layout): the data offsets were checked by size
    if size == 1:
        if len(header) < 16:
            return False
        size = struct.unpack_from(">Q", header, 8)[0]
    elif size == 0:
        return True
    return offset + size <= reader.size


def _result(movie: _Movie) -> tuple[float, str | None]:
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


def _boxes(data: bytes, start: int = 0, end: int | None = None):  # -> Iterator[tuple[bytes, int, int]]
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


def _moov(data: bytes, movie: _Movie) -> None:
    for kind, start, end in _boxes(data):
        if kind == b"mvhd" and end - start >= 32:
            if data[start] == 1:
                movie.timescale, movie.duration = struct.unpack_from(">IQ", data, start + 20)
            else:
                movie.timescale, movie.duration = struct.unpack_from(">II", data, start + 12)
        elif kind == b"trak":
            _trak(data, start, end, movie)
        elif kind == b"mvex":
            for sub, s, e in _boxes(data, start, end):
                if sub == b"trex" and e - s >= 24:
                    track_id, _, default_duration = struct.unpack_from(">III", data, s + 4)
                    movie.tracks.setdefault(track_id, _Track()).default_duration = default_duration


def _trak(data: bytes, start: int, end: int, movie: _Movie) -> None:
    track_id, timescale, duration, handler = None, 0, 0, b""
    stack = [(start, end)]
    while stack:
        s0, e0 = stack.pop()
        for kind, s, e in _boxes(data, s0, e0):
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
    track = movie.tracks.setdefault(track_id, _Track())
    track.timescale, track.handler = timescale, handler
    track.media_duration = 0 if duration == 0xFFFFFFFF else duration


def _moof(data: bytes, movie: _Movie, late: bool = False) -> None:
    movie.fragments += 1
    for kind, start, end in _boxes(data):
        if kind == b"traf":
            _traf(data, start, end, movie, late)


def _traf(data: bytes, start: int, end: int, movie: _Movie, late: bool = False) -> None:
    track: _Track | None = None
    default_duration = 0
    decode_time: int | None = None
    total = 0
    for kind, s, e in _boxes(data, start, end):
        if kind == b"tfhd" and e - s >= 8:
            flags = int.from_bytes(data[s + 1:s + 4], "big")
            track_id = struct.unpack_from(">I", data, s + 4)[0]
            track = movie.tracks.setdefault(track_id, _Track())
            default_duration = track.default_duration
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
