"""The fork-harness suite: worker USS by the child's first actions (see ``fork_harness``)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from .common import PACKAGE, ROOT, log
from .context import Context

HARNESS = PACKAGE / "fork_harness.py"
ALL_STEPS = "title,log,pipe,popen,thread,json,scan"

# (child's steps, parent warmed): each step alone, then all of them, cold and warm.
VARIANTS = [
    ("", False), ("title", False), ("log", False), ("pipe", False), ("json", False), ("scan", False),
    ("popen", False), ("popen,thread", False), (ALL_STEPS, False),
    ("scan", True), ("log", True), ("popen", True),
    (ALL_STEPS, True), ("title,log,pipe,popen,json,scan", True),
]


def measure(steps: str, warm: bool) -> dict[str, Any]:
    # -P: the harness's own directory stays off sys.path (mirror_supervisor comes from the venv).
    try:
        done = subprocess.run([sys.executable, "-P", str(HARNESS), steps, "warm" if warm else "cold"],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError) as exc:
        return {"steps": steps, "warm": warm, "error": repr(exc)}


def run(ctx: Context) -> list[dict[str, Any]]:
    log("fork harness: worker USS by first action after fork")
    return [measure(steps, warm) for steps, warm in VARIANTS]
