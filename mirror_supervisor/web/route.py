"""``GET /`` of the listener child: the status page, built from the state dir and the index.

``/?window=1h|24h|7d&camera=ID&primary=1``: the window (default 24 h; anything else is a 400
naming the accepted values), a camera filter (repeatable; a text that is no camera id is a 400),
and the comparison with the primary (only when a primary directory is known). Other parameters
are ignored.

The listener serves every client from one thread, so this route must never wait on the mirror
volume and never for long: status.json and the probe's answer are small files in the local state
dir; timelines come from blocks that a reading child (:mod:`.reader`) fills, and the route waits
for that child :data:`WAIT` seconds at most. A page it could not finish shows what is read so far
(the rest as "not read yet") and reloads itself sooner. A built page is kept
:data:`PAGE_TTL` seconds per (window, filter, comparison), so many viewers cost one build.
"""

from __future__ import annotations

import os
import socket
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cameras.camera import is_safe_id
from ..plumbing import logs
from ..plumbing.http_listener import TEXT, FileVersion, Response, Route
from ..plumbing.masking import mask
from ..plumbing.status_file import STATUS_FILE
from . import blocks, page, state
from .document import CONTENT_TYPE, HEADERS, document
from .reader import Job, Reader, prepare

PATH = "/"
WAIT = 1.0  # seconds the listener's thread waits for the timelines of one page, at most
PAGE_TTL = 5.0
MAX_PAGES = 32  # pages kept: every filter is one more
MAX_FIELDS = 64
Asked = tuple[str, tuple[str, ...], bool]  # window, camera filter, with the primary


def parse(query: str) -> Asked | str:
    """What the query asks for, or why it is refused (the text of a 400)."""
    try:
        fields = urllib.parse.parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        return f"too many query parameters (at most {MAX_FIELDS})"
    window, cameras, primary = page.DEFAULT_WINDOW, [], False
    for name, value in fields:
        if name == "window":
            if value not in page.WINDOWS:
                return "unknown window: use window=1h, window=24h or window=7d"
            window = value
        elif name == "camera" and value:
            if not is_safe_id(value):
                return "camera: not a camera id"
            cameras.append(value)
        elif name == "primary":
            primary = value not in ("", "0")
    return window, tuple(dict.fromkeys(cameras)), primary


class StatusPage:
    """The route: one per listener child, holding the blocks read so far and the pages built."""

    def __init__(self, state_dir: Path, primary: str | None = None, host: str | None = None,
                 reader: Reader | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.status = FileVersion(Path(state_dir) / STATUS_FILE)
        self.probe = FileVersion(Path(state_dir) / state.PROBE_FILE)
        self.primary = primary
        self.host = host or socket.gethostname()
        self.reader = reader or Reader()
        self.clock, self.wall = clock, wall
        self.stores: dict[tuple[str, str | None], blocks.Store] = {}
        self.feeding: tuple[str, str | None] | None = None  # the store the running reader fills
        self.pages: dict[Asked, tuple[float, Response]] = {}
        self.log = logs.master()
        self.failure_logged: str | None = None
        prepare()  # (in the listener child: the master never makes a route)

    def __call__(self, query: str = "") -> Response:
        asked = parse(query)
        if isinstance(asked, str):
            return Response(400, asked.encode() + b"\n", TEXT, HEADERS)
        self._take(self.reader.collect())
        mono = self.clock()
        kept = self.pages.get(asked)
        if kept is not None and mono - kept[0] < PAGE_TTL:
            return kept[1]
        response = self._build(asked)
        if response.status == 200:
            self.pages[asked] = (self.clock(), response)
            while len(self.pages) > MAX_PAGES:
                del self.pages[min(self.pages, key=lambda key: self.pages[key][0])]
        return response

    def _build(self, asked: Asked) -> Response:
        window, cameras, compare = asked
        status, status_time = state.read_json(self.status)
        if status is None:
            body = document("mirror-supervisor", "<p>The master has not written its status yet (starting?).</p>",
                            refresh=page.REFRESH_READING)
            return Response(503, body.encode(), CONTENT_TYPE, HEADERS)
        probe, probe_time = state.read_json(self.probe)
        now = self.wall()
        master = status["master"] if isinstance(status.get("master"), dict) else {}
        mirror_dir = str(master.get("mirror_dir") or "")
        notes: list[str] = []
        if compare and not self.primary:
            notes.append("no primary directory to compare with: the master runs without HELDAR_RECORDINGS_DIR")
        store = self._read(mirror_dir, self.primary if compare else None, status, now - page.WINDOWS[window], now)
        rows = [row for row in state.rows(status, probe, now) if not cameras or row.id in cameras]
        missing = [cid for cid in cameras if cid not in {row.id for row in rows}]
        notes += [f"no camera {cid} in the master's status" for cid in missing]
        if self.reader.failure:
            notes.append(mask(self.reader.failure))
        view = page.View(self.host, state.header(status, probe, probe_time, status_time, now), window, now,
                         cameras=cameras, primary=store is not None and store.primary is not None,
                         primary_available=bool(self.primary), notes=notes)
        for row in rows:
            if store is None or not is_safe_id(row.id):
                view.rows.append(page.Row(row, None))
            else:
                drawn, problem = store.timeline(row.id, now - page.WINDOWS[window], now)
                view.rows.append(page.Row(row, drawn, problem))
        return Response(200, page.render(view).encode(), CONTENT_TYPE, HEADERS)

    def _read(self, mirror_dir: str, primary: str | None, status: dict[str, Any], start: float,
              now: float) -> blocks.Store | None:
        """The store for this page, its stale blocks given to the reader (when it is free), and
        up to :data:`WAIT` seconds for its answers."""
        if not mirror_dir:
            return None
        key = (mirror_dir, primary)
        store = self.stores.setdefault(key, blocks.Store(mirror_dir, primary))
        for other in [k for k in self.stores if k[0] != mirror_dir and k != self.feeding]:
            del self.stores[other]  # a reload moved the mirror: its old blocks say nothing of the new one
        ids = [str(c.get("id")) for c in status.get("cameras") or [] if isinstance(c, dict)]
        safe = tuple(cid for cid in ids if is_safe_id(cid))
        stale = store.stale(blocks.starts(start, now), safe, self.clock(), since=start)
        if stale and safe and self.reader.start(Job(mirror_dir, primary, tuple(stale), safe, since=start)):
            self.feeding = key
        if self.reader.running:
            self._take(self.reader.wait(WAIT))
        store.forget(now)
        return store

    def _take(self, answers: list[dict[str, Any]]) -> None:
        store = self.stores.get(self.feeding) if self.feeding is not None else None
        mono = self.clock()
        for answer in answers:
            if store is not None:
                store.take(answer, mono)
        failure = self.reader.failure
        if failure != self.failure_logged:
            if failure:
                self.log.warning("status page: %s", failure)
            self.failure_logged = failure


def routes(state_dir: Path) -> dict[str, Route]:
    """What the listener child adds to its routes table: ``/``. The primary directory, for the
    comparison, is the one ``coverage --primary-dir`` defaults to: ``HELDAR_RECORDINGS_DIR``."""
    return {PATH: StatusPage(Path(state_dir), os.environ.get("HELDAR_RECORDINGS_DIR") or None)}
