"""Who records what when every host is up: rendezvous (highest-random-weight) hashing.

For a camera id, every host number 0..N-1 gets a weight from a stable hash of (camera id, host
number); the hosts in order of falling weight are the camera's line. The first K of the line
record it. Every host computes the same line from the same camera id, with no state shared, and
adding host N moves only the cameras for which the new host's weight lands in the first K (about
K/(N+1) of them, one assignment each); the order of the old hosts among themselves never changes.

The hash is BLAKE2b (stable across processes, versions and machines, unlike Python's ``hash()``,
which is salted per process). Pure: no clock, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(camera_id: str, host: int) -> int:
    """The camera's weight on ``host``: 64 bits of BLAKE2b over the id and the host number."""
    data = camera_id.encode("utf-8", "surrogateescape") + b"\x00" + str(host).encode("ascii")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8, person=b"ms-rank-v1").digest(), "big")


def line(camera_id: str, hosts: int) -> tuple[int, ...]:
    """Hosts 0..``hosts``-1 in the camera's order: the highest weight first (ties: lower number)."""
    return tuple(sorted(range(hosts), key=lambda host: (-weight(camera_id, host), host)))


def owners(camera_id: str, hosts: int, copies: int) -> tuple[int, ...]:
    """The hosts that record the camera while all are up: the first ``copies`` of its line."""
    return line(camera_id, hosts)[:copies]


class Lines:
    """Each camera's line, computed once per id (ids change rarely; hashing all of them every
    pass would cost the master tens of milliseconds at 10,000 cameras)."""

    def __init__(self, hosts: int) -> None:
        self.hosts = hosts
        self._lines: dict[str, tuple[int, ...]] = {}

    def __call__(self, camera_id: str) -> tuple[int, ...]:
        found = self._lines.get(camera_id)
        if found is None:
            found = self._lines[camera_id] = line(camera_id, self.hosts)
        return found

    def forget_others(self, camera_ids: Iterable[str]) -> None:
        """Drop the lines of ids no longer in the table (a table that churns cannot grow this)."""
        keep = set(camera_ids)
        if len(self._lines) > 2 * len(keep) + 64:
            self._lines = {cid: found for cid, found in self._lines.items() if cid in keep}


def live_line(full: tuple[int, ...], up: frozenset[int] | set[int]) -> tuple[int, ...]:
    """The camera's line over the hosts that are up, in the same order."""
    return tuple(host for host in full if host in up)
