"""What ``check``, ``status`` and the metrics show about the cluster.

``check`` names, for every camera, the hosts that record it while all are up and whether this
host is one; ``status`` shows this host's number, N, K and its peers' state from status.json's
``cluster`` section; the metrics say per camera whether this host records it and as which copy,
per peer whether it is up and since when, and how many cameras have fewer than K live copies as
this host sees them (README, "Several mirror hosts").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from .ranking import owners


def _hosts(hosts: list[int] | tuple[int, ...]) -> str:
    names = [str(host) for host in hosts]
    if len(names) == 1:
        return f"host {names[0]}"
    return "hosts " + ", ".join(names[:-1]) + " and " + names[-1]


def check_verdict(settings: Any, camera_id: str) -> str | None:
    """``check``'s words for a mirrored camera under ``--shard`` (None without it)."""
    if settings.shard is None:
        return None
    me, hosts = settings.shard
    chosen = owners(camera_id, hosts, settings.copies)
    if me in chosen:
        others = [host for host in chosen if host != me]
        return f"mirrored here, copy {chosen.index(me) + 1} of {settings.copies}" + \
            (f" (also {_hosts(others)})" if others else "")
    return f"mirrored by {_hosts(chosen)}, not here"


def status_lines(section: dict[str, Any] | None, now: float | None = None) -> list[str]:
    """``status``'s lines about the cluster (none without ``--shard``)."""
    if not isinstance(section, dict):
        return []
    now = time.time() if now is None else now
    copies = f"{section.get('copies')} cop{'y' if section.get('copies') == 1 else 'ies'}"
    lines = [f"cluster: host {section.get('host')} of {section.get('hosts')} (0-based), {copies}; "
             f"recording {section.get('recording')} cameras here ({section.get('extra')} extra copies being handed back); "
             f"cameras below {copies} as seen here: {section.get('below_copies')}"]
    if not section.get("failover"):
        lines.append("cluster: no --peers: fixed shares, no failover")
    for peer in section.get("peers") or []:
        since = peer.get("since")
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since)) if isinstance(since, int | float) else "?"
        text = f"peer host {peer.get('host')} ({peer.get('address')}): {peer.get('state')} since {when}"
        if peer.get("state") == "up":
            text += f", {peer.get('recording')} cameras with a complete segment"
        elif peer.get("error"):
            text += f" (last answer: {peer['error']})"
        lines.append(text)
    return lines


def metric_families(node: Any, prefix: str) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    info = GaugeMetricFamily(prefix + "cluster_info", "this host's number (0-based), the number of hosts and of copies",
                             labels=["host", "hosts", "copies"])
    info.add_metric([str(node.me), str(node.hosts), str(node.copies)], 1.0)
    yield info
    recorded = GaugeMetricFamily(prefix + "cluster_camera_recorded_here", "1 when this host records the camera (as one "
                                 "of its K copies or as an extra copy being handed back), else 0", labels=["camera"])
    copy = GaugeMetricFamily(prefix + "cluster_camera_copy", "which copy of the camera this host records: 1..K by its "
                             "place among the live hosts in the camera's line, 0 for an extra copy being handed back",
                             labels=["camera"])
    cameras = sorted(node.full.cameras) if node.full is not None else []
    for cid in cameras:
        role = node.plan.record.get(cid)
        recorded.add_metric([cid], 0.0 if role is None else 1.0)
        if role is not None:
            copy.add_metric([cid], float(role.copy))
    yield from (recorded, copy)
    up = GaugeMetricFamily(prefix + "cluster_peer_up", "1 while the peer answers well (a healthy master of the same "
                           "cluster), 0 once it has not for --peer-timeout", labels=["peer", "address"])
    since = GaugeMetricFamily(prefix + "cluster_peer_state_since_timestamp_seconds", "when the peer's up/down state "
                              "last changed (or this master started), by this host's clock", labels=["peer"])
    for peer in node.membership.peers.values() if node.peers else []:
        up.add_metric([str(peer.index), peer.address], 1.0 if peer.up else 0.0)
        since.add_metric([str(peer.index)], peer.since)
    yield from (up, since)
    yield GaugeMetricFamily(prefix + "cluster_cameras_below_copies", "cameras with fewer than K live copies as this "
                            "host sees them (a copy: a live host recording it with a complete segment)",
                            value=float(node.below()))
    yield GaugeMetricFamily(prefix + "cluster_extra_copies", "cameras this host records beyond its share, until their "
                            "hosts report a complete segment", value=float(sum(1 for r in node.plan.record.values()
                                                                              if r.extra)))
