#!/usr/bin/env python3
"""Failover and hand-back of several mirror hosts, measured with real processes on this machine.

``scripts/bench --failover`` runs this. Three real masters (``python -m mirror_supervisor run``,
each with its own state, cache and mirror dirs and its own listener on 127.0.0.1) over one real
``cameras`` table of ``--cameras`` cameras, K=2, each camera on a test RTSP server of its own (a pipeline per client);
each live master's status.json is sampled every 0.1 s. Each round SIGKILLs one master (round r:
host r mod 3), waits until every camera has two copies again, starts it again and waits until the
share is back. Reported per round:

- **below K**: seconds from the kill until every camera had K copies (recording) again, and the
  longest any one camera spent below K;
- **none**: seconds during which any camera had no copy at all (the goal is 0);
- **takeover**: seconds from the kill until the last taken-over camera appeared in its new host's
  status (the host decided to record it), and until the first and the last recorded there;
- **hand-back overlap**: for each camera the returning host takes back, the seconds it was
  recorded three times (the returning host recording, the covering host not yet stopped):
  make-before-break costs this much extra recording, and nothing else;
- the ranking's cost: lines and one decision for 10,000 cameras over 3 and 10 hosts, in process.

    .venv/bin/python scripts/bench_failover.py [--cameras 12] [--rounds 3] [--peer-timeout 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support import procs  # noqa: E402
from support.cluster import Cluster, reference_recorders  # noqa: E402
from support.nvr import NvrDatabase  # noqa: E402
from support.rtsp import RtspServer  # noqa: E402

from mirror_supervisor.cluster import rules  # noqa: E402
from mirror_supervisor.cluster.ranking import Lines  # noqa: E402


def ranking_cost(cameras: int = 10_000, repeats: int = 5) -> dict[str, float]:
    ids = [f"camera-{number:05d}" for number in range(cameras)]
    found: dict[str, float] = {}
    for hosts in (3, 10):
        cold, decide = [], []
        for _ in range(repeats):
            lines = Lines(hosts)
            began = time.perf_counter()
            for cid in ids:
                lines(cid)
            cold.append(time.perf_counter() - began)
            began = time.perf_counter()
            rules.plan(ids, 0, 2, frozenset(range(1, hosts)), lines, {}, frozenset())
            decide.append(time.perf_counter() - began)
        found[f"lines_ms_{hosts}_hosts"] = statistics.median(cold) * 1000
        found[f"decision_ms_{hosts}_hosts"] = statistics.median(decide) * 1000
    return found


def below_spans(cluster: Cluster, since: float, until: float, copies: int) -> dict[str, float]:
    """Per camera, the seconds between ``since`` and ``until`` spent with fewer than ``copies``."""
    spent = {cid: 0.0 for cid in cluster.cameras}
    samples = [s for s in cluster.samples if since <= s.at <= until]
    for before, after in zip(samples, samples[1:], strict=False):
        counts = cluster.counts(before.recording)
        for cid, count in counts.items():
            if count < copies:
                spent[cid] += after.at - before.at
    return spent


def first_at(cluster: Cluster, since: float, test) -> float | None:
    for sample in cluster.samples:
        if sample.at >= since and test(sample):
            return sample.at - since
    return None


def one_round(cluster: Cluster, victim: int, timeout: float) -> dict[str, float | None]:
    survivors = {0, 1, 2} - {victim}
    before = cluster.recording()
    taken = cluster.share(victim)
    killed = cluster.kill(victim)
    procs.wait_for("two copies on the survivors", lambda: all(n >= 2 for n in cluster.counts().values()),
                   timeout=timeout + 60)
    time.sleep(2)
    back = time.monotonic()
    new_owner = {cid: next(h for h in survivors if cid in cluster.share(h, frozenset(survivors)) and cid not in before[h])
                 for cid in taken}
    takeover = [first_at(cluster, killed, lambda s, cid=cid: cid in s.recording.get(new_owner[cid], ())) for cid in taken]
    decided = [first_at(cluster, killed, lambda s, cid=cid: cid in s.wanted.get(new_owner[cid], ())) for cid in taken]
    below = below_spans(cluster, killed, back, 2)
    none = below_spans(cluster, killed, back, 1)
    restarted = time.monotonic()
    cluster.start(victim)
    procs.wait_for("the share back and exactly two copies",
                   lambda: (rec := cluster.recording()).get(victim) == cluster.share(victim)
                   and all(n == 2 for n in cluster.counts(rec).values()), timeout=120)
    time.sleep(2)
    settled = time.monotonic()
    overlap = below_spans(cluster, restarted, settled, 3)  # time below 3 ...
    window = settled - restarted
    three = [window - overlap[cid] for cid in taken]  # ... is not time at 3
    low_after = below_spans(cluster, restarted, settled, 2)
    all_back = first_at(cluster, killed, lambda s: all(n >= 2 for n in cluster.counts(s.recording).values()))
    return {
        "all_back_to_k_s": all_back,
        "longest_camera_below_k_s": max(below.values()),
        "cameras_below_k": sum(1 for v in below.values() if v > 0),
        "seconds_with_no_copy": max(none.values()),
        "decided_last_s": max(t for t in decided if t is not None) if any(t is not None for t in decided) else None,
        "takeover_first_s": min(t for t in takeover if t is not None) if any(t is not None for t in takeover) else None,
        "takeover_last_s": max(t for t in takeover if t is not None) if any(t is not None for t in takeover) else None,
        "handback_overlap_median_s": statistics.median(three) if three else None,
        "handback_overlap_max_s": max(three) if three else None,
        "seconds_below_k_while_handing_back": max(low_after.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peer-timeout", type=float, default=5.0)
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, mirrors); kept anyway on failure")
    args = parser.parse_args()
    results: dict = {"cameras": args.cameras, "copies": 2, "hosts": 3, "peer_timeout": args.peer_timeout,
                     "ranking": ranking_cost(), "rounds": []}
    print(json.dumps(results["ranking"]), flush=True)
    cameras = [f"cam{number:02d}" for number in range(args.cameras)]
    root = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    failed = True
    try:
        servers = [RtspServer(bitrate_kbps=64, fps=5, shared=False) for _ in cameras]
        cluster = None
        try:
            for server in servers:
                server.start()
            nvr = NvrDatabase(root / "heldar.db")
            for server, cid in zip(servers, cameras, strict=True):
                nvr.add_mirrored(cid, server.url("/live"), segment_seconds=2)
            cluster = Cluster(root, nvr.path, cameras, peer_timeout=args.peer_timeout)
            with reference_recorders(servers, cameras, root / "reference"):
                for index in range(3):
                    cluster.start(index)
                    procs.wait_for(f"host {index} recording", lambda index=index: cluster.recording().get(index),
                                   timeout=60)
                procs.wait_for("exactly two copies", lambda: all(n == 2 for n in cluster.counts().values()), timeout=120)
                cluster.start_sampling(every=0.1)
                for number in range(args.rounds):
                    time.sleep(5)
                    found = one_round(cluster, number % 3, args.peer_timeout)
                    print(json.dumps(found), flush=True)
                    results["rounds"].append(found)
            failed = False
        finally:
            if cluster is not None:
                cluster.stop_sampling()
                cluster.stop_all()
            for server in servers:
                server.stop()
    finally:
        if failed or args.keep:
            print(f"work directory kept: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
