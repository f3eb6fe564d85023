"""Coverage: ``mirror-supervisor coverage`` over N cameras x M segments (default 100 x 1,440, a day
of 60 s segments), cold (no index: every file's boxes are parsed and the index filled) and warm
(the index is used; every file is still listed and stat'ed); and the cost of reading one
segment's playable duration with ffprobe against the box parser (``mirror_supervisor.footage.mp4``).

The segments are written here, box by box, the way ffmpeg lays them out (ftyp, an empty moov,
then one moof + mdat per keyframe, 1 s keyframes at 25 fps, and the mfra trailer ffmpeg writes
when it closes a segment; one segment in 240 has none, as a killed ffmpeg leaves it) as *sparse*
files: the mdat payload is a hole, so a day of 100 cameras at ~1 Mbit/s has its real file sizes
and fragment layout on a disk that holds a few hundred MiB. "Cold" means no index; "cold from
disk" also nothing cached: as root the benchmark drops the machine's page, inode and directory
caches first (:func:`evict`), so run it on a machine of its own.
ffprobe is timed on a real segment that ffmpeg encodes here (60 s, 1 s keyframes).

The value is self-contained (config, machine, duration), like the scale suite's, so
``scripts/bench --coverage`` replaces only this suite's figures.
"""

from __future__ import annotations

import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import ROOT, log, mono
from .context import Context
from .machine import machine_info

DAY_START = 1795564800.0  # 2026-11-25T00:00:00Z
FPS, TIMESCALE, SEGMENT_SECONDS = 25, 12800, 60
FRAGMENT_BYTES = 125_000  # ~1 Mbit/s: one keyframe interval of media, left as a hole
KILLED_EVERY = 240  # one segment in 240 (every 4 h) ends without trailer: ffmpeg was killed


def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full(kind: bytes, flags: int, *parts: bytes, version: int = 0) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *parts)


def _layout(closed: bool = True) -> tuple[list[tuple[int, bytes]], int]:
    """(offset, bytes) pieces of one 60 s segment and its size; the rest is holes. ``closed``: it
    ends in the ``mfra`` trailer ffmpeg writes when it ends a segment itself; else it is the segment
    of a killed ffmpeg (no trailer, the last fragment cut short)."""
    mdhd = _full(b"mdhd", 0, struct.pack(">IIII", 0, 0, TIMESCALE, 0), b"\x55\xc4\x00\x00")
    hdlr = _full(b"hdlr", 0, struct.pack(">I4s", 0, b"vide"), bytes(12), b"v\x00")
    tkhd = _full(b"tkhd", 3, struct.pack(">IIIII", 0, 0, 1, 0, 0), bytes(60))
    trex = _full(b"trex", 0, struct.pack(">IIIII", 1, 1, 0, 0, 0))
    head = (_box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso6mp41")
            + _box(b"moov", _full(b"mvhd", 0, struct.pack(">IIII", 0, 0, 1000, 0), bytes(80)),
                   _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr)), _box(b"mvex", trex)))
    pieces, offset = [(0, head)], len(head)
    frame = TIMESCALE // FPS
    entries = []
    for second in range(SEGMENT_SECONDS):
        samples = b"".join(struct.pack(">II", frame, FRAGMENT_BYTES // FPS) for _ in range(FPS))
        traf = _box(b"traf", _full(b"tfhd", 0x020000, struct.pack(">I", 1)),
                    _full(b"tfdt", 0, struct.pack(">Q", second * TIMESCALE * 1), version=1),
                    _full(b"trun", 0x000301, struct.pack(">Ii", FPS, 0), samples))
        moof = _box(b"moof", _full(b"mfhd", 0, struct.pack(">I", second + 1)), traf)
        entries.append(struct.pack(">QQBBB", second * TIMESCALE, offset, 1, 1, 1))
        pieces.append((offset, moof + struct.pack(">I4s", 8 + FRAGMENT_BYTES, b"mdat")))
        offset += len(moof) + 8 + FRAGMENT_BYTES
    if not closed:
        return pieces, offset - FRAGMENT_BYTES // 2
    tfra = _full(b"tfra", 0, struct.pack(">III", 1, 0, len(entries)), *entries, version=1)
    mfra = _box(b"mfra", tfra, _full(b"mfro", 0, struct.pack(">I", 8 + len(tfra) + 16)))
    pieces.append((offset, mfra))
    return pieces, offset + len(mfra)


def write_day(mirror: Path, cameras: int, segments: int) -> int:
    """Sparse segment files: ``cameras`` directories of ``segments`` consecutive 60 s segments
    (every other name one second late, as ffmpeg's names jitter; every :data:`KILLED_EVERY`-th one
    the segment of a killed ffmpeg, without trailer). Returns the apparent bytes."""
    layouts = {closed: _layout(closed) for closed in (True, False)}
    total = 0
    for c in range(cameras):
        directory = mirror / f"cam{c:03d}"
        directory.mkdir(parents=True)
        for i in range(segments):
            pieces, size = layouts[i % KILLED_EVERY != KILLED_EVERY - 1]
            start = DAY_START + i * SEGMENT_SECONDS + (i % 2)
            name = time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(start))
            fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                for offset, data in pieces:
                    os.pwrite(fd, data, offset)
                os.ftruncate(fd, size)
            finally:
                os.close(fd)
            total += size
    return total


def _coverage_cli(mirror: Path, state: Path, end: float) -> tuple[float, str]:
    """Wall time of the real command, as an operator runs it."""
    argv = [sys.executable, "-m", "mirror_supervisor", "coverage", "--mirror-dir", str(mirror),
            "--state-dir", str(state), "--json", "--from", _rfc(DAY_START), "--to", _rfc(end)]
    began = mono()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "HELDAR_RECORDINGS_DIR": ""})
    return round(mono() - began, 2), done.stdout[:200] if done.returncode == 0 else done.stderr[-500:]


