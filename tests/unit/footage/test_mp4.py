"""The box parser (mp4.py): playable duration from moof/tfdt/trun, without reading the media."""

from __future__ import annotations

import os
import random
import re
import shutil
import threading
import tracemalloc

import pytest
from support import fmp4

from mirror_supervisor.footage import coverage, mp4


def test_duration_of_a_complete_fragmented_segment(tmp_path):
    path = fmp4.write_segment(tmp_path / "a.mp4", 60.0)
    info = mp4.probe(path)
    assert info.playable and info.problem is None
    assert info.duration == pytest.approx(60.0)
    assert info.size == path.stat().st_size and info.mtime_ns == path.stat().st_mtime_ns


def test_the_video_track_decides_when_audio_runs_longer(tmp_path):
    path = fmp4.write_segment(tmp_path / "a.mp4", 10.0, audio=True)
    assert mp4.probe(path).duration == pytest.approx(10.0)


def test_starts_from_the_first_tfdt_not_zero(tmp_path):
    data = fmp4.header([(1, 1000, b"vide")])
    data += fmp4.fragment(1, [(1, 5000, [1000, 1000])]) + fmp4.fragment(2, [(1, 7000, [1000])])
    (tmp_path / "a.mp4").write_bytes(data)
    assert mp4.probe(tmp_path / "a.mp4").duration == pytest.approx(3.0)


@pytest.mark.parametrize("cut", [1, 7, 40, 64])
def test_a_segment_cut_short_keeps_its_complete_fragments(tmp_path, cut):
    """A killed ffmpeg leaves no trailer and maybe half a fragment: only that one is lost."""
    data = fmp4.segment(5.0, gop=1.0)
    path = tmp_path / "a.mp4"
    path.write_bytes(data[:len(data) - cut])
    info = mp4.probe(path)
    assert info.playable
    assert info.duration == pytest.approx(4.0)


def test_header_only_is_not_playable(tmp_path):
    path = tmp_path / "a.mp4"
    path.write_bytes(fmp4.header([(1, 12800, b"vide")]))
    info = mp4.probe(path)
    assert not info.playable and "no" in (info.problem or "")


@pytest.mark.parametrize("content, words", [
    (b"", "empty"),
    (b"garbage that is not an mp4 at all\n" * 10, "not an MP4"),
    (b"\x00\x00\x00\x01ftyp", "not an MP4"),
    (fmp4.box(b"ftyp", b"isom") + b"\x00\x00\x10\x00moov", "no complete moov"),
])
def test_garbage_is_reported_never_raised(tmp_path, content, words):
    path = tmp_path / "a.mp4"
    path.write_bytes(content)
    info = mp4.probe(path)
    assert not info.playable and info.duration == 0.0
    assert words in (info.problem or "")


def test_missing_and_symlinked_files_are_unreadable(tmp_path):
    assert "unreadable" in (mp4.probe(tmp_path / "none.mp4").problem or "")
    fmp4.write_segment(tmp_path / "real.mp4", 3.0)
    os.symlink(tmp_path / "real.mp4", tmp_path / "link.mp4")
    assert not mp4.probe(tmp_path / "link.mp4").playable


def test_plain_mp4_uses_the_media_duration(tmp_path):
    mdhd = fmp4.full(b"mdhd", 0, 0, b"\x00" * 8 + (1000).to_bytes(4, "big") + (42_500).to_bytes(4, "big"), b"\0\0\0\0")
    tkhd = fmp4.full(b"tkhd", 0, 3, (0).to_bytes(8, "big") + (1).to_bytes(4, "big"), bytes(68))
    hdlr = fmp4.full(b"hdlr", 0, 0, b"\0\0\0\0vide", bytes(13))
    moov = fmp4.box(b"moov", fmp4.full(b"mvhd", 0, 0, bytes(96)),
                    fmp4.box(b"trak", tkhd, fmp4.box(b"mdia", mdhd, hdlr)))
    (tmp_path / "a.mp4").write_bytes(fmp4.box(b"ftyp", b"isom") + moov + fmp4.box(b"mdat", bytes(100)))
    assert mp4.probe(tmp_path / "a.mp4").duration == pytest.approx(42.5)


