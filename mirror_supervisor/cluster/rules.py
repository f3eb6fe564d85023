"""Who records what, given who is up and which cameras each host reports complete. Pure.

The inputs are this host's number, K, the hosts that are up as this host sees them (itself
always), the cameras each peer last reported recording with a complete segment, and the cameras
this host recorded after the previous decision. The rules (docs/design.md, "Cluster"):

1. **Ranking over the live hosts.** A camera's *targets* are the first K hosts of its line
   (:mod:`.ranking`) that are up. A target records the camera, so when an owner goes down the
   next live host in the line starts it: failover needs nobody's permission.
2. **Make before break.** A host that recorded a camera and is no longer among its targets (the
   owner it stood in for is back, or another host came up ahead of it) keeps recording it until
   every target reports it recording with a complete segment; only then is its copy released.
   Until then it is an *extra* copy, and we say for whom it waits. There is no time limit on
   the wait: a target that never manages to record the camera would otherwise leave it one copy
   short for good; the wait is only logged (``node.py``) and shown.
3. **Unclear means record.** Nothing here stops a camera because a host *might* be up: only a
   host seen up can be a target that takes a camera over, and only its report can release one.

Nothing is stopped that is still needed, and a camera that is unchanged keeps its worker: these
rules only ever add cameras to or remove cameras from the wanted set, never change one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .ranking import live_line


@dataclass(frozen=True)
class Role:
    """Why this host records a camera: as copy ``copy`` of K, or as an extra waiting for ``waiting``."""

    copy: int  # 1..K: its place among the live targets; 0: an extra copy
    waiting: tuple[int, ...] = ()  # an extra: the targets that do not report it complete yet

    @property
    def extra(self) -> bool:
        return self.copy == 0


@dataclass(frozen=True)
class Plan:
    record: dict[str, Role] = field(default_factory=dict)  # the cameras this host records, and why
    released: frozenset[str] = frozenset()  # recorded before, handed back now: every target confirmed
    targets: dict[str, tuple[int, ...]] = field(default_factory=dict)  # every camera's live targets


def plan(cameras: Iterable[str], me: int, copies: int, up: frozenset[int], lines: Callable[[str], tuple[int, ...]],
         complete: Mapping[int, frozenset[str]], held: frozenset[str]) -> Plan:
    """The cameras this host records now. ``complete`` maps a peer to the cameras it reported
    recording with a complete segment (only peers that are up count); ``held``: what this host
    recorded after the previous decision."""
    live = up | {me}
    record: dict[str, Role] = {}
    released: set[str] = set()
    targets: dict[str, tuple[int, ...]] = {}
    for cid in cameras:
        chosen = live_line(lines(cid), live)[:copies]
        targets[cid] = chosen
        if me in chosen:
            record[cid] = Role(chosen.index(me) + 1)
        elif cid in held:
            waiting = tuple(host for host in chosen if cid not in complete.get(host, frozenset()))
            if waiting:
                record[cid] = Role(0, waiting)
            else:
                released.add(cid)
    return Plan(record, frozenset(released), targets)


def copies_seen(cid: str, me: int, up: frozenset[int], mine: frozenset[str],
                complete: Mapping[int, frozenset[str]]) -> int:
    """How many live hosts record ``cid`` with a complete segment, as this host sees them."""
    count = 1 if cid in mine else 0
    return count + sum(1 for host in up if host != me and cid in complete.get(host, frozenset()))


def below(cameras: Iterable[str], copies: int, me: int, up: frozenset[int], mine: frozenset[str],
          complete: Mapping[int, frozenset[str]]) -> int:
    """The number of cameras with fewer than K live copies as this host sees them."""
    return sum(1 for cid in cameras if copies_seen(cid, me, up, mine, complete) < copies)
