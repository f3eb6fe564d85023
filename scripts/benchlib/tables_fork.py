"""Table of the fork-harness suite, from ``results["fork_harness"]``."""

from __future__ import annotations

from typing import Any

from .tables import mib, section


def render(results: dict[str, Any]) -> list[str]:
    harness = results.get("fork_harness") or []
    if not harness:
        return []
    lines = section("Worker USS by what a forked child does first (fork harness)",
                    "Child's USS 1.5 s after the fork; see `scripts/benchlib/fork_harness.py` for the steps.")
    lines += ["| child's steps | parent warmed | child USS |", "|---|---|---|"]
    for item in harness:
        value = mib(item.get("uss")) if "uss" in item else item.get("error", "?")
        lines.append(f"| {item['steps'] or '(nothing)'} | {'yes' if item['warm'] else 'no'} | {value} |")
    return lines + [""]
