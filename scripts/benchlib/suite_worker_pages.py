"""Worker pages: what one worker stops sharing with the zygote, priced feature by feature.

Each variant is one run of ``cow_map`` (a process that plays the zygote forks one worker recording
with the ffmpeg stand-in; after SECONDS the worker's exclusively mapped pages are counted from
``/proc/<pid>/pagemap`` and split among the Python objects on them) with one feature of the worker
taken out by ``cow_variants``; ``idle`` and ``stripped`` are the floors: a fork of the image, and
the mission's core (a Popen loop and a reader thread). Median of REPEATS runs each.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from typing import Any

from . import recorder
from .common import ROOT, log, mono
from .context import Context
from .machine import machine_info

VARIANTS = ("idle", "stripped", "full", "no-title", "no-report", "no-log", "no-thread", "no-progress", "no-names",
            "no-input", "no-probe")
REPEATS = 3
SECONDS = 8.0
SEGMENT_SECONDS = 2  # several segment changes within the run: their code is in the count


def measure(binary: str, variant: str) -> dict[str, Any]:
    env = dict(os.environ, COW_MAP_ZYGOTE=f"{ROOT / 'scripts/benchlib/cow_variants.py'} {variant}")
    done = subprocess.run([sys.executable, "-P", str(ROOT / "scripts/benchlib/cow_map.py"), binary, str(SECONDS),
                           str(SEGMENT_SECONDS)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"cow_map {variant}: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def run(ctx: Context) -> dict[str, Any]:
    began = mono()
    binary = str(recorder.build(ctx.work / "bin"))
    result: dict[str, Any] = {"machine": machine_info(), "seconds": SECONDS, "repeats": REPEATS, "variants": {}}
    for variant in VARIANTS:
        runs = [measure(binary, variant) for _ in range(REPEATS)]
        kib = sorted(r["private_kib"] for r in runs)
        middle = runs[[r["private_kib"] for r in runs].index(kib[len(kib) // 2])]
        result["variants"][variant] = {"private_kib": kib, "median_kib": statistics.median(kib)}
        if variant == "full":
            result["full"] = {key: middle[key] for key in ("by_mapping_kib", "by_object_kib", "regions")}
        log(f"worker pages: {variant}: {kib} KiB")
    result["duration_s"] = round(mono() - began, 1)
    return result
