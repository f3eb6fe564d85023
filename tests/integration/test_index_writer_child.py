"""The segment index writer child with a real master, real ffmpeg and the test camera (issue 23).

Workers no longer write the index: they say which segments are complete on their report pipe, and
one child of the master (``mirror-supervisor: index writer``) writes every camera's rows
(docs/design.md, "Coverage"). Here: the rows appear, written by that child (stopped, it writes
none; continued, it catches up from its pipe); no worker runs any SQLite (read from its memory
map); the writer is replaced when it dies while recording goes on untouched; it dies with the
master; and at a stop every camera's last segment is indexed.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import psutil
from support import procs

from mirror_supervisor.footage import index
from mirror_supervisor.plumbing import titles

SEGMENT_SECONDS = 2
SEGMENT = re.compile(r"\d{8}_\d{6}\.mp4")


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if SEGMENT.fullmatch(p.name)) if directory.is_dir() else []


def indexed(mirror: Path, camera: str) -> set[str]:
    try:
        with index.SegmentIndex(mirror, write=False) as db:
            return set(db.rows(camera, "", "~"))
    except index.IndexError_:
        return set()


def writers(master_pid: int) -> list[int]:
    """The master's index writer children (one, when there is one)."""
    try:
        children = psutil.Process(master_pid).children()
    except psutil.NoSuchProcess:
        return []
    return [c.pid for c in children if procs.title(c) == titles.INDEX_WRITER and procs.alive(c.pid)]


def sqlite_pages(pid: int) -> dict[str, int]:
    """Each mapping of SQLite's library or Python's module in ``pid``: the kB of its pages that are
    the process's own (Private_Clean + Private_Dirty in smaps). A worker is a fork of the master,
    which reads the NVR's database, so it inherits the mappings; it must never touch them."""
    found: dict[str, int] = {}
    current = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            current = fields[5] if len(fields) > 5 and "sqlite" in fields[5] else None
            if current is not None:
                found.setdefault(current, 0)
        elif current is not None and fields[0] in ("Private_Clean:", "Private_Dirty:"):
            found[current] += int(fields[1])
    return found


def open_index_files(pid: int) -> list[str]:
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return [link for link in links if index.INDEX_DIR in link]


def test_rows_are_written_by_the_writer_child_and_no_worker_runs_sqlite(rtsp, nvr, mirror_dir, supervisor):
    cameras = {"a", "b"}
    for camera in cameras:
        nvr.add_mirrored(camera, rtsp.url("/live"), segment_seconds=SEGMENT_SECONDS)
    sup = supervisor("--poll-interval", "600")
    table = sup.wait_one_each(cameras)
    for camera in cameras:
        procs.wait_for(f"{camera}: 3 rows", lambda camera=camera: len(indexed(mirror_dir, camera)) >= 3, 60)
    (writer,) = procs.wait_for("one index writer child", lambda: writers(sup.pid), 10)

    # No worker runs SQLite or holds the index open, and none has a thread beside its stderr reader.
    master_maps = sqlite_pages(sup.pid)
    assert master_maps, "the master reads the NVR's database with SQLite: else this check means nothing"
    assert sum(sqlite_pages(writer).values()) > 0, "the writer runs SQLite: its own pages show"
    for camera, view in table.items():
        pages = sqlite_pages(view.pid)
        assert set(pages) <= set(master_maps), f"{camera}: a SQLite mapping the master does not have: {pages}"
        assert sum(pages.values()) == 0, f"{camera}: the worker touched SQLite's pages: {pages}"
        assert open_index_files(view.pid) == []
        assert len(os.listdir(f"/proc/{view.pid}/task")) <= 2, "the loop and ffmpeg's stderr reader only"

    # Stopped, the writer writes nothing while segments go on; continued, it writes what waited in its pipe.
    os.kill(writer, signal.SIGSTOP)
    try:
        time.sleep(0.5)
        frozen = {camera: indexed(mirror_dir, camera) for camera in cameras}
        before = {camera: set(names(mirror_dir / camera)) for camera in cameras}
        procs.wait_for("2 new segments each while the writer is stopped",
                       lambda: all(len(set(names(mirror_dir / c)) - before[c]) >= 2 for c in cameras), 60)
        assert {camera: indexed(mirror_dir, camera) for camera in cameras} == frozen
    finally:
        os.kill(writer, signal.SIGCONT)
    for camera in cameras:
        finished = set(names(mirror_dir / camera)[:-1])
        try:
            procs.wait_for(f"{camera}: the segments finished meanwhile indexed",
                           lambda camera=camera, finished=finished: finished <= indexed(mirror_dir, camera), 30)
        except AssertionError:
            print("MISSING", camera, sorted(finished - indexed(mirror_dir, camera)), sorted(finished), sup.log())
            raise
    assert writers(sup.pid) == [writer] and "cannot index segment" not in sup.log()
    assert procs.disturbed(table, sup.one_each(cameras), sup.log()) == []


