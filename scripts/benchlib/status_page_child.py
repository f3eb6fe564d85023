"""The status-page suite's measuring process (``python -m benchlib.status_page_child ARGS``).

It plays the listener child: the real route (``web/route.py``) with its real forked reader, in
this process, with the package under test first on ``PYTHONPATH`` (the working tree's, or a
commit's for "before"). Like the listener, it has not imported the coverage code when the first
page is asked (each reading child imports it), and it asks the page again at once whenever a
request returns it incomplete, as a browser reloading would. It prints one JSON object:

- ``first``: every first page of a new route (nothing read yet): wall and CPU (this process and
  its readers) from the first request until a request returned every block read, and requests;
- ``refresh``: the page after the route's clock moved 30 s on (the page's own reload: the hour
  being written is read again, the rest reused): wall and CPU of that one request;
- ``alone``: a request whose blocks are all fresh;
- ``compute``: ``coverage.compute`` of the day over every camera (what the first read costs), last,
  once the page figures are taken.

argv: state dir, camera ids (comma-separated), first pages, repeats.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

WINDOW = 86400.0


class Clock:
    """The route's monotonic clock, moved on by the benchmark (a refresh without waiting 30 s)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def complete(page: Any, ids: list[str]) -> bool:
    from mirror_supervisor.web import blocks

    now = time.time()
    return bool(page.stores) and all(not store.stale(blocks.starts(now - WINDOW, now), ids, page.clock(),
                                                     since=now - WINDOW) for store in page.stores.values())


def first_page(state: Path, ids: list[str]) -> tuple[dict[str, Any], Any]:
    """A new route asked until it returns the whole day; the route, for the refreshes after it."""
    from mirror_supervisor.web import route

    page = route.StatusPage(state, host="bench", clock=Clock())
    began, cpu_began, asked = time.monotonic(), cpu(), 0
    while True:
        response = page("window=24h")
        asked += 1
        if complete(page, ids):
            break
        page.pages.clear()
    return {"wall_s": time.monotonic() - began, "cpu_s": cpu() - cpu_began, "requests": asked,
            "bytes": len(response.body), "gaps": response.body.count(b'data-kind="gap"')}, page


def refreshes(page: Any, ids: list[str], repeats: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"refresh_wall_s": [], "refresh_cpu_s": [], "alone_s": []}
    for _ in range(repeats):
        page.clock.offset += 30.0  # the page's reload: the hour being written is stale, the rest is not
        page.pages.clear()
        began, cpu_began = time.monotonic(), cpu()
        page("window=24h")
        out["refresh_wall_s"].append(time.monotonic() - began)
        out["refresh_cpu_s"].append(cpu() - cpu_began)
        assert complete(page, ids), "a refresh left blocks unread"
        page.pages.clear()
        began = time.monotonic()
        page("window=24h")
        out["alone_s"].append(time.monotonic() - began)
    return out


def compute_day(mirror: Path, ids: list[str], repeats: int) -> dict[str, list[float]]:
    from mirror_supervisor.footage import coverage

    out: dict[str, list[float]] = {"wall_s": [], "cpu_s": []}
    for _ in range(repeats):
        now = time.time()
        began, cpu_began = time.monotonic(), time.process_time()
        coverage.compute(mirror, now - WINDOW, now, cameras=ids, now=now, pool=False, write_index=False)
        out["wall_s"].append(time.monotonic() - began)
        out["cpu_s"].append(time.process_time() - cpu_began)
    return out


def listener_modules() -> None:
    """What the listener has imported when it forks a reader: it is forked from the master (the
    reader imports the coverage code itself)."""
    import mirror_supervisor.cli  # noqa: F401
    import mirror_supervisor.master.master  # noqa: F401
    import mirror_supervisor.metrics.children  # noqa: F401


def main() -> int:
    state, ids, firsts, repeats = Path(sys.argv[1]), sys.argv[2].split(","), int(sys.argv[3]), int(sys.argv[4])
    mirror = Path(json.loads((state / "status.json").read_text())["master"]["mirror_dir"])
    listener_modules()
    assert "mirror_supervisor.footage.coverage" not in sys.modules
    result: dict[str, Any] = {"first": []}
    page = None
    for _ in range(firsts):
        taken, page = first_page(state, ids)
        result["first"].append(taken)
        gc.collect()
    result.update(refreshes(page, ids, repeats))
    result["compute"] = compute_day(mirror, ids, max(3, repeats // 3))
    import mirror_supervisor

    result["package"] = str(Path(mirror_supervisor.__file__).parent)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
