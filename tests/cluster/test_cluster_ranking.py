"""The ranking (cluster/ranking.py): stable across processes, balanced, and moving little when a
host is added (README, "Several mirror hosts"; docs/design.md, "Cluster")."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from mirror_supervisor.cluster.ranking import Lines, line, live_line, owners

IDS = [f"cam-{number:05d}" for number in range(10_000)]


def test_the_line_is_a_permutation_and_the_same_in_another_process_with_another_hash_seed():
    """Python's hash() is salted per process; the ranking must not be."""
    here = [line(cid, 7) for cid in ("gate", "yard", "lobby", "cam-00042")]
    assert all(sorted(found) == list(range(7)) for found in here)
    code = "from mirror_supervisor.cluster.ranking import line; print([line(c, 7) for c in ('gate','yard','lobby','cam-00042')])"
    for seed in ("1", "12345"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}).stdout
        assert out.strip() == str(here)


@pytest.mark.parametrize("hosts", range(3, 11))
def test_every_host_gets_about_k_over_n_of_the_cameras(hosts):
    lines = [line(cid, hosts) for cid in IDS]
    for copies in (1, 2, 3):
        counts = Counter(host for found in lines for host in found[:copies])
        for host in range(hosts):
            share = counts[host] / len(IDS)
            assert share == pytest.approx(copies / hosts, abs=0.015), (hosts, copies, host, share)
        assert all(len(set(owners(cid, hosts, copies))) == copies for cid in IDS[:200])


@pytest.mark.parametrize("hosts", [3, 4, 6, 9])
@pytest.mark.parametrize("copies", [1, 2])
def test_adding_a_host_moves_about_k_over_n_plus_one_and_nothing_else(hosts, copies):
    moved, old = 0, frozenset(range(hosts))
    for cid in IDS:
        full_before, full_after = line(cid, hosts), line(cid, hosts + 1)
        before, after = full_before[:copies], full_after[:copies]
        # the old hosts keep their order among themselves: only the new one can cut in
        assert live_line(full_after, old) == full_before
        if before != after:
            moved += 1
            assert hosts in after, "a camera changes hosts only when the new host takes it"
            assert set(before) - set(after) == {before[-1]}, "exactly one old host (the last) gives it up"
    assert moved / len(IDS) == pytest.approx(copies / (hosts + 1), abs=0.015)


def test_failover_order_is_the_line_over_the_live_hosts():
    full = line("gate", 5)
    down = frozenset({full[0]})
    live = live_line(full, frozenset(range(5)) - down)
    assert live == full[1:]
    assert live_line(full, frozenset({full[3], full[1]})) == (full[1], full[3])


def test_lines_are_cached_and_forgotten_when_the_table_shrinks():
    lines = Lines(4)
    for cid in IDS[:500]:
        assert lines(cid) == line(cid, 4)
    lines.forget_others(IDS[:10])
    assert len(lines._lines) == 10
