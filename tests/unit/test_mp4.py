"""The box parser (mp4.py): playable duration from moof/tfdt/trun, without reading the media."""

from __future__ import annotations

import os

import pytest
from support import fmp4

from mirror_supervisor import mp4


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

    from mirror_supervisor.ffmpeg import MOVFLAGS

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
