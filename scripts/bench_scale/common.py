"""Shared bits of the scale benchmark: where the repository is, logging, the child environment."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKER_TITLE = "mirror-supervisor: worker "


def log(message: str) -> None:
    print(f"[bench-scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def child_env(**extra: str) -> dict[str, str]:
    """Our environment without MIRROR_SUPERVISOR_* settings (they would override the flags' intent)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRROR_SUPERVISOR_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env
