"""The health document (cluster/health.py), the watcher's request (cluster/watcher.py) and the
master's view of its peers (cluster/membership.py): a healthy answer, a stale or failing loop, a
peer of another cluster, garbage, a server that never answers, and --peer-timeout on our clock."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from mirror_supervisor.cluster import health, watcher
from mirror_supervisor.cluster.membership import Membership
from mirror_supervisor.plumbing import http_listener


class Clock:
    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def write_doc(state: Path, clock: Clock, healthy: bool = True, host: int = 2) -> None:
    writer = health.HealthWriter(state, host, 3, 2)
    writer.write(clock.now, healthy, ["b", "a"])


def test_the_route_says_ok_only_for_a_fresh_document_of_a_healthy_loop(tmp_path):
    clock = Clock()
    route = health.HealthRoute(tmp_path / health.FILE, clock)
    assert route().status == 404, "nothing written (no --peers, or not yet)"
    write_doc(tmp_path, clock)
    answer = route()
    doc = json.loads(answer.body)
    assert answer.status == 200 and doc["loop"] == "ok" and doc["recording"] == ["a", "b"]
    assert "written" not in doc and "healthy" not in doc, "our monotonic clock is not shown to peers"
    assert health.judge(answer.status, answer.body, 2, 3, 2) == (frozenset({"a", "b"}), "")
    clock.now += health.STALE_AFTER + 1
    stale = route()
    assert stale.status == 503 and json.loads(stale.body)["loop"] == "stale"
    assert health.judge(stale.status, stale.body, 2, 3, 2)[0] is None
    write_doc(tmp_path, clock, healthy=False)
    failing = route()
    assert failing.status == 503 and json.loads(failing.body)["loop"] == "failing"


@pytest.mark.parametrize(("body", "why"), [
    (b"<html>", "not JSON"),
    (b'{"kind": "something else"}', "not a mirror-supervisor health document"),
    (b'{"kind": "mirror-supervisor-health", "version": 1, "loop": "ok", "host": 0, "hosts": 3, "copies": 2, '
     b'"recording": []}', "answers as host 0, not 2"),
    (b'{"kind": "mirror-supervisor-health", "version": 1, "loop": "ok", "host": 2, "hosts": 4, "copies": 2, '
     b'"recording": []}', "runs with --shard .../4"),
    (b'{"kind": "mirror-supervisor-health", "version": 1, "loop": "ok", "host": 2, "hosts": 3, "copies": 2, '
     b'"recording": [1]}', "not a list of camera ids"),
])
def test_garbage_and_other_clusters_are_no_good_answer(body, why):
    found, reason = health.judge(200, body, 2, 3, 2)
    assert found is None and why in reason


def serve(routes) -> tuple[int, threading.Thread]:
    server = http_listener.listen("127.0.0.1", 0)
    listener = http_listener.Listener(server, routes)
    thread = threading.Thread(target=listener.serve_forever, daemon=True)
    thread.start()
    return server.getsockname()[1], thread


def test_the_watcher_asks_a_real_listener_with_one_deadline(tmp_path):
    clock = Clock(time.monotonic())
    write_doc(tmp_path, clock)
    port, _ = serve(health.routes(tmp_path))
    status, body = watcher.ask("127.0.0.1", port, 2.0)
    assert status == 200 and health.judge(status, body, 2, 3, 2)[0] == frozenset({"a", "b"})
    # a peer that accepts and never answers is a time-out, not a hang
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    with pytest.raises(OSError):
        watcher.ask("127.0.0.1", silent.getsockname()[1], 0.5)
    silent.close()


def test_a_peer_is_down_after_peer_timeout_on_our_clock_and_up_at_its_next_good_answer():
    members = Membership(1, ["a:1", "b:1", "c:1"], 10.0, now=100.0, wall=1e9)
    assert members.up == {0, 1, 2} and members.peers[0].state == "unknown"
    seen = {"pid": 7, "now": 101.0, "peers": {"0": {"good_at": 101.0, "recording": ["x"], "error": None},
                                              "2": {"good_at": None, "recording": [], "error": "refused"}}}
    assert members.take(seen, 101.0, 1e9 + 1) is True, "host 0's cameras are news"
    assert members.peers[0].state == "up" and members.complete[0] == {"x"}
    assert members.take(None, 110.0, 1e9 + 10) is False, "host 2 not heard yet: up until 10 s after our start"
    assert members.take(None, 110.5, 1e9 + 10.5) is True and members.up == {0, 1}
    assert members.peers[2].state == "down" and members.peers[2].since == 1e9 + 10.5
    assert members.take(None, 111.5, 1e9 + 11.5) is True and members.up == {1}
    back = {"pid": 7, "now": 112.0, "peers": {"2": {"good_at": 112.0, "recording": [], "error": None}}}
    assert members.take(back, 112.0, 1e9 + 12) is True and members.up == {1, 2}


def test_the_master_reads_only_its_own_watchers_file(tmp_path):
    members = Membership(0, ["a:1", "b:1"], 10.0, now=0.0, wall=0.0)
    path = tmp_path / watcher.FILE
    path.write_text(json.dumps({"pid": 5, "now": 1.0, "peers": {}}))
    assert members.read(path, 6) is None and members.read(path, 5) is not None
    path.write_text("{torn")
    assert members.read(path, 5) is None
