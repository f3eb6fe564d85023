"""The blocks the timelines are made of (web/blocks.py): which blocks a window needs, which to
read again and when, and a camera's timeline put together from them."""

from __future__ import annotations

import calendar

from mirror_supervisor.web import blocks
from mirror_supervisor.web.blocks import BLOCK, Store

T0 = calendar.timegm((2026, 12, 7, 0, 0, 0))


def answer(start: float, read_at: float, known_until: float | None = None, **cameras: dict) -> dict:
    return {"start": start, "read_at": read_at, "known_until": start + BLOCK if known_until is None else known_until,
            "cameras": cameras}


def test_a_window_needs_the_blocks_it_touches():
    assert blocks.starts(T0 + 100, T0 + 100 + 86400) == [T0 + i * BLOCK for i in range(25)]
    assert blocks.starts(T0, T0 + 3600) == [T0]
    assert blocks.starts(T0 + 10, T0 + 20) == [T0]


def test_blocks_are_read_again_fresh_while_live_and_rarely_once_settled():
    store = Store("/m", None)
    wanted = [T0, T0 + BLOCK]
    assert store.stale(wanted, ["a"], mono=0.0) == [T0 + BLOCK, T0], "never read: all of them, newest first"
    now = T0 + BLOCK + 600  # ten minutes into the second block
    store.take(answer(T0, now, a={}), mono=0.0)  # settled: read long after its end
    store.take(answer(T0 + BLOCK, now, now - blocks.EDGE, a={}), mono=0.0)  # live
    assert store.stale(wanted, ["a"], mono=blocks.FRESH - 1) == []
    assert store.stale(wanted, ["a"], mono=blocks.FRESH) == [T0 + BLOCK], "the live block, after FRESH"
    assert store.stale(wanted, ["a"], mono=blocks.KEEP + blocks.STAGGER) == [T0 + BLOCK, T0]
    assert store.stale(wanted, ["a", "new"], mono=1.0) == [T0 + BLOCK, T0], "a camera no read has seen yet"


def test_a_block_read_just_after_its_end_is_read_again_once_settled():
    store = Store("/m", None)
    store.take(answer(T0, T0 + BLOCK + 30, a={}), mono=0.0)  # 30 s after its end: its last segment may run on
    assert store.stale([T0], ["a"], mono=blocks.FRESH) == [T0]
    store.take(answer(T0, T0 + BLOCK + blocks.SETTLE + 1, a={}), mono=blocks.FRESH)
    assert store.stale([T0], ["a"], mono=2 * blocks.FRESH) == []


def test_a_timeline_joins_blocks_and_shows_what_is_not_read_yet():
    store = Store("/m", None)
    now = T0 + 2 * BLOCK + 1800
    store.take(answer(T0, now, a={"covered": [[T0, T0 + BLOCK]], "first": T0 - 500}), mono=0.0)
    store.take(answer(T0 + 2 * BLOCK, now, now - 15,
                      a={"covered": [[T0 + 2 * BLOCK, T0 + 2 * BLOCK + 600]], "first": T0 - 500,
                         "invalid": [["20261207_020500.mp4", T0 + 2 * BLOCK + 300]], "problem": "newest"}), mono=0.0)
    drawn, problem = store.timeline("a", T0, now)
    assert problem == "newest"
    assert [(s.kind, s.start - T0, s.end - T0) for s in drawn.stretches] == [
        ("covered", 0, BLOCK),
        ("pending", BLOCK, 2 * BLOCK),  # the middle block: never read
        ("covered", 2 * BLOCK, 2 * BLOCK + 600),
        ("gap", 2 * BLOCK + 600, 2 * BLOCK + 1785),
        ("pending", 2 * BLOCK + 1785, 2 * BLOCK + 1800),  # the newest seconds, not on disk when read
        ("invalid", 2 * BLOCK + 300, 2 * BLOCK + 300),
    ]
    assert store.timeline("other", T0, now)[0].of_kind("pending")[0].seconds == 2 * BLOCK + 1800


def test_the_oldest_block_is_read_from_the_windows_start_only():
    store = Store("/m", None)
    since = T0 + 1800  # the window starts half way through the block
    store.take({**answer(T0, T0 + 2 * BLOCK, a={"covered": [[since, T0 + BLOCK]], "first": since}),
                "known_from": since}, mono=0.0)
    assert store.stale([T0], ["a"], mono=1.0, since=since) == []
    assert store.stale([T0], ["a"], mono=1.0, since=since + 60) == [], "a later window needs less of it"
    assert store.stale([T0], ["a"], mono=1.0, since=T0) == [T0], "a longer window needs all of it"
    assert store.stale([T0], ["a"], mono=1.0) == [T0]
    drawn, _ = store.timeline("a", T0 + 600, T0 + BLOCK)
    assert [(s.kind, s.start - T0, s.end - T0) for s in drawn.stretches] == [("pending", 600, 1800),
                                                                              ("covered", 1800, BLOCK)]


def test_stretches_cut_at_block_edges_join_again():
    store = Store("/m", None)
    now = T0 + 3 * BLOCK
    for i in range(2):
        b = T0 + i * BLOCK
        store.take(answer(b, now, a={"covered": [[b, b + BLOCK]], "first": T0}), mono=0.0)
    drawn, _ = store.timeline("a", T0, T0 + 2 * BLOCK)
    assert [(s.kind, s.seconds) for s in drawn.stretches] == [("covered", 2 * BLOCK)]


def test_the_primary_comes_from_the_blocks_too():
    store = Store("/m", "/nvr")
    store.take(answer(T0, T0 + 2 * BLOCK, a={"covered": [[T0, T0 + 100]], "primary": [[T0 + 50, T0 + 200]]}), mono=0.0)
    drawn, _ = store.timeline("a", T0, T0 + 300)
    assert drawn.compared
    assert [(s.kind, s.start - T0, s.end - T0) for s in drawn.stretches] == [
        ("only_mirror", 0, 50), ("both", 50, 100), ("only_primary", 100, 200), ("neither", 200, 300)]


def test_malformed_answers_are_ignored_and_old_blocks_forgotten():
    store = Store("/m", None)
    for bad in ({}, {"start": "x", "read_at": 1, "known_until": 1, "cameras": {}},
                {"start": T0, "read_at": T0, "known_until": T0, "cameras": {"a": {"covered": [[1]]}}},
                {"start": T0, "read_at": T0, "known_until": T0, "cameras": []}):
        store.take(bad, mono=0.0)
    assert store.blocks == {}
    store.take(answer(T0, T0 + BLOCK, a={}), mono=0.0)
    store.forget(T0 + blocks.OLDEST)
    assert T0 in store.blocks
    store.forget(T0 + blocks.OLDEST + 2 * BLOCK)
    assert store.blocks == {}