def _rfc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def per_file_costs(work: Path, repeats: int) -> dict[str, Any]:
    """ffprobe (a process per file, as a script would do it) against the box parser, one real file."""
    from mirror_supervisor.footage import mp4

    path = work / "real.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc=size=640x360:rate={FPS}", "-t", str(SEGMENT_SECONDS), "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", str(FPS), "-movflags", "+frag_keyframe+empty_moov+default_base_moof",
                    "-flush_packets", "1", "-y", str(path)], check=True, timeout=300)
    ffprobe = []
    for _ in range(repeats):
        began = mono()
        subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                       check=True, capture_output=True, timeout=60)
        ffprobe.append(mono() - began)
    boxes = []
    for _ in range(repeats * 20):
        began = mono()
        info = mp4.probe(path)
        boxes.append(mono() - began)
    return {"file_bytes": path.stat().st_size, "duration_s": info.duration,
            "ffprobe_s": statistics.median(ffprobe), "boxes_s": statistics.median(boxes),
            "repeats": repeats}


def evict(mirror: Path) -> tuple[float, str]:
    """Make the next run read from the disk. As root: write everything back and drop the whole
    page, inode and directory cache (``/proc/sys/vm/drop_caches``), as after a reboot; else drop
    only this suite's file data (``posix_fadvise`` DONTNEED; inodes and directories stay cached).
    Returns the seconds it took and which of the two it did."""
    began = mono()
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
        return mono() - began, "drop_caches"
    except OSError:
        pass
    for directory in mirror.iterdir():
        if not directory.is_dir() or directory.name.startswith("."):
            continue
        for path in directory.iterdir():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return mono() - began, "fadvise"


def _timed(compute: Any, parsed: int) -> float:
    """Seconds one ``coverage.compute`` took; it must have parsed ``parsed`` files and found no gap."""
    began = mono()
    report = compute()
    seconds = mono() - began
    assert report.parsed == parsed, (report.parsed, parsed)
    assert all(c.gaps == [] and not c.invalid for c in report.cameras), [c.gaps for c in report.cameras][:3]
    return seconds


def _drop_index(mirror: Path) -> None:
    from mirror_supervisor.footage import index

    for suffix in ("", "-wal", "-shm"):
        index.index_path(mirror).with_name(index.INDEX_NAME + suffix).unlink(missing_ok=True)


