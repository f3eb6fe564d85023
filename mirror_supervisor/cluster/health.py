"""The health document: what a host tells its peers, and how they judge an answer.

``GET /cluster/health`` on a host's ``--metrics-listen`` address answers JSON:

```
{"kind": "mirror-supervisor-health", "version": 1, "host": I, "hosts": N, "copies": K,
 "loop": "ok" | "failing" | "stale", "recording": [camera ids], "boot": "<random id>"}
```

``recording`` holds the cameras this host records now with a complete segment
(:mod:`.complete`). ``loop`` says whether the master's main loop is healthy: ``ok`` when its last
pass completed without an unexpected error and it wrote the document less than
:data:`STALE_AFTER` seconds ago, ``failing`` or ``stale`` otherwise (then the status is 503).

The master never serves a socket: it writes the document to ``<state_dir>/cluster-health.json``
(atomically, about every second, with its own monotonic time) and the listener child serves it
(:class:`HealthRoute`), judging its age with the same host's monotonic clock. Peers never compare
a time of ours with theirs: they judge an answer by when *they* received it.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..plumbing.files import STATUS_MODE, write_atomically
from ..plumbing.http_listener import FileVersion, Response, Route

KIND = "mirror-supervisor-health"
VERSION = 1
PATH = "/cluster/health"
FILE = "cluster-health.json"  # in the state dir, written by the master
WRITE_EVERY = 1.0
STALE_AFTER = 5.0  # a document older than this: the master's loop is not going round
CONTENT_TYPE = "application/json"
MAX_BODY = 1 << 20  # what a peer reads of an answer at most (10,000 camera ids are ~200 KB)


class HealthWriter:
    """The master's side: the document in the state dir, rewritten about every second."""

    def __init__(self, state_dir: Path, host: int, hosts: int, copies: int) -> None:
        self.path = Path(state_dir) / FILE
        self.base = {"kind": KIND, "version": VERSION, "host": host, "hosts": hosts, "copies": copies,
                     "boot": secrets.token_hex(8)}
        self.next_write = 0.0
        self.problem_logged = False

    def due(self, now: float) -> bool:
        return now >= self.next_write

    def write(self, now: float, healthy: bool, recording: Iterable[str]) -> None:
        """``now``: the master's monotonic clock (the listener child reads the same clock)."""
        self.next_write = now + WRITE_EVERY
        doc = dict(self.base, healthy=healthy, written=now, recording=sorted(recording))
        write_atomically(self.path, json.dumps(doc, separators=(",", ":")), mode=STATUS_MODE)

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass


class HealthRoute:
    """The listener child's side: the document as the master last wrote it, judged by its age."""

    def __init__(self, path: Path, clock: Any = time.monotonic) -> None:
        self.path, self.clock = path, clock
        self._file = FileVersion(path)
        self._doc: dict[str, Any] | None = None

    def __call__(self, query: str = "") -> Response:
        try:
            content, changed = self._file.read()
            if changed or self._doc is None:
                self._doc = None
                doc = json.loads(content)
                if not isinstance(doc, dict):
                    raise ValueError("not an object")
                self._doc = doc
        except FileNotFoundError:  # without --peers (no cluster), or before the master's first write
            return Response(404, b"no health document: this master runs without --peers, or has not written one yet\n")
        except (OSError, ValueError):
            return Response(503, b'{"kind":"mirror-supervisor-health","loop":"unreadable"}\n', CONTENT_TYPE)
        doc = dict(self._doc)
        written, healthy = doc.pop("written", None), doc.pop("healthy", False)
        age = self.clock() - written if isinstance(written, int | float) else float("inf")
        doc["loop"] = "stale" if age > STALE_AFTER else "ok" if healthy is True else "failing"
        doc["age"] = round(age, 1) if age != float("inf") else None
        body = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
        return Response(200 if doc["loop"] == "ok" else 503, body, CONTENT_TYPE)


def routes(state_dir: Path) -> dict[str, Route]:
    """What the listener child adds to its routes table."""
    return {PATH: HealthRoute(Path(state_dir) / FILE)}


def judge(status: int, body: bytes, host: int, hosts: int, copies: int) -> tuple[frozenset[str] | None, str]:
    """A peer's answer: (its complete cameras, "") when it is a healthy host ``host`` of the same
    cluster; (None, why not) otherwise. A host that answers but whose loop is not healthy, or
    that counts hosts or copies differently (its table would differ from ours), is no good answer."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None, f"HTTP {status}, not JSON"
    if not isinstance(doc, dict) or doc.get("kind") != KIND or doc.get("version") != VERSION:
        return None, f"HTTP {status}, not a mirror-supervisor health document"
    if doc.get("loop") != "ok" or status != 200:
        return None, f"HTTP {status}, its master's loop is {str(doc.get('loop'))[:20]}"
    if doc.get("host") != host:
        return None, f"answers as host {str(doc.get('host'))[:10]}, not {host}: --peers is out of order"
    if doc.get("hosts") != hosts or doc.get("copies") != copies:
        return None, (f"runs with --shard .../{str(doc.get('hosts'))[:10]} --copies {str(doc.get('copies'))[:10]}, "
                      f"we with .../{hosts} --copies {copies}")
    recording = doc.get("recording")
    if not isinstance(recording, list) or not all(isinstance(cid, str) for cid in recording):
        return None, "its recording list is not a list of camera ids"
    return frozenset(recording), ""
