"""Summaries of repeated measurements."""

from __future__ import annotations

import statistics
from typing import Any


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))  # ceil(q/100 * n)
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": pct(values, 50), "p90": pct(values, 90),
        "max": max(values) if values else None, "min": min(values) if values else None,
        "mean": statistics.fmean(values) if values else None,
        "raw": [round(v, 6) for v in values],
    }