def test_reads_only_box_headers_not_the_media(tmp_path, monkeypatch):
    """A fragment's media is skipped: bytes read stay far below the file size."""
    data = fmp4.header([(1, 12800, b"vide")])
    for i in range(10):
        data += fmp4.fragment(i + 1, [(1, i * 12800, [512] * 25)], payload=1 << 20)
    (tmp_path / "a.mp4").write_bytes(data)
    read = []
    real = os.pread

    def counting(fd, n, offset):
        out = real(fd, n, offset)
        read.append(len(out))
        return out

    monkeypatch.setattr(mp4.os, "pread", counting)
    assert mp4.probe(tmp_path / "a.mp4").duration == pytest.approx(10.0)
    assert sum(read) < 100_000 < len(data)


def test_a_last_fragment_of_audio_only_does_not_cut_the_video(tmp_path):
    """ffmpeg's final fragment may hold only the audio that trails the last video frame."""
    data = fmp4.header([(1, 1000, b"vide"), (2, 1000, b"soun")])
    for i in range(4):
        data += fmp4.fragment(i + 1, [(1, i * 1000, [500, 500]), (2, i * 1000, [1000])])
    data += fmp4.fragment(5, [(2, 4000, [300])])
    (tmp_path / "a.mp4").write_bytes(data)
    assert mp4.probe(tmp_path / "a.mp4").duration == pytest.approx(4.0)


def _counting_reads(monkeypatch) -> list[int]:
    reads: list[int] = []
    real = os.pread

    def counting(fd, n, offset):
        reads.append(offset)
        return real(fd, n, offset)

    monkeypatch.setattr(mp4.os, "pread", counting)
    return reads


@pytest.mark.parametrize("audio", [False, True])
def test_a_closed_segment_is_read_from_its_trailer_in_a_few_reads(tmp_path, monkeypatch, audio):
    """ffmpeg's mfra names the last fragment: head, tail and that fragment, not 60 headers."""
    data = fmp4.segment(60.0, audio=audio, closed=True)
    path = tmp_path / "a.mp4"
    path.write_bytes(data)
    walked = mp4.probe(tmp_path / "a.mp4")
    reads = _counting_reads(monkeypatch)
    info = mp4.probe(path)
    assert info.playable and info.duration == pytest.approx(60.0)
    assert len(reads) <= 4, reads
    # The same answer as walking every fragment (the file without its trailer).
    path.write_bytes(data[:data.rindex(b"mfra") - 4])
    monkeypatch.undo()
    assert mp4.probe(path).duration == pytest.approx(walked.duration)


def test_a_trailing_audio_fragment_is_found_through_each_tracks_entry(tmp_path, monkeypatch):
    data = fmp4.header([(1, 1000, b"vide"), (2, 1000, b"soun")])
    points: dict[int, list[tuple[int, int]]] = {1: [], 2: []}
    for i in range(40):
        points[1].append((i * 1000, len(data)))
        points[2].append((i * 1000, len(data)))
        data += fmp4.fragment(i + 1, [(1, i * 1000, [500, 500]), (2, i * 1000, [1000])])
    points[2].append((40_000, len(data)))
    data += fmp4.fragment(41, [(2, 40_000, [300])]) + fmp4.trailer(points)
    (tmp_path / "a.mp4").write_bytes(data)
    reads = _counting_reads(monkeypatch)
    assert mp4.probe(tmp_path / "a.mp4").duration == pytest.approx(40.0)
    assert len(reads) <= 5, reads


@pytest.mark.parametrize("damage", ["mfro size", "mfra offset", "moof offset", "stale index", "empty tfra"])
def test_a_trailer_that_does_not_add_up_falls_back_to_the_walk(tmp_path, damage):
    """A wrong trailer never invents footage: the file is walked and the same answer comes out."""
    data = bytearray(fmp4.segment(10.0, closed=True))
    at = data.rindex(b"mfra") - 4
    if damage == "mfro size":
        data[-4:] = (len(data) + 100).to_bytes(4, "big")
    elif damage == "mfra offset":
        data[-4:] = (len(data) - at - 8).to_bytes(4, "big")
    elif damage == "moof offset":  # the last entry points into the middle of a fragment
        data[at + 8 + 24 + 9 * 19 + 8:at + 8 + 24 + 9 * 19 + 16] = (1234).to_bytes(8, "big")
    elif damage == "stale index":  # only the first 5 fragments indexed: the last does not end at mfra
        tail = fmp4.trailer({1: [(0, len(fmp4.header([(1, 12800, b"vide")])))]})
        data = data[:at] + bytearray(tail)
    elif damage == "empty tfra":
        data = data[:at] + bytearray(fmp4.trailer({1: []}))
    (tmp_path / "a.mp4").write_bytes(bytes(data))
    info = mp4.probe(tmp_path / "a.mp4")
    assert info.playable and info.duration == pytest.approx(10.0)


