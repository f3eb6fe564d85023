"""Paths, the clock and the progress log shared by every module of the benchmark."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
SYSTEM_PYTHON = "/usr/bin/python3"  # runs the synthetic camera and the stand-in (python3-gi lives there)
POLL = 0.005  # the fine polling interval for latencies


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def mono() -> float:
    return time.monotonic()


def brief(value: Any) -> str:
    """A one-line progress summary: percentiles instead of raw lists, no per-process detail."""
    if not isinstance(value, dict):
        return str(value)
    parts = []
    for key, v in value.items():
        if isinstance(v, dict) and "p50" in v:
            parts.append(f"{key} p50={_fmt(v['p50'])} p90={_fmt(v['p90'])}")
        elif isinstance(v, (int, float, str)) or v is None:
            parts.append(f"{key}={_fmt(v)}")
        elif key == "master" and isinstance(v, dict):
            parts.append(f"master_uss={v.get('uss')}")
    return " ".join(parts)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
