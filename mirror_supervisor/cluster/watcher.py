"""The peer watcher: a child of the master that asks every peer for its health document.

One thread per peer asks ``GET /cluster/health`` every :data:`POLL_EVERY` seconds over a plain
socket with one deadline for the whole exchange (connect, send, read to the end, at most
:data:`.health.MAX_BODY` bytes), so a peer that hangs, drips or floods holds only its own thread,
and only until the deadline. The main thread writes what was seen, about twice a second,
atomically to ``<state_dir>/cluster-peers.json``:

```
{"pid": <watcher pid>, "now": <monotonic>, "peers": {"<host>": {"good_at": <monotonic> | null,
  "recording": [ids of the last good answer], "error": "<why the last answer was no good>" | null}}}
```

Times are this host's monotonic clock (the master reads the same clock): no peer's clock is ever
used. The master only reads that file (:mod:`.membership`); it never waits on a socket. The
watcher dies with the master (SIGKILL), and the master kills and replaces one whose file stops
moving.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ..plumbing import lifeline, logs, titles
from ..plumbing.files import STATUS_MODE, write_atomically
from .health import MAX_BODY, PATH, judge

FILE = "cluster-peers.json"
TITLE = titles.PREFIX + "peer watcher"
POLL_EVERY = 1.0
WRITE_EVERY = 0.5


def ask(host: str, port: int, timeout: float) -> tuple[int, bytes]:
    """One ``GET`` of the health document within ``timeout`` seconds in all: (status, body).
    OSError (refused, unreachable, timed out) or ValueError (not HTTP, too long) otherwise."""
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(f"GET {PATH} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = bytearray()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no complete answer in time")
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_BODY + 8192:
                raise ValueError("answer too long")
    head, sep, body = bytes(data).partition(b"\r\n\r\n")
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if not sep or len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ValueError("not an HTTP answer")
    return int(parts[1]), body


class _Peer:
    def __init__(self, index: int, host: str, port: int) -> None:
        self.index, self.host, self.port = index, host, port
        self.good_at: float | None = None
        self.recording: list[str] = []
        self.error: str | None = None


def _poll(peer: _Peer, hosts: int, copies: int, timeout: float, lock: threading.Lock) -> None:
    while True:
        started = time.monotonic()
        try:
            status, body = ask(peer.host, peer.port, timeout)
            found, why = judge(status, body, peer.index, hosts, copies)
        except Exception as exc:  # noqa: BLE001 - whatever a peer sends, this thread asks again
            found, why = None, (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)[:200]
        with lock:
            if found is not None:
                peer.good_at, peer.recording, peer.error = time.monotonic(), sorted(found), None
            else:
                peer.error = why
        time.sleep(max(0.0, started + POLL_EVERY - time.monotonic()))


def watch_main(peers: list[tuple[int, str, int]], hosts: int, copies: int, timeout: float, out: str,
               inherited_fds: tuple[int, ...], master_pid: int) -> int:
    """The child's body: poll ``peers`` ((host number, address, port), this host left out) for ever."""
    lifeline.become_helper(TITLE, inherited_fds, master_pid)
    lock = threading.Lock()
    watched = [_Peer(*peer) for peer in peers]
    for peer in watched:
        threading.Thread(target=_poll, args=(peer, hosts, copies, timeout, lock), daemon=True,
                         name=f"peer-{peer.index}").start()
    path = Path(out)
    while True:
        with lock:
            seen: dict[str, Any] = {str(p.index): {"good_at": p.good_at, "recording": p.recording, "error": p.error}
                                    for p in watched}
        try:
            write_atomically(path, json.dumps({"pid": os.getpid(), "now": time.monotonic(), "peers": seen}),
                             mode=STATUS_MODE)
        except OSError as exc:  # the master sees the file stop moving and replaces us
            logging.getLogger(logs.LOGGER_NAME).error("peer watcher cannot write %s: %s", path, exc.strerror)
        time.sleep(WRITE_EVERY)