def test_a_real_ffmpeg_segment_has_the_same_duration_either_way(tmp_path):
    """ffmpeg's own trailer (the segment muxer with the worker's movflags) against the walk."""
    import shutil
    import subprocess

    from mirror_supervisor.worker.ffmpeg import MOVFLAGS

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000", "-t", "6", "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-f", "segment", "-segment_time", "60",
                    "-segment_format", "mp4", "-segment_format_options", MOVFLAGS, str(tmp_path / "s%d.mp4")],
                   check=True, timeout=120)
    data = (tmp_path / "s0.mp4").read_bytes()
    assert data[-12:-8] == b"mfro"
    (tmp_path / "walk.mp4").write_bytes(data[:data.rindex(b"mfra") - 4])
    closed, walked = mp4.probe(tmp_path / "s0.mp4"), mp4.probe(tmp_path / "walk.mp4")
    assert closed.playable and walked.playable
    assert closed.duration == pytest.approx(walked.duration, abs=1e-6)
    assert closed.duration == pytest.approx(6.0, abs=0.1)


# -- probe never raises, never blocks, never grows with the file ------------------------------


@pytest.fixture(scope="module")
def real_segment(tmp_path_factory) -> bytes:
    """One segment of real ffmpeg (video and audio, the worker's muxer options, its trailer)."""
    from support import recordings

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    return recordings.ffmpeg_segments(tmp_path_factory.mktemp("real"), 0, 1, seconds=4)[0].read_bytes()


def _shrinking(monkeypatch, path, keep: int) -> None:
    """Truncate ``path`` to ``keep`` bytes right after probe's fstat (a pruner or a rewrite between
    the size it saw and its reads): a real truncate of the real, open file."""
    real, done = os.fstat, []

    def fstat_then_truncate(fd):
        info = real(fd)
        if not done:
            done.append(True)
            os.truncate(path, keep)
        return info

    monkeypatch.setattr(mp4.os, "fstat", fstat_then_truncate)


@pytest.mark.parametrize("closed", [True, False])
@pytest.mark.parametrize("keep", [0, 5, 30, 700, 0.5, -20, -1])
def test_a_file_that_shrinks_while_read_is_unreadable_not_an_exception(tmp_path, monkeypatch, closed, keep):
    data = fmp4.segment(10.0, audio=True, closed=closed)
    path = tmp_path / "a.mp4"
    path.write_bytes(data)
    _shrinking(monkeypatch, path, int(len(data) * keep) if isinstance(keep, float) else keep % len(data))
    info = mp4.probe(path)
    monkeypatch.undo()
    assert not info.playable and info.duration == 0.0
    assert "shrank" in (info.problem or ""), info


