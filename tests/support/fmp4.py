"""Build fragmented MP4 files box by box, laid out as ffmpeg writes them
(``frag_keyframe+empty_moov+default_base_moof``), for tests of the box parser and coverage."""

from __future__ import annotations

import struct
from pathlib import Path


def box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *parts)


def trak(track_id: int, timescale: int, handler: bytes) -> bytes:
    tkhd = full(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, track_id, 0, 0), bytes(60))
    mdhd = full(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, timescale, 0), b"\x55\xc4\x00\x00")
    hdlr = full(b"hdlr", 0, 0, struct.pack(">I4s", 0, handler), bytes(12), b"x\x00")
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr))


def header(tracks: list[tuple[int, int, bytes]]) -> bytes:
    """ftyp + an empty moov: tracks are (track_id, timescale, handler)."""
    mvhd = full(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, 1000, 0), bytes(80))
    trex = [full(b"trex", 0, 0, struct.pack(">IIIII", tid, 1, 0, 0, 0)) for tid, _, _ in tracks]
    return (box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso6mp41")
            + box(b"moov", mvhd, *(trak(*t) for t in tracks), box(b"mvex", *trex)))


def fragment(sequence: int, trafs: list[tuple[int, int, list[int]]], payload: int = 64) -> bytes:
    """moof + mdat: trafs are (track_id, base decode time, sample durations)."""
    parts = []
    for track_id, decode_time, durations in trafs:
        tfhd = full(b"tfhd", 0, 0x020000, struct.pack(">I", track_id))
        tfdt = full(b"tfdt", 1, 0, struct.pack(">Q", decode_time))
        samples = b"".join(struct.pack(">II", d, payload // max(1, len(durations))) for d in durations)
        trun = full(b"trun", 0, 0x000301, struct.pack(">Ii", len(durations), 0), samples)
        parts.append(box(b"traf", tfhd, tfdt, trun))
    moof = box(b"moof", full(b"mfhd", 0, 0, struct.pack(">I", sequence)), *parts)
    return moof + box(b"mdat", bytes(payload))


def trailer(entries: dict[int, list[tuple[int, int]]]) -> bytes:
    """mfra + mfro as ffmpeg writes them at a clean stop: per track, (decode time, moof offset) of
    each fragment (every fragment starts with a keyframe)."""
    tfras = []
    for track_id, points in entries.items():
        rows = b"".join(struct.pack(">QQBBB", t, offset, 1, 1, 1) for t, offset in points)
        tfras.append(full(b"tfra", 1, 0, struct.pack(">III", track_id, 0, len(points)), rows))
    body = b"".join(tfras)
    size = 8 + len(body) + 16
    return box(b"mfra", body, full(b"mfro", 0, 0, struct.pack(">I", size)))


def segment(seconds: float, gop: float = 1.0, fps: int = 25, audio: bool = False, closed: bool = False,
            jump: float = 0.0) -> bytes:
    """A fragmented segment of ``seconds`` of video (timescale 12800), one fragment per GOP;
    ``closed``: with the trailer ffmpeg writes when it ends the segment itself; ``jump``: the
    stream's timestamps leap forward by this many seconds after the first fragment (as a camera's
    do when its clock steps), so the boxes claim ``seconds + jump``."""
    tracks = [(1, 12800, b"vide")] + ([(2, 16000, b"soun")] if audio else [])
    data = header(tracks)
    frame = 12800 // fps
    frames_total = round(seconds * fps)
    per_gop = max(1, round(gop * fps))
    done, sequence = 0, 1
    points: dict[int, list[tuple[int, int]]] = {}
    while done < frames_total:
        n = min(per_gop, frames_total - done)
        at = done * frame + (round(jump * 12800) if done else 0)
        trafs = [(1, at, [frame] * n)]
        if audio:
            trafs.append((2, at * 16000 // 12800, [1024] * max(1, n * 16000 // 12800 // 1024)))
        for track_id, decode_time, _ in trafs:
            points.setdefault(track_id, []).append((decode_time, len(data)))
        data += fragment(sequence, trafs)
        done += n
        sequence += 1
    return data + (trailer(points) if closed else b"")


def write_segment(path: Path, seconds: float, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(segment(seconds, **kwargs))  # type: ignore[arg-type]
    return path


def segment_name(epoch: float) -> str:
    """A segment's file name for a wall-clock second, as ffmpeg names them (UTC)."""
    import time

    return time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(epoch))


def record(directory: Path, start: float, end: float, seconds: float = 60.0) -> None:
    """Playable segments of ``seconds`` each from ``start`` to ``end`` in ``directory``."""
    at = start
    while at < end:
        write_segment(directory / segment_name(at), min(seconds, end - at))
        at += seconds