def test_a_killed_writer_is_replaced_while_recording_goes_on(rtsp, nvr, mirror_dir, supervisor):
    nvr.add_mirrored("cam", rtsp.url("/live"), segment_seconds=SEGMENT_SECONDS)
    sup = supervisor("--poll-interval", "600")
    table = sup.wait_one_each({"cam"})
    procs.wait_for("2 rows", lambda: len(indexed(mirror_dir, "cam")) >= 2, 60)
    (first,) = procs.wait_for("the index writer", lambda: writers(sup.pid), 10)

    os.kill(first, signal.SIGKILL)
    sup.wait_log(f"segment index writer pid={first} exited (signal 9); starting another in")
    (second,) = procs.wait_for("a new index writer", lambda: [p for p in writers(sup.pid) if p != first], 10)
    killed_at = set(names(mirror_dir / "cam"))
    procs.wait_for("3 new segments", lambda: len(set(names(mirror_dir / "cam")) - killed_at) >= 3, 60)
    finished_since = set(names(mirror_dir / "cam")[:-1]) - killed_at
    procs.wait_for("segments finished after the kill indexed by the new writer",
                   lambda: finished_since <= indexed(mirror_dir, "cam"), 30)
    assert writers(sup.pid) == [second]
    assert procs.disturbed(table, sup.one_each({"cam"}), sup.log()) == [], "recording was untouched"


def test_the_writer_dies_with_the_master_even_by_sigkill(rtsp, nvr, mirror_dir, supervisor):
    nvr.add_mirrored("cam", rtsp.url("/live"), segment_seconds=SEGMENT_SECONDS)
    sup = supervisor("--poll-interval", "600")
    table = sup.wait_one_each({"cam"})
    (writer,) = procs.wait_for("the index writer", lambda: writers(sup.pid), 30)
    sup.signal(signal.SIGKILL)
    sup.proc.wait(timeout=10)
    left = [table["cam"].pid, *table["cam"].ffmpeg_pids, writer]
    procs.wait_for("no worker, ffmpeg or index writer left", lambda: not any(procs.alive(pid) for pid in left), 5,
                   interval=0.05)


def test_at_a_stop_every_camera_s_last_segment_is_indexed(rtsp, nvr, mirror_dir, supervisor):
    cameras = {"a", "b", "c"}
    for camera in cameras:
        nvr.add_mirrored(camera, rtsp.url("/live"), segment_seconds=SEGMENT_SECONDS)
    sup = supervisor("--poll-interval", "600")
    sup.wait_one_each(cameras)
    for camera in cameras:
        procs.wait_for(f"{camera}: 2 rows", lambda camera=camera: len(indexed(mirror_dir, camera)) >= 2, 60)
    began = time.monotonic()
    assert sup.stop(timeout=30) == 0
    print(f"stopped in {time.monotonic() - began:.2f}s")
    log = sup.log()
    assert "did not finish within" not in log and "segment index writer pid=" not in log, log
    for camera in cameras:
        missing = set(names(mirror_dir / camera)) - indexed(mirror_dir, camera)
        assert missing == set(), f"{camera}: not indexed at the stop: {missing}"