def run(ctx: Context) -> dict[str, Any]:
    from mirror_supervisor.footage import coverage, index

    o = ctx.opts
    cameras, segments = o.coverage_cameras, o.coverage_segments
    began = mono()
    base = ctx.work / "coverage"
    mirror = base / "mirror"
    mirror.mkdir(parents=True)
    result: dict[str, Any] = {"config": {"cameras": cameras, "segments": segments, "segment_seconds": SEGMENT_SECONDS,
                                         "fragment_bytes": FRAGMENT_BYTES, "fps": FPS, "quick": o.quick,
                                         "killed_every": KILLED_EVERY},
                              "machine": machine_info()}
    log(f"coverage: writing {cameras} x {segments} sparse segments")
    t = mono()
    result["apparent_gib"] = round(write_day(mirror, cameras, segments) / 2**30, 1)
    result["write_s"] = round(mono() - t, 1)
    end = DAY_START + segments * SEGMENT_SECONDS
    runs: dict[str, list[float]] = {"cold_disk": [], "cold_cached": [], "warm": [], "cli_cold_disk": [], "cli_warm": []}
    index.make_index_dir(mirror)  # the workers' directory; "cold" = no database in it
    expected = cameras * segments
    for _ in range(o.coverage_repeats):
        _drop_index(mirror)
        seconds, result["evicted_by"] = evict(mirror)
        result["evict_s"] = round(seconds, 1)
        runs["cold_disk"].append(_timed(lambda: coverage.compute(mirror, DAY_START, end, now=end + 86400), expected))
        _drop_index(mirror)
        runs["cold_cached"].append(_timed(lambda: coverage.compute(mirror, DAY_START, end, now=end + 86400), expected))
        runs["warm"].append(_timed(lambda: coverage.compute(mirror, DAY_START, end, now=end + 86400), 0))
        log(f"coverage: cold from disk {runs['cold_disk'][-1]:.2f} s, cold cached {runs['cold_cached'][-1]:.2f} s, "
            f"warm {runs['warm'][-1]:.2f} s")
    _drop_index(mirror)
    evict(mirror)
    runs["cli_cold_disk"].append(_coverage_cli(mirror, base / "state", end)[0])
    seconds, head = _coverage_cli(mirror, base / "state", end)
    runs["cli_warm"].append(seconds)
    log(f"coverage: command cold from disk {runs['cli_cold_disk'][0]} s, warm {seconds} s")
    result["runs"] = {k: [round(x, 3) for x in v] for k, v in runs.items()}
    result["median"] = {k: round(statistics.median(v), 3) for k, v in runs.items() if v}
    result["cli_output_head"] = head
    result["index_mib"] = round(index.index_path(mirror).stat().st_size / 2**20, 1)
    result["per_file"] = per_file_costs(base, 5 if o.quick else 20)
    pf = result["per_file"]
    result["ffprobe_all_files_h"] = round(pf["ffprobe_s"] * cameras * segments / 3600, 2)
    result["duration_s"] = round(mono() - began, 1)
    # 144,000 sparse files of 61 extents each take ext4 a quarter of an hour to delete: moved out
    # of the work dir and deleted in the background, so the figures are written now.
    trash = Path(tempfile.mkdtemp(prefix="mirror-bench-trash-", dir=ctx.work.parent))
    mirror.rename(trash / "mirror")
    subprocess.Popen(["rm", "-rf", "--", str(trash)], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return result


def render(results: dict[str, Any]) -> list[str]:
    r = results.get("coverage")
    if not r:
        return []
    c, m, pf = r["config"], r["median"], r["per_file"]
    n = c["cameras"] * c["segments"]
    lines = [
        "## Coverage: segment index and box parsing",
        "",
        f"`scripts/bench --coverage{' --quick' if c['quick'] else ''}` on {r['machine']['date_utc']} "
        f"({r['machine']['cores']} cores, commit {r['machine']['commit']}), {r['duration_s']:.0f} s: "
        f"{c['cameras']} cameras x {c['segments']} segments of {c['segment_seconds']} s "
        f"({n:,} sparse files, {r['apparent_gib']} GiB apparent, 1 s fragments, ffmpeg's `mfra` trailer "
        f"on all but one segment in {c.get('killed_every', 240)}); median of {len(r['runs']['warm'])} in-process "
        f"runs, the command once each. *Cold* = no index: every file is parsed and the index filled; "
        + ("*from disk* = `sync`, then the page, inode and directory caches dropped "
           "(`/proc/sys/vm/drop_caches`), as after a reboot; " if r.get("evicted_by") == "drop_caches" else
           "*from disk* = this suite's file data dropped from the page cache (`posix_fadvise` DONTNEED after "
           "`sync`; inodes and directories stay cached, unlike after a reboot); ")
        + f"*cached* = right after that run. Index size {r['index_mib']} MiB.",
        "",
        "| | cold, from disk | cold, cached | warm (index used, files listed) | target |",
        "|---|---|---|---|---|",
        f"| `coverage.compute` in process | {m['cold_disk']:.2f} s | {m['cold_cached']:.2f} s | {m['warm']:.2f} s "
        f"| cold <= 60 s, warm <= 5 s |",
        f"| `mirror-supervisor coverage --json` | {m['cli_cold_disk']:.2f} s | | {m['cli_warm']:.2f} s "
        f"| cold <= 60 s, warm <= 5 s |",
        "",
        f"Every run: {n:,} files, none invalid, no gap. Runs: " + "; ".join(
            f"{k} {', '.join(f'{x:.1f}' for x in v)} s" for k, v in r["runs"].items()) + ".",
        "",
        "| one 60 s segment, playable duration | per file | for all files above |",
        "|---|---|---|",
        f"| ffprobe (a process per file) | {pf['ffprobe_s'] * 1000:.1f} ms | {r['ffprobe_all_files_h']} h |",
        f"| box parser (`mp4.probe`), real ffmpeg file with trailer | {pf['boxes_s'] * 1e6:.0f} us | "
        f"{pf['boxes_s'] * n:.1f} s |",
        "",
    ]
    return lines
