"""The master's loop with --shard/--copies/--peers, through the fake system of
tests/unit/master/test_master_loop.py: the peer watcher is a forked pid whose file the test writes, time
moves only when the master sleeps. What is checked: the first selection is the ranking's share,
a peer down is covered after --peer-timeout without touching any running worker, a returning
peer gets its cameras back only once it reports them complete (make before break), and the
health document says which cameras are complete here."""

from __future__ import annotations

import importlib.util
import json
import signal
from pathlib import Path

import pytest

from mirror_supervisor.cluster import health, watcher
from mirror_supervisor.cluster.ranking import line
from mirror_supervisor.master import master as master_module
from mirror_supervisor.master.master import Master
from mirror_supervisor.settings import Settings
from mirror_supervisor.worker.report import encode_report

_spec = importlib.util.spec_from_file_location(
    "master_loop_fakes", Path(__file__).resolve().parents[1] / "unit" / "master" / "test_master_loop.py")
assert _spec is not None and _spec.loader is not None
fakes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakes)

IDS = [f"cam{number:02d}" for number in range(12)]
ME, HOSTS, COPIES, TIMEOUT = 1, 3, 2, 6.0


@pytest.fixture
def node(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(master_module.setproctitle, "setproctitle", lambda title: None)
    system, source = fakes.FakeSystem(), fakes.FakeSource()
    (tmp_path / "mirror").mkdir()
    settings = Settings(db=tmp_path / "db", mirror_dir=tmp_path / "mirror", state_dir=tmp_path, poll_interval=5.0,
                        stop_timeout=8.0, prune_interval=0.0, shard=(ME, HOSTS), copies=COPIES,
                        peers=(("127.0.0.1", 1), ("127.0.0.1", 2), ("127.0.0.1", 3)), peer_timeout=TIMEOUT,
                        metrics_listen=("127.0.0.1", 2))
    master = Master(settings, system=system, source=source)
    master.probe.next_at = float("inf")
    source.set(*IDS)
    master._setup()
    master._start()
    return master, system, tmp_path


def peers_say(master, system, tmp_path, good: dict[int, list[str] | None]):
    """The watcher's file as the watcher would write it now: ``None`` = no good answer yet."""
    old = json.loads((tmp_path / watcher.FILE).read_text()) if (tmp_path / watcher.FILE).exists() else {"peers": {}}
    peers = {}
    for host in (0, 2):
        said = good.get(host, "keep")
        if said == "keep":
            peers[str(host)] = old["peers"].get(str(host), {"good_at": None, "recording": [], "error": "refused"})
        elif said is None:
            kept = old["peers"].get(str(host), {"good_at": None, "recording": []})
            peers[str(host)] = {**kept, "error": "connection refused"}
        else:
            peers[str(host)] = {"good_at": system.now, "recording": said, "error": None}
    (tmp_path / watcher.FILE).write_text(json.dumps({"pid": master.cluster.watcher_pid, "now": system.now,
                                                     "peers": peers}))


def run_for(master, system, seconds: float, tmp_path: Path | None = None, say: dict | None = None):
    """Passes of the loop for ``seconds`` of fake time; with ``say``, the peers keep saying it
    (the watcher's file is rewritten before every pass, as the real watcher does twice a second)."""
    end = system.now + seconds
    while system.now < end:
        if say is not None:
            peers_say(master, system, tmp_path, say)
        master._one_pass()


def workers(master) -> dict[str, int]:
    return {cid: slot.worker.pid for cid, slot in master.slots.items() if slot.worker is not None}


def share(me: int, up=frozenset(range(HOSTS))) -> set[str]:
    return {cid for cid in IDS if me in [h for h in line(cid, HOSTS) if h in up][:COPIES]}


def stopped(system) -> set[int]:
    return {pid for kind, pid, sig in system.sent if kind == "kill" and sig == signal.SIGTERM}


def test_failover_and_make_before_break_hand_back(node):
    master, system, tmp_path = node
    master._one_pass()
    assert master.cluster.watcher_pid is not None, "the peer watcher child is forked at the first pass"
    assert set(workers(master)) == share(ME), "at start, unknown peers count as up: the ranking's share"
    run_for(master, system, 2, tmp_path, {0: [], 2: []})
    first = workers(master)
    assert set(first) == share(ME)

    # host 0 stops answering; nothing changes before --peer-timeout, then its cameras come here
    silent = {0: None, 2: sorted(share(2))}
    run_for(master, system, TIMEOUT - 3, tmp_path, silent)
    assert workers(master) == first
    run_for(master, system, 4, tmp_path, silent)
    covering = workers(master)
    assert set(covering) == share(ME, frozenset({1, 2}))
    assert {cid: covering[cid] for cid in first} == first, "no running worker was restarted or stopped"
    assert not stopped(system)
    assert [p["state"] for p in master.cluster.status()["cluster"]["peers"]] == ["down", "up"]

    # host 0 answers again but reports nothing complete: every extra copy stays
    run_for(master, system, 5, tmp_path, {0: [], 2: sorted(share(2))})
    assert workers(master) == covering and not stopped(system)
    extras = set(covering) - share(ME)
    assert extras and all(master.cluster.plan.record[cid].extra for cid in extras)

    # host 0 reports its cameras complete: the extras go, and nothing else
    confirmed = {0: sorted(share(0)), 2: sorted(share(2))}
    run_for(master, system, 2, tmp_path, confirmed)
    assert stopped(system) == {covering[cid] for cid in extras}
    for pid in sorted(stopped(system)):
        system.exit(pid)
    run_for(master, system, 2, tmp_path, confirmed)
    assert workers(master) == first, "the share is the ranking's again, with the same workers"


def test_the_health_document_lists_cameras_with_a_complete_segment(node):
    master, system, tmp_path = node
    cid = sorted(share(ME))[0]
    worker = master.slots[cid].worker
    for segment in ("20300101_000000.mp4", "20300101_000002.mp4"):
        master._reports_buffer += encode_report({"camera": cid, "generation": worker.generation, "pid": worker.pid,
                                                 "state": "recording", "ffmpeg_starts": 1, "segment": segment})
        master._read_reports()
        run_for(master, system, 1.5)
        doc = json.loads((tmp_path / health.FILE).read_text())
        assert doc["host"] == ME and doc["hosts"] == HOSTS and doc["copies"] == COPIES and doc["healthy"] is True
        assert doc["recording"] == ([] if segment.endswith("00.mp4") else [cid]), "complete once the first closed"


def test_a_dead_watcher_is_forked_again_and_a_stuck_one_killed(node):
    master, system, tmp_path = node
    master._one_pass()
    first = master.cluster.watcher_pid
    system.exit(first, -9)
    run_for(master, system, 3)
    second = master.cluster.watcher_pid
    assert second not in (None, first)
    peers_say(master, system, tmp_path, {0: [], 2: []})
    run_for(master, system, 9)
    assert ("kill", second, signal.SIGKILL) not in system.sent
    run_for(master, system, 3)  # its file has not moved for 10 s: a stuck watcher
    assert ("kill", second, signal.SIGKILL) in system.sent
    system.exit(second, -9)
    run_for(master, system, 3)
    assert master.cluster.watcher_pid not in (None, first, second)


def test_shutdown_kills_the_watcher_and_removes_the_documents(node):
    master, system, tmp_path = node
    run_for(master, system, 2)
    assert (tmp_path / health.FILE).exists()
    master.cluster.remove_files()
    assert not (tmp_path / health.FILE).exists()
    assert master.cluster.watcher_pid in master._helpers()


def test_status_and_metrics_say_who_records_what_and_which_peers_are_up(node):
    from mirror_supervisor.cluster.present import status_lines

    master, system, tmp_path = node
    master._one_pass()
    run_for(master, system, TIMEOUT + 2, tmp_path, {0: None, 2: sorted(share(2))})
    section = master.cluster.status()["cluster"]
    assert (section["host"], section["hosts"], section["copies"]) == (ME, HOSTS, COPIES)
    assert [p["state"] for p in section["peers"]] == ["down", "up"]
    lines = status_lines(json.loads(json.dumps(section)), now=system.time())
    assert lines[0].startswith(f"cluster: host {ME} of {HOSTS} (0-based), {COPIES} copies; recording ")
    assert lines[1].startswith("peer host 0 (127.0.0.1:1): down since ") and "connection refused" in lines[1]
    assert lines[2].startswith("peer host 2 (127.0.0.1:3): up since ")
    text = master.metrics.render(system.now).decode()
    mine = share(ME, frozenset({1, 2}))
    for cid in IDS:
        assert f'mirror_supervisor_cluster_camera_recorded_here{{camera="{cid}"}} {1.0 if cid in mine else 0.0}' in text
    first = next(cid for cid in sorted(mine) if [h for h in line(cid, HOSTS) if h != 0][0] == ME)
    assert f'mirror_supervisor_cluster_camera_copy{{camera="{first}"}} 1.0' in text
    assert 'mirror_supervisor_cluster_peer_up{address="127.0.0.1:1",peer="0"} 0.0' in text
    assert 'mirror_supervisor_cluster_peer_up{address="127.0.0.1:3",peer="2"} 1.0' in text
    assert f'mirror_supervisor_cluster_info{{copies="{COPIES}",host="{ME}",hosts="{HOSTS}"}} 1.0' in text
    # nothing is complete here yet (no worker reported a closed segment): host 2's cameras have one copy
    assert "mirror_supervisor_cluster_cameras_below_copies 12.0" in text


def test_check_names_the_hosts_of_every_camera():
    from mirror_supervisor.cluster.present import check_verdict

    settings = Settings(db=Path("db"), mirror_dir=None, shard=(ME, HOSTS), copies=COPIES)
    for cid in IDS:
        owners = line(cid, HOSTS)[:COPIES]
        said = check_verdict(settings, cid)
        if ME in owners:
            other = [h for h in owners if h != ME][0]
            assert said == f"mirrored here, copy {owners.index(ME) + 1} of {COPIES} (also host {other})"
        else:
            assert said == f"mirrored by hosts {owners[0]} and {owners[1]}, not here"
    assert check_verdict(Settings(db=Path("db"), mirror_dir=None), "cam00") is None


def test_an_extra_copy_never_confirmed_is_kept_and_named_once(node, caplog):
    from mirror_supervisor.master.cluster_node import HANDBACK_WARN

    master, system, tmp_path = node
    run_for(master, system, TIMEOUT + 2, tmp_path, {0: None, 2: sorted(share(2))})
    covering = workers(master)
    run_for(master, system, HANDBACK_WARN + 5, tmp_path, {0: [], 2: sorted(share(2))})  # back, never complete
    assert workers(master) == covering and not stopped(system)
    named = [r for r in caplog.records if "have not reported a complete segment" in r.getMessage()]
    assert len(named) == len(set(covering) - share(ME)) and "keeping this copy" in named[0].getMessage()
