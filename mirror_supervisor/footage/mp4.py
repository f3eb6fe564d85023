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

:func:`probe` never raises and never blocks on what it finds under a segment's name: whatever
goes wrong with one file (unreadable, not a regular file, cut or rewritten while read, data the
parser did not foresee) is that file's ``problem`` in its :class:`SegmentInfo`, never the end of
a coverage run for every camera. Its memory does not grow with the file: the walk keeps the first
and the :data:`KEPT_FRAGMENTS` newest complete fragments (a second walk, if ever needed, parses
as it goes), at most :data:`MAX_BOXES` boxes are walked and :data:`mp4_boxes.MAX_TRACKS` tracks
kept; a file past those limits is refused, so a crafted file of millions of tiny fragments cannot
exhaust the root coverage child.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from .mp4_boxes import MAX_TRACKS, Movie, Refused, blank, boxes, moof, moov, result

CHUNK = 4096  # one read covers a typical moof (a few hundred bytes) and the next mdat header
MAX_META_BOX = 16 << 20  # a moov or moof larger than this is not one ffmpeg wrote: stop there
# Top-level boxes walked per file: ffmpeg writes two per fragment, and the most fragments a
# camera's segment (3600 s at most) can hold, 60 fps with every frame a keyframe (MJPEG), is 216,000.
MAX_BOXES = 2_000_000
KEPT_FRAGMENTS = 32  # the newest complete fragments kept for the search of each track's end
SHRANK = "unreadable: the file shrank while it was read"
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
_NOATIME = getattr(os, "O_NOATIME", 0)

_Fragment = tuple[int, int, int]  # a complete fragment's moof: offset, header length, size


@dataclass(frozen=True)
class SegmentInfo:
    """What a segment file holds: playable seconds, its size, and why it is not playable."""

    duration: float
    size: int
    playable: bool
    problem: str | None = None
    mtime_ns: int = 0


