"""The rules of who records what (cluster/rules.py), pure: failover order, make-before-break
hand-back, partitions, and the count of cameras short of K copies."""

from __future__ import annotations

from mirror_supervisor.cluster.ranking import Lines, line
from mirror_supervisor.cluster.rules import Role, below, plan

IDS = [f"cam{number:02d}" for number in range(60)]
ALL = frozenset(range(3))


def decide(me, up=ALL, complete=None, held=frozenset(), copies=2, hosts=3, ids=IDS):
    return plan(ids, me, copies, frozenset(up), Lines(hosts), complete or {}, frozenset(held))


def test_all_up_every_camera_is_recorded_by_exactly_its_first_k():
    plans = [decide(me) for me in range(3)]
    for cid in IDS:
        holders = [me for me in range(3) if cid in plans[me].record]
        assert holders == sorted(line(cid, 3)[:2])
        assert plans[line(cid, 3)[0]].record[cid] == Role(1) and plans[line(cid, 3)[1]].record[cid] == Role(2)


def test_a_host_down_its_cameras_go_to_the_next_live_host_in_line_and_nothing_else_moves():
    before = {me: decide(me) for me in range(3)}
    down = 0
    after = {me: decide(me, up=ALL - {down}, held=frozenset(before[me].record)) for me in (1, 2)}
    for cid in IDS:
        order = line(cid, 3)
        live = [host for host in order if host != down]
        holders = {me for me in (1, 2) if cid in after[me].record}
        assert holders == set(live[:2]), "two copies again among the live hosts"
        for me in (1, 2):
            if cid in before[me].record:
                assert cid in after[me].record, "a camera a survivor recorded is never stopped by a failover"


def test_with_k_1_the_next_in_line_takes_over_and_partition_records_everything():
    owner = {cid: line(cid, 3)[0] for cid in IDS}
    alone = decide(1, up={1}, copies=1)
    assert set(alone.record) == set(IDS), "a host that sees no peer records every camera"
    two = decide(1, up={1, 2}, copies=1)
    assert set(two.record) == {cid for cid in IDS if [h for h in line(cid, 3) if h != 0][0] == 1}
    assert {cid for cid in IDS if owner[cid] == 1} <= set(two.record)


def test_hand_back_waits_for_every_target_to_report_a_complete_segment():
    down = 0
    covering = decide(1, up=ALL - {down})
    extras = {cid for cid in covering.record if 1 not in line(cid, 3)[:2]}
    assert extras, "host 1 covers some cameras for host 0"
    # host 0 is back; it has reported nothing complete yet: host 1 keeps every camera it had
    back = decide(1, held=frozenset(covering.record))
    assert set(back.record) == set(covering.record)
    assert all(back.record[cid].extra and 0 in back.record[cid].waiting for cid in extras)
    assert not back.released
    # host 0 reports half of them; the other target (host 2) reports all of its own
    some = sorted(extras)[: len(extras) // 2]
    complete = {0: frozenset(some), 2: frozenset(IDS)}
    partly = decide(1, complete=complete, held=frozenset(back.record))
    assert partly.released == frozenset(some)
    assert set(partly.record) == set(back.record) - set(some)
    # a target that is not the returning host must confirm too
    only_zero = decide(1, complete={0: frozenset(IDS)}, held=frozenset(back.record))
    waiting_for_two = {cid for cid in extras if 2 in line(cid, 3)[:2]}
    assert waiting_for_two <= set(only_zero.record)
    everything = decide(1, complete={0: frozenset(IDS), 2: frozenset(IDS)}, held=frozenset(back.record))
    assert everything.released == frozenset(extras)
    assert set(everything.record) == set(decide(1).record), "the share is back to the ranking's"


def test_an_extra_copy_is_never_released_by_a_down_host_report():
    """Reports of hosts that are down do not count (only live targets), so a flapping peer's
    stale word cannot release a copy."""
    covering = decide(1, up=ALL - {0})
    again = decide(1, up=ALL - {0}, complete={0: frozenset(IDS)}, held=frozenset(covering.record))
    assert set(again.record) == set(covering.record)


def test_cameras_below_k_copies_as_this_host_sees_them():
    mine = frozenset(IDS[:30])
    complete = {0: frozenset(IDS[10:60]), 2: frozenset(IDS[:5])}
    # copies: IDS[:5] -> 2 (me, 2) ; IDS[5:10] -> 1 ; IDS[10:30] -> 2 ; IDS[30:] -> 1
    assert below(IDS, 2, 1, ALL, mine, complete) == 5 + 30
    assert below(IDS, 2, 1, frozenset({1, 2}), mine, complete) == 55, "a down host's copies are not counted"
