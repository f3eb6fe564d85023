"""The one object the master talks to about the cluster (README, "Several mirror hosts").

The master hands it the wanted set the camera source answered (:meth:`Node.select`) and, every
pass, its slots (:meth:`Node.tick`); it answers the wanted set this host records, a subset of
the first, as a new object only when that subset changed, so the master's reconcile by recording
key does the rest: a camera that joins is started, one that leaves is stopped, every other worker
is left alone (a membership change never restarts one). Without ``--shard`` it passes the wanted
set through untouched and does nothing else.

Each pass it also keeps the peer watcher child running (:mod:`.watcher`; replaced when it dies or
its file stops moving), reads what it saw (:mod:`.membership`), and writes the health document
the listener child serves (:mod:`.health`). No step waits on anything but local files.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..cluster import health, rules, watcher
from ..cluster.membership import Membership
from ..cluster.ranking import Lines
from ..plumbing import logs
from ..plumbing.helper_child import HelperChild
from ..worker import backoff
from .complete_segments import CompleteSegments
from .states import SlotState
from .wanted import Wanted

READ_EVERY = 0.5  # the watcher's file
WATCHER_STALE = 10.0  # a watcher whose file has not moved for this long is killed and replaced
HANDBACK_WARN = 300.0  # an extra copy still waiting after this long is named in the log (once)
Fork = Callable[[Callable[[], int]], int]


class Node:
    def __init__(self, settings: Any, system: Any, slots: Mapping[str, Any]) -> None:
        """``system``: the master's clocks and fork (:class:`..system.System`); ``slots``: the
        master's own dict of camera slots (read, never changed)."""
        self.system, self.slots = system, slots
        now, wall = system.monotonic(), system.time()
        self.enabled = settings.shard is not None
        self.me: int
        self.hosts: int
        self.me, self.hosts = settings.shard or (0, 1)
        self.copies, self.log = settings.copies, logs.master()
        self.lines = Lines(self.hosts)
        self.state_dir = Path(settings.state_dir)
        self.peers: list[tuple[str, int]] | None = list(settings.peers) if settings.peers else None
        addresses = [f"{host}:{port}" for host, port in self.peers] if self.peers else [str(i) for i in range(self.hosts)]
        self.membership = Membership(self.me, addresses, settings.peer_timeout, now, wall)
        self.ask_timeout = min(2.0, max(0.2, settings.peer_timeout / 3))
        self.health = health.HealthWriter(self.state_dir, self.me, self.hosts, self.copies) if self.peers else None
        if self.health is not None:
            self.health.remove()  # an earlier master's document, fresh enough to pass for ours: never served
        self.complete = CompleteSegments()
        self.full: Wanted | None = None  # the source's last answer
        self.picked: Wanted | None = None  # what this host records, as last handed to the master
        self.plan = rules.Plan()
        self.mine: frozenset[str] = frozenset()  # cameras recorded here with a complete segment
        self.healthy = True
        self.watcher = HelperChild("peer watcher", backoff.worker_respawn_delay, backoff.SPAWN_FAILED_DELAY, self.log)
        self.next_read = 0.0
        self._extra_since: dict[str, float] = {}
        self._warned: set[str] = set()

    watcher_pid = property(lambda self: self.watcher.pid)  # the peer watcher's, while it runs

    # -- the wanted set ------------------------------------------------------------------------

    def select(self, full: Wanted | None) -> Wanted | None:
        """The source's answer (None: no news) filtered to this host's cameras: the very same
        object as last time when that did not change (the master then leaves every slot alone),
        also while the source has no news and only the peers changed something."""
        if not self.enabled:
            return full
        if full is not None and full is not self.full:  # the peers' news is taken by tick()
            self.full = full
            self._replan(self.system.monotonic())
        return self.picked

    def _replan(self, now: float) -> None:
        """Decide again; :attr:`picked` becomes a new object only when this host's share changed."""
        full = self.full
        if full is None:
            return
        held = frozenset(self.plan.record)
        plan = rules.plan(full.cameras, self.me, self.copies, self.membership.up, self.lines,
                          self.membership.complete, held)
        self.lines.forget_others(full.cameras)
        self._tell(plan, held, now)
        self.plan = plan
        keys = {cid: full.keys[cid] for cid in plan.record}
        picked = self.picked
        if picked is not None and picked.rows is full.rows and picked.keys == keys and picked.refused == full.refused:
            return
        self.picked = Wanted({cid: full.cameras[cid] for cid in plan.record}, keys, full.refused, full.rows)

    def _tell(self, plan: rules.Plan, held: frozenset[str], now: float) -> None:
        """One log line per kind of change (not one per camera: a failover moves hundreds)."""
        new = sorted(set(plan.record) - held)
        extras = sorted(cid for cid, role in plan.record.items() if role.extra and not self.plan.record.get(cid, role).extra)
        if new and self.picked is not None:  # not at the first selection: that is the plain start
            self.log.info("cluster: now recording %d more cameras (hosts up: %s): %s", len(new),
                          _hosts(self.membership.up), _some(new))
        if extras:
            self.log.info("cluster: %d cameras have their first hosts back; recording them on until those hosts report "
                          "a complete segment: %s", len(extras), _some(extras))
        if plan.released:
            self.log.info("cluster: handing back %d cameras, recorded with a complete segment by their hosts: %s",
                          len(plan.released), _some(sorted(plan.released)))
        for cid, role in plan.record.items():
            if role.extra:
                self._extra_since.setdefault(cid, now)
        for cid in [cid for cid in self._extra_since if cid not in plan.record or not plan.record[cid].extra]:
            del self._extra_since[cid]
            self._warned.discard(cid)

    def _warn_waits(self, now: float) -> None:
        """An extra copy whose hosts have not confirmed it for :data:`HANDBACK_WARN`: named once."""
        for cid, since in self._extra_since.items():
            role = self.plan.record.get(cid)
            if role is not None and now - since >= HANDBACK_WARN and cid not in self._warned:
                self._warned.add(cid)
                self.log.warning("cluster: camera %s: host(s) %s have not reported a complete segment in %.0fs; "
                                 "keeping this copy (an extra copy costs disk, a missing one loses footage)", cid,
                                 _hosts(role.waiting), now - since)

    # -- every pass ----------------------------------------------------------------------------

    def took_report(self, report: Mapping[str, Any]) -> None:
        if self.enabled:
            self.complete.report(report)

    def tick(self, fds: tuple[int, ...]) -> bool:
        """Every pass: the watcher, the peers' state and the health document. True when
        membership changed what this host records (the master then asks :meth:`select`)."""
        if not self.enabled or self.peers is None:
            return False
        now, wall = self.system.monotonic(), self.system.time()
        self._keep_watcher(now, self.system.fork, fds)
        changed, before = False, self.picked
        if now >= self.next_read:
            self.next_read = now + READ_EVERY
            seen = self.membership.read(self.state_dir / watcher.FILE, self.watcher_pid)
            changed = self.membership.take(seen, now, wall)
            if changed:
                self._replan(now)
        if self.health is not None and (self.health.due(now) or changed):
            self._warn_waits(now)
            current = {cid: slot.worker.report if slot.worker is not None and slot.state is SlotState.RUNNING else None
                       for cid, slot in self.slots.items()}
            self.mine = self.complete.cameras(current)
            self.complete.forget_others(self.slots)
            try:
                self.health.write(now, self.healthy, self.mine)
                self.health.problem_logged = False
            except OSError as exc:
                if not self.health.problem_logged:
                    self.log.error("cannot write the health document %s: %s", self.health.path, exc.strerror)
                    self.health.problem_logged = True
        return self.picked is not before

    def pass_ended(self, healthy: bool) -> None:
        self.healthy = healthy

    def next_deadline(self) -> float | None:
        if not self.enabled or self.peers is None:
            return None
        moments = [self.next_read, self.health.next_write if self.health else float("inf")]
        if (due := self.watcher.next_deadline()) is not None:
            moments.append(due)
        return min(moments)

    # -- the watcher child ---------------------------------------------------------------------

    def _keep_watcher(self, now: float, fork: Fork, fds: tuple[int, ...]) -> None:
        if self.watcher.pid is not None:
            moved = self.membership.watcher_now
            if now - max(self.watcher.started, moved or 0.0) > WATCHER_STALE:
                self.log.error("peer watcher pid=%d has not reported for %.0fs; killing it", self.watcher.pid, WATCHER_STALE)
                self.system.kill(self.watcher.pid, signal.SIGKILL)
                self.watcher.started = now  # reaped later; not killed again meanwhile
            return
        if not self.watcher.due(now) or self.peers is None:
            return
        peers = [(i, host, port) for i, (host, port) in enumerate(self.peers) if i != self.me]
        out, master_pid, hosts, copies, timeout = str(self.state_dir / watcher.FILE), os.getpid(), self.hosts, \
            self.copies, self.ask_timeout
        self.watcher.start(now, fork, lambda: watcher.watch_main(peers, hosts, copies, timeout, out, fds, master_pid))

    def reaped(self, pid: int, code: int) -> bool:
        return self.watcher.reaped(pid, code, self.system.monotonic())

    def pids(self) -> set[int]:
        return self.watcher.pids()

    def remove_files(self) -> None:
        """At a clean stop: peers must not read a stale document as ours (the listener goes too)."""
        if self.health is not None:
            self.health.remove()
        try:
            os.unlink(self.state_dir / watcher.FILE)
        except OSError:
            pass

    # -- for people ----------------------------------------------------------------------------

    def role(self, cid: str) -> str:
        found = self.plan.record.get(cid)
        if found is None:
            return "not here"
        if found.extra:
            return f"extra copy until host(s) {_hosts(found.waiting)} report a complete segment"
        return f"copy {found.copy} of {self.copies}"

    def below(self) -> int:
        cameras = self.full.cameras if self.full is not None else {}
        return rules.below(cameras, self.copies, self.me, self.membership.up, self.mine, self.membership.complete)

    def metric_families(self, prefix: str) -> Iterable[Any]:
        """The cluster's families for the metrics (nothing without ``--shard``)."""
        if not self.enabled:
            return []
        from ..cluster.present import metric_families

        return metric_families(self, prefix)

    def status(self) -> dict[str, Any]:
        """status.json's ``cluster`` section (nothing without ``--shard``)."""
        if not self.enabled:
            return {}
        return {"cluster": {"host": self.me, "hosts": self.hosts, "copies": self.copies, "failover": self.peers is not None,
                "peers": self.membership.status() if self.peers else [], "below_copies": self.below(),
                "recording": len(self.plan.record), "extra": sum(1 for r in self.plan.record.values() if r.extra),
                "cameras": {cid: self.role(cid) for cid in sorted(self.plan.record)}}}


def _hosts(hosts: Iterable[int]) -> str:
    return ", ".join(str(host) for host in sorted(hosts)) or "none"


def _some(ids: list[str], limit: int = 10) -> str:
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")