def _damaged(data: bytes, boxes: list[int], rng: random.Random) -> bytes:
    """``data`` cut, or with bytes overwritten: mostly where the boxes' sizes and types are
    (``boxes``: where a box header may start)."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.3:
            out = out[:rng.randrange(len(out) + 1)]
        elif out:
            at = min(len(out) - 1, rng.choice(boxes) + rng.choice([0, 0, 1, 3, 8, 12, rng.randrange(64)]))
            value = rng.choice([b"\x00\x00\x00\x00", b"\x00\x00\x00\x01", b"\xff\xff\xff\xff", b"\x00\x00\x00\x08",
                                b"\x7f\xff\xff\xff", b"moof", b"mdat", b"traf", b"trun", bytes([rng.randrange(256)])])
            out[at:at + len(value)] = value
    return bytes(out)


@pytest.mark.parametrize("source", ["real", "built"])
def test_probe_never_raises_on_damaged_or_shrinking_files(tmp_path, monkeypatch, source, request):
    """Fuzz-ish: random cuts and overwrites of a segment, some also cut again between fstat and the
    reads; every file gets an answer of its own, never an exception."""
    data = request.getfixturevalue("real_segment") if source == "real" else fmp4.segment(6.0, audio=True, closed=True)
    rng = random.Random(1919)
    boxes = [m.start() - 4 for m in re.finditer(rb"(?=[a-z]{4})", data) if m.start() >= 4] or [0]
    path = tmp_path / "a.mp4"
    for case in range(400):
        damaged = _damaged(data, boxes, rng)
        path.write_bytes(damaged)
        if damaged and case % 4 == 0:
            _shrinking(monkeypatch, path, rng.randrange(len(damaged)))
        try:
            info = mp4.probe(path)
        except Exception as exc:  # noqa: BLE001 - the failure this test exists for, with its input
            (tmp_path / "failed.mp4").write_bytes(damaged)
            pytest.fail(f"case {case}: probe raised {exc!r} (input kept as {tmp_path / 'failed.mp4'})")
        finally:
            monkeypatch.undo()
        assert info.playable == (info.problem is None) and info.duration >= 0, (case, info)


def test_a_fifo_named_like_a_segment_is_refused_without_blocking(tmp_path):
    """A FIFO swapped in after the listing: a plain open for reading would wait for a writer forever."""
    path = tmp_path / "20240101_000000.mp4"
    os.mkfifo(path)
    answers: dict[str, mp4.SegmentInfo] = {}

    def read_both() -> None:
        answers["probe"] = mp4.probe(path)
        answers["batch"] = coverage.probe_batch([str(path)])[0]

    reader = threading.Thread(target=read_both, daemon=True)
    reader.start()
    reader.join(30)
    if reader.is_alive():  # give the blocked open a writer so the thread ends, then fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading a FIFO named like a segment blocked for 30 s")
    for info in answers.values():
        assert not info.playable and "not a regular file" in (info.problem or ""), answers


def _tiny_fragments(path, count: int) -> None:
    """A first and a last real fragment 5 s apart, ``count`` empty 16-byte ones between them."""
    with open(path, "wb") as out:
        out.write(fmp4.header([(1, 1000, b"vide")]) + fmp4.fragment(1, [(1, 0, [1000])], payload=8))
        out.write((fmp4.box(b"moof") + fmp4.box(b"mdat")) * count)
        out.write(fmp4.fragment(2, [(1, 5000, [1000])], payload=8))


def test_a_file_of_countless_tiny_fragments_is_walked_in_bounded_memory(tmp_path):
    """Memory must not grow with the number of fragments (a crafted file of millions of them
    would exhaust the root coverage child); tracemalloc counts bytes, not time."""
    peaks = []
    for count in (1_000, 25_000):
        _tiny_fragments(tmp_path / "a.mp4", count)
        tracemalloc.start()
        try:
            info = mp4.probe(tmp_path / "a.mp4")
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert info.playable and info.duration == pytest.approx(6.0)
    assert peaks[1] < 1 << 20 and peaks[1] - peaks[0] < 64 << 10, peaks


def test_a_file_of_more_boxes_than_the_limit_is_invalid_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr(mp4, "MAX_BOXES", 1_000)
    _tiny_fragments(tmp_path / "a.mp4", 600)
    info = mp4.probe(tmp_path / "a.mp4")
    assert not info.playable and "more than 1000 boxes" in (info.problem or ""), info
    _tiny_fragments(tmp_path / "a.mp4", 400)
    assert mp4.probe(tmp_path / "a.mp4").playable


def test_more_tracks_than_any_camera_has_are_refused(tmp_path):
    """Each track costs memory; ffmpeg writes two or three."""
    data = fmp4.header([(i, 1000, b"vide") for i in range(1, 1_001)]) + fmp4.fragment(1, [(1, 0, [1000])])
    (tmp_path / "a.mp4").write_bytes(data)
    info = mp4.probe(tmp_path / "a.mp4")
    assert not info.playable and "tracks" in (info.problem or ""), info


@pytest.mark.parametrize("video_until", [1, 10, 60])
def test_a_track_that_ends_long_before_the_file_keeps_its_end(tmp_path, video_until):
    """Video that stops while audio goes on for more fragments than the walk keeps: its end is
    found by parsing every fragment again, not lost with the fragments not kept."""
    data = fmp4.header([(1, 1000, b"vide"), (2, 1000, b"soun")])
    for i in range(100):
        video = [(1, i * 1000, [500, 500])] if i < video_until else []
        data += fmp4.fragment(i + 1, [*video, (2, i * 1000, [1000])])
    (tmp_path / "a.mp4").write_bytes(data)
    assert mp4.probe(tmp_path / "a.mp4").duration == pytest.approx(video_until)
