"""The master's view of its peers: up or down, since when, and what each last reported.

Fed from the peer watcher's file (:mod:`.watcher`), read by the master without blocking (a small
file in its own state dir). A peer is **down** once it has not answered well (:func:`.health.judge`)
for ``--peer-timeout`` seconds, measured on this host's monotonic clock from the later of its last
good answer and this master's start; otherwise it is **up**. So a peer not heard from yet counts
as up for the first ``--peer-timeout`` seconds after a start: a host that restarts records its own
share at once instead of every camera, and nothing a peer says about time is ever compared with
ours. A watcher that stops writing leaves every peer's last good answer where it was, so its
peers go down: the error is towards recording more, never less.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..plumbing import logs


@dataclass
class Peer:
    index: int
    address: str
    up: bool = True
    heard: bool = False  # answered well at least once since this master started
    since: float = 0.0  # wall-clock time of the last change of ``up`` (or of our start), ours, for people
    good_at: float | None = None  # monotonic, this host's clock
    error: str | None = None
    recording: frozenset[str] = field(default_factory=frozenset)

    @property
    def state(self) -> str:
        return "up" if self.up and self.heard else "unknown" if self.up else "down"


class Membership:
    def __init__(self, me: int, addresses: list[str], timeout: float, now: float, wall: float) -> None:
        self.me, self.timeout, self.started = me, timeout, now
        self.peers = {i: Peer(i, address, since=wall) for i, address in enumerate(addresses) if i != me}
        self.log = logs.master()
        self.watcher_now: float | None = None  # the watcher's clock at its last write (same host)

    @property
    def up(self) -> frozenset[int]:
        return frozenset([self.me, *(i for i, peer in self.peers.items() if peer.up)])

    @property
    def complete(self) -> dict[int, frozenset[str]]:
        return {i: peer.recording for i, peer in self.peers.items() if peer.up}

    def read(self, path: Path, watcher_pid: int | None) -> dict[str, Any] | None:
        """The watcher's file when it is this watcher's; None otherwise (missing, torn, a dead
        watcher's, an earlier master's)."""
        try:
            seen = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(seen, dict) or seen.get("pid") != watcher_pid or not isinstance(seen.get("peers"), dict):
            return None
        return seen

    def take(self, seen: dict[str, Any] | None, now: float, wall: float) -> bool:
        """Fold in what the watcher saw, then judge every peer at ``now`` (monotonic). True when
        the up set or a live peer's reported cameras changed."""
        changed = False
        if seen is not None:
            if isinstance(seen.get("now"), int | float):
                self.watcher_now = float(seen["now"])
            for key, answer in seen["peers"].items():
                peer = self.peers.get(int(key)) if str(key).isdigit() else None
                if peer is None or not isinstance(answer, dict):
                    continue
                good_at, recording = answer.get("good_at"), answer.get("recording")
                if isinstance(good_at, int | float) and (peer.good_at is None or good_at > peer.good_at):
                    peer.good_at, peer.heard = float(good_at), True
                    found = frozenset(cid for cid in recording if isinstance(cid, str)) \
                        if isinstance(recording, list) else frozenset()
                    if found != peer.recording:
                        peer.recording, changed = found, changed or peer.up
                error = answer.get("error")
                peer.error = error[:200] if isinstance(error, str) else None
        for peer in self.peers.values():
            last = max(self.started, peer.good_at or self.started)
            up = now - last <= self.timeout
            if up != peer.up:
                changed = True
                peer.up, peer.since = up, wall
                if up:
                    self.log.info("peer host %d (%s) is up again", peer.index, peer.address)
                else:
                    self.log.warning("peer host %d (%s) is down: no good answer for %.0fs%s; the next hosts in line "
                                     "record its cameras", peer.index, peer.address, now - last,
                                     f" (last: {peer.error})" if peer.error else "")
        return changed

    def status(self) -> list[dict[str, Any]]:
        return [{"host": peer.index, "address": peer.address, "state": peer.state, "since": peer.since,
                 "error": peer.error, "recording": len(peer.recording)} for peer in self.peers.values()]
