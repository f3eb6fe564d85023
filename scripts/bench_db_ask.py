#!/usr/bin/env python3
"""What asking the database's volume costs the master on every poll.

Before each read of the NVR's database the master has a child stat the file with a deadline
(``volume.ask``), so that a hung volume can never put the master itself to sleep in the kernel.
That is a fork per poll. This measures it from a process the size of a big master (``--ballast``
MB of Python objects, 66 MB resident at the default) against an idle poll of an unchanged
100-camera database (``CameraSource.read``, which already stats the file and checks the table),
and reports latency (median, p90, max) and the asking process's own CPU per poll.

    .venv/bin/python scripts/bench_db_ask.py [--polls 300] [--ballast 50] [--cameras 100]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.nvr import Nvr  # noqa: E402

from mirror_supervisor.master.wanted import CameraSource  # noqa: E402
from mirror_supervisor.plumbing import volume  # noqa: E402
from mirror_supervisor.settings import Settings  # noqa: E402


def measure(step: Callable[[], object], polls: int) -> dict[str, float]:
    """Latency of each call and the caller's CPU (user + system) per call, in ms."""
    seconds = []
    cpu_before = os.times()
    for _ in range(polls):
        began = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - began)
    cpu_after = os.times()
    seconds.sort()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return {"median_ms": statistics.median(seconds) * 1000, "p90_ms": seconds[int(len(seconds) * 0.9)] * 1000,
            "max_ms": seconds[-1] * 1000, "cpu_ms": cpu / polls * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=300)
    parser.add_argument("--ballast", type=int, default=50, help="MB of Python objects, like a big master")
    parser.add_argument("--cameras", type=int, default=100)
    args = parser.parse_args()

    ballast = [bytearray(1024) for _ in range(args.ballast * 1000)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "mirror").mkdir()
        nvr = Nvr(root / "heldar.db")
        nvr.add_many([(f"cam{i:03d}", f"rtsp://10.0.0.{i % 250}/live", 60, True) for i in range(args.cameras)])
        settings = Settings(db=nvr.path, mirror_dir=root / "mirror", state_dir=root)
        source = CameraSource()
        assert source.read(settings, time.monotonic()) is not None

        ask = measure(lambda: volume.ask(nvr.path, 3.0), args.polls)
        # An idle poll as the master runs it now: the ask, then the fingerprint and table check;
        # and as it ran before the ask existed (the ask replaced by an instant yes).
        poll = measure(lambda: source.read(settings, time.monotonic()), args.polls)
        real_ask, volume.ask = volume.ask, lambda path, timeout: volume.Asked(True)
        try:
            before = measure(lambda: source.read(settings, time.monotonic()), args.polls)
        finally:
            volume.ask = real_ask
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del ballast
    print(f"asking process: {rss:.0f} MB resident; {args.polls} polls each; times in ms")
    print(f"{'':24} {'median':>8} {'p90':>8} {'max':>8} {'own CPU':>8}")
    for name, row in (("volume.ask alone", ask), ("idle poll with the ask", poll), ("idle poll without it", before)):
        print(f"{name:24} {row['median_ms']:8.2f} {row['p90_ms']:8.2f} {row['max_ms']:8.2f} {row['cpu_ms']:8.2f}")
    share = poll["cpu_ms"] / 1000 / Settings.poll_interval
    print(f"at the default poll interval ({Settings.poll_interval:.0f} s) the idle poll costs {share:.3%} of a core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
