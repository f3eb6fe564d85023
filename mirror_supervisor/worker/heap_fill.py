"""Filling the free blocks of the zygote's heap before it freezes, so that what a worker allocates
goes to memory of its own, packed, instead of into hundreds of pages it shares with the zygote.

CPython's small-object allocator (pymalloc) serves each size class (16 to 512 bytes, in steps of
16) from the first of its partly used 16 KiB pools. After the imports and the rehearsal
(:mod:`warm_up`) the zygote's pools are riddled with free blocks, a few in each. A worker's new
objects would land in them, and each lands on a page the worker shares with the zygote: the whole
page is copied for one object. Taken here by objects that live as long as the zygote, those
blocks are gone, and a worker's allocations fill fresh pools of its own, page after page
(docs/benchmarks.md, "Worker memory": about 100 KiB less per worker).

How many blocks each class has free comes from CPython's own report (``sys._debugmallocstats``,
written to the C stderr). Where it cannot be read (another Python, another format), nothing is
filled and nothing else changes.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

SLACK = 16 * 1024  # per class, more than the report counted: what reading it freed, and a fresh pool's start
# One line of the report's table: class, size, pools, blocks in use, blocks available.
_CLASS_LINE = re.compile(r"\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*")
_BYTES_HEADER = 33  # a bytes object of length n asks the allocator for 33 + n bytes (3.11)


def free_blocks() -> dict[int, int]:
    """Block size -> blocks free in the pools in use, from CPython's report; {} when unreadable."""
    report = _report()
    found: dict[int, int] = {}
    for line in report.splitlines():
        match = _CLASS_LINE.fullmatch(line)
        if match is not None:
            found[int(match.group(2))] = int(match.group(5))
    return found


def fill() -> list[object]:
    """Take the free blocks; returns the objects that hold them, to be kept for as long as the
    pages they fill are shared (the zygote's life). What is left free afterwards is the untouched
    end of each class's newest pool."""
    kept: list[object] = []
    for size, count in free_blocks().items():
        kept.extend(fillers(size, count + SLACK // size))
    return kept


def fillers(size: int, count: int) -> list[object]:
    """``count`` new objects of ``size``'s class: bytes from 48 bytes up, floats for 32 (16-byte
    blocks hold no object of ours and are left)."""
    if size >= _BYTES_HEADER + 15:
        return [b"\0" * (size - _BYTES_HEADER) for _ in range(count)]
    if size == 32:
        return [float(n) + 0.5 for n in range(count)]
    return []


def _report() -> str:
    """What ``sys._debugmallocstats`` writes to file descriptor 2, captured in a file."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return ""
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as out:
            os.dup2(out.fileno(), 2)
            try:
                stats()
            finally:
                os.dup2(saved, 2)
            out.seek(0)
            return out.read().decode("ascii", "replace")
    finally:
        os.close(saved)
