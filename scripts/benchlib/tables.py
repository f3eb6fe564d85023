"""Markdown table helpers and number formats shared by the report modules."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

Pick = Callable[[dict], Any]
Row = tuple[str, Pick, Callable[[Any], str]]


def ms(x: float | None) -> str:
    return "–" if x is None else f"{x * 1000:.0f} ms" if x < 10 else f"{x:.1f} s"


def mib(x: float | None) -> str:
    return "–" if x is None else f"{x / 2**20:.2f} MiB"


def pcts(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f} %"


def num(x: Any) -> str:
    return "–" if x is None else str(x)


def ratio(a: Any, b: Any) -> str:
    """ours / supervisord."""
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return "–"
    if b == 0:
        return "–" if a == 0 else "∞"
    return f"{a / b:.2f}"


def get(d: Any, *path: Any) -> Any:
    """``d[path[0]][path[1]]...``, None as soon as a step is missing (ints index lists)."""
    for key in path:
        if d is None:
            return None
        if isinstance(key, int):
            d = d[key] if isinstance(d, list) and len(d) > key else None
        else:
            d = d.get(key) if isinstance(d, dict) else None
    return d


def median_of(items: list[dict] | None, key: str) -> float | None:
    values = [i[key] for i in items or [] if i.get(key) is not None]
    return statistics.median(values) if values else None


def section(title: str, caption: str = "") -> list[str]:
    lines = [f"## {title}", ""]
    if caption:
        lines += [caption, ""]
    return lines


def by_count(rows: list[Row], runs: dict[str, Any], counts: list[int]) -> list[str]:
    """One line per metric and N: ours, supervisord, ratio (runs keyed '<system>-<N>')."""
    lines = ["| metric | N | ours | supervisord | ratio |", "|---|---|---|---|---|"]
    for label, pick, fmt in rows:
        for n in counts:
            a, b = pick(runs.get(f"ours-{n}") or {}), pick(runs.get(f"supervisord-{n}") or {})
            lines.append(f"| {label} | {n} | {fmt(a)} | {fmt(b)} | {ratio(a, b)} |")
    return lines + [""]


def side_by_side(rows: list[Row], ours: dict, theirs: dict) -> list[str]:
    """One line per metric: ours, supervisord, ratio."""
    lines = ["| metric | ours | supervisord | ratio |", "|---|---|---|---|"]
    for label, pick, fmt in rows:
        a, b = pick(ours), pick(theirs)
        lines.append(f"| {label} | {fmt(a)} | {fmt(b)} | {ratio(a, b)} |")
    return lines + [""]
