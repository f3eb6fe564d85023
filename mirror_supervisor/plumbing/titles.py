"""Process titles: what ``ps -eo pid,args`` shows, built and recognised here and nowhere else.

Titles are part of the interface: operators grep for them, ``status``/``stop`` recognise the
running master by its title, and the leftover-ffmpeg scan recognises a live worker by its
parent's title. A title never holds a URL, host, user name or password: only the camera id
(a plain name), the generation and states.
"""

from __future__ import annotations

from collections.abc import Mapping

PREFIX = "mirror-supervisor: "
MASTER = PREFIX + "master"
WORKER = PREFIX + "worker "
PRUNE = PREFIX + "prune"
VOLUME_PROBE = PREFIX + "volume probe"
METRICS = PREFIX + "metrics "
COVERAGE = PREFIX + "coverage"
TIMELINES = PREFIX + "timelines"  # the status page's reader, a child of the listener (web/reader.py)
INDEX_WRITER = PREFIX + "index writer"



def master(cameras: int, states: Mapping[str, int] | None = None, db_error: bool = False,
           volume_hung: bool = False, disabled: bool = False) -> str:
    """``mirror-supervisor: master cameras=3 recording=2 backoff=1`` plus any trouble."""
    title = f"{MASTER} cameras={cameras}"
    if states:
        title += "".join(f" {state}={states[state]}" for state in sorted(states))
    if db_error:
        title += " db=error"
    if volume_hung:
        title += " volume=not-responding"
    if disabled:
        title += " disabled"
    return title


def worker(camera_id: str, generation: int, state: str) -> str:
    return f"{WORKER}{camera_id} gen={generation} {state}"


def metrics(host: str, port: int) -> str:
    """The HTTP child serving ``/metrics``: ``mirror-supervisor: metrics 127.0.0.1:9101``."""
    return f"{METRICS}{host}:{port}"


def is_master(args: str) -> bool:
    return args.startswith(MASTER)


def is_worker(args: str) -> bool:
    return args.startswith(WORKER)
