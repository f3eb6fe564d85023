"""Filling the zygote's free heap blocks (worker/heap_fill.py): the report is read, each filler
lands in its size class, and afterwards no class has more free blocks than one fresh pool's
untouched end. Checked against this interpreter's own allocator, in a forked child (the fillers
stay with it)."""

from __future__ import annotations

import sys

from support.forked import in_fork

from mirror_supervisor.worker import heap_fill

POOL = 16 * 1024
SAMPLE = """Small block threshold = 512, in 32 size classes.

class   size   num pools   blocks in use  avail blocks
-----   ----   ---------   -------------  ------------
    0     16           1             184           837
    1     32           6            2798           262
   31    512           4             105            19

# arenas allocated total           =                    7
"""


def test_the_report_is_read_into_free_blocks_per_size(monkeypatch):
    monkeypatch.setattr(heap_fill, "_report", lambda: SAMPLE)
    assert heap_fill.free_blocks() == {16: 837, 32: 262, 512: 19}


def test_an_unreadable_report_fills_nothing(monkeypatch):
    monkeypatch.setattr(heap_fill, "_report", lambda: "something else entirely\n")
    assert heap_fill.free_blocks() == {}
    assert heap_fill.fill() == []


def test_each_filler_asks_for_a_block_of_its_class():
    for size in range(48, 513, 16):
        made = heap_fill.fillers(size, 3)
        assert len(made) == 3 and all(size - 16 < sys.getsizeof(obj) <= size for obj in made), size
    assert all(isinstance(obj, float) for obj in heap_fill.fillers(32, 2))
    assert heap_fill.fillers(16, 5) == []


def test_after_filling_no_class_has_more_free_than_a_fresh_pool():
    def body():
        before = heap_fill.free_blocks()
        kept = heap_fill.fill()
        after = heap_fill.free_blocks()
        return sum(before.values()), len(kept), {size: free for size, free in after.items()
                                                 if size >= 48 and free > POOL // size}

    free_before, kept, crowded = in_fork(body)
    assert free_before > 0 and kept > 0
    assert crowded == {}