def open_segment(path: str | os.PathLike[str], dir_fd: int | None = None) -> tuple[int, os.stat_result]:
    """A segment file opened for reading, and its ``fstat``; raises OSError. Every reader of
    segments opens them here.

    ``O_NOATIME`` spares the disk an inode write per file read (a day of 100 cameras is 144,000
    files), but the kernel grants it to the file's owner and root only: anyone else (an operator
    in the mirror's group, any reader of the NVR's own files in ``--primary-dir``) gets EPERM and
    opens the file without it. ``O_NONBLOCK``: a FIFO put under a segment's name must not hold
    the open until a writer comes; anything but a regular file is refused before it is read."""
    try:
        fd = os.open(path, _OPEN_FLAGS | _NOATIME, dir_fd=dir_fd)
    except PermissionError as exc:
        if exc.errno != errno.EPERM or not _NOATIME:
            raise
        fd = os.open(path, _OPEN_FLAGS, dir_fd=dir_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        os.set_blocking(fd, True)  # a read waits for its data (FUSE hands the flag to its server)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


class _Reader:
    """``pread`` through a one-chunk cache (the next box header is often in the last read) of the
    file as ``fstat`` saw it: nothing past that size is returned, and a read that finds the file
    shorter than that is refused (:data:`SHRANK`)."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self._at, self._buf = 0, b""

    def read(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.size - offset))
        end = offset + length
        if self._at <= offset and end <= self._at + len(self._buf):
            return self._buf[offset - self._at:end - self._at]
        want = max(length, CHUNK)
        buf = os.pread(self.fd, want, offset)
        while len(buf) < length:  # a short read is the end of the file only when nothing more comes
            more = os.pread(self.fd, want - len(buf), offset + len(buf))
            if not more:
                raise Refused(SHRANK)
            buf += more
        self._at, self._buf = offset, buf
        return buf[:length]


def probe(path: str | os.PathLike[str], dir_fd: int | None = None) -> SegmentInfo:
    """Parse one segment file; never raises (an unreadable file is reported, not playable)."""
    try:
        fd, info = open_segment(path, dir_fd)
    except OSError as exc:
        return SegmentInfo(0.0, 0, False, f"unreadable: {exc.strerror or exc}")
    try:
        return _probe_open(fd, info.st_size, info.st_mtime_ns)
    finally:
        try:
            os.close(fd)
        except OSError:
            pass  # a read-only descriptor: nothing of ours is lost


def _probe_open(fd: int, size: int, mtime_ns: int) -> SegmentInfo:
    """Whatever goes wrong in here is this file's problem, not the whole run's: every exception
    ends as the file's problem text."""
    if size == 0:
        return SegmentInfo(0.0, 0, False, "empty file", mtime_ns)
    try:
        duration, problem = _parse(_Reader(fd, size))
        if os.fstat(fd).st_size < size:  # cut where no read looked: what was parsed is gone
            raise Refused(SHRANK)
    except OSError as exc:
        return SegmentInfo(0.0, size, False, f"unreadable: {exc.strerror or exc}", mtime_ns)
    except Refused as exc:
        return SegmentInfo(0.0, size, False, str(exc), mtime_ns)
    except Exception as exc:  # noqa: BLE001 - data the parser did not foresee: one invalid file
        return SegmentInfo(0.0, size, False, f"not readable as an MP4: {type(exc).__name__}: {exc}", mtime_ns)
    return SegmentInfo(duration, size, problem is None, problem, mtime_ns)


def _parse(reader: _Reader) -> tuple[float, str | None]:
    """Hop from box to box; keep where the first and the newest complete fragments' moofs are,
    parse only the first and the last ones (their tfdt and trun say where the playable span starts
    and ends)."""
    movie = Movie()
    first: _Fragment | None = None
    newest: deque[_Fragment] = deque(maxlen=KEPT_FRAGMENTS)
    count = 0
    for fragment in _fragments(reader, movie):
        count += 1
        if first is not None:
            newest.append(fragment)
            continue
        first = fragment
        quick = _from_trailer(reader, blank(movie), first)
        if quick is not None:
            return quick
    if first is None:
        return result(movie)
    _moof_at(reader, first, movie)
    # The end: the newest fragment holding each track, searched from the last one back.
    started = movie.started()
    for fragment in reversed(newest):
        _moof_at(reader, fragment, movie, late=True)
        if movie.all_ended(started):
            break
    searched_all = count - 1 == len(newest)
    if (not movie.all_timed and count > 1) or not (searched_all or movie.all_ended(started)):
        # A fragment without tfdt (its time follows from every fragment before it), or a track
        # whose last fragment is older than the ones kept: every fragment, in order.
        return _every_fragment(reader, blank(movie))
    return result(movie)


def _every_fragment(reader: _Reader, movie: Movie) -> tuple[float, str | None]:
    """A second walk that parses each complete fragment as it passes it: memory stays constant."""
    for fragment in _fragments(reader, Movie()):
        _moof_at(reader, fragment, movie)
    return result(movie)


def _fragments(reader: _Reader, movie: Movie) -> Iterator[_Fragment]:
    """The complete fragments from the start of the file, from box header to box header; notes
    the ftyp, the moov and a cut in ``movie``; refuses what is not an MP4 or has too many boxes."""
    offset, walked = 0, 0
    while offset + 8 <= reader.size:
        walked += 1
        if walked > MAX_BOXES:
            raise Refused(f"not an MP4 written by ffmpeg: more than {MAX_BOXES} boxes")
        header = reader.read(offset, 16)
        size, kind = struct.unpack_from(">I4s", header)
        head = 8
        if size == 1:
            if len(header) < 16:
                movie.truncated = True
                return
            size, head = struct.unpack_from(">Q", header, 8)[0], 16
        elif size == 0:  # "to the end of the file": an mdat being written
            size = reader.size - offset
        if size < head:
            raise Refused(f"not an MP4: bad box size at offset {offset}")
        if offset == 0 and kind != b"ftyp":
            raise Refused("not an MP4: no ftyp box at the start")
        if offset + size > reader.size:
            movie.truncated = True
            return
        if kind in (b"moof", b"moov") and size > MAX_META_BOX:
            raise Refused(f"not an MP4 written by ffmpeg: {kind.decode()} of {size} bytes")
        if kind == b"moof":
            if not _fragment_complete(reader, offset + size):
                movie.truncated = True
                return
            yield offset, head, size
        elif kind == b"ftyp":
            movie.has_ftyp = True
        elif kind == b"moov":
            movie.has_moov = True
            moov(reader.read(offset + head, size - head), movie)
        offset += size


def _moof_at(reader: _Reader, fragment: _Fragment, movie: Movie, late: bool = False) -> None:
    at, head, size = fragment
    moof(reader.read(at + head, size - head), movie, late)


def _from_trailer(reader: _Reader, movie: Movie, first: _Fragment) -> tuple[float, str | None] | None:
    """The playable span from the first fragment and the last ones ``mfra`` points at, or None
    (no trailer, or one that does not add up: the caller walks the file instead)."""
    _moof_at(reader, first, movie)
    at = _mfra_offset(reader, first[0] + first[2])
    lasts = _last_fragments(reader.read(at, reader.size - at)) if at is not None else set()
    if at is None or not lasts:
        return None
    started = movie.started()
    for n, offset in enumerate(sorted(lasts, reverse=True)):
        whole = _whole_moof(reader, offset, first[0], at)
        if whole is None or (n == 0 and whole[1] != at):  # the newest must end where the trailer begins
            return None
        moof(reader.read(offset + 8, whole[0] - 8), movie, late=True)
    if not movie.all_timed or not movie.all_ended(started):
        return None
    return result(movie)


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
    """The ``moof`` offset of each track's last random-access entry in ``tfra``; none (walk the
    file) when there are more ``tfra`` boxes than tracks kept."""
    lasts: set[int] = set()
    for kind, start, end in boxes(mfra, 8):
        if kind != b"tfra" or end - start < 16:
            continue
        if len(lasts) >= MAX_TRACKS:
            return set()
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
