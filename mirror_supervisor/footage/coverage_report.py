"""The coverage report for people (text) and for scripts (``--json``), from :mod:`coverage`."""

from __future__ import annotations

import datetime
from typing import Any

from .coverage import Report
from .timing import Clamp


def rfc3339(epoch: float) -> str:
    """The report's times: UTC, to the millisecond where there is a fraction (what --from/--to read)."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def to_json(report: Report) -> dict[str, Any]:
    cameras = []
    for cam in report.cameras:
        cameras.append({
            "id": cam.id, "from": rfc3339(cam.start), "to": rfc3339(cam.end),
            "covered_seconds": round(cam.covered_seconds, 3), "coverage": round(cam.coverage, 6),
            "gaps": [{"start": rfc3339(g.start), "end": rfc3339(g.end), "seconds": round(g.seconds, 3)}
                     for g in cam.gaps],
            "invalid": cam.invalid,
            "clamped": _clamps(cam.clamped),
            "primary": None if cam.primary is None else {
                "only_primary_seconds": round(cam.primary.only_primary_seconds, 3),
                "only_mirror_seconds": round(cam.primary.only_mirror_seconds, 3),
                "both_seconds": round(cam.primary.both_seconds, 3),
                "clamped": _clamps(cam.primary.clamped)},
            "problem": cam.problem,
        })
    return {"cameras": cameras, "notes": report.notes}


def _clamps(clamps: list[Clamp]) -> list[dict[str, Any]]:
    return [{"name": c.name, "claimed_seconds": round(c.claimed, 3), "believed_seconds": round(c.believed, 3),
             "reason": c.reason} for c in clamps]


def _clamp_line(clamp: Clamp, where: str = "") -> str:
    return (f"  {where}clamped {clamp.name}: its boxes say {_seconds(clamp.claimed)}, counted "
            f"{_seconds(clamp.believed)} (it {clamp.reason})")


def _seconds(value: float) -> str:
    return f"{value:.0f}s" if value >= 10 else f"{value:.1f}s"


def render(report: Report, min_coverage: float | None = None) -> str:
    lines = [f"window {rfc3339(report.start)} .. {rfc3339(report.end)} ({_seconds(report.end - report.start)})"]
    for cam in report.cameras:
        below = min_coverage is not None and cam.coverage < min_coverage
        lines.append("")
        lines.append(f"{cam.id}: {cam.coverage * 100:.2f}% covered ({_seconds(cam.covered_seconds)}), "
                     f"{len(cam.gaps)} gaps, {len(cam.invalid)} invalid segments, {cam.segments} files"
                     + ("  BELOW --min-coverage" if below else ""))
        if cam.problem:
            lines.append(f"  problem: {cam.problem}")
        for gap in cam.gaps:
            lines.append(f"  gap {rfc3339(gap.start)} .. {rfc3339(gap.end)}  {_seconds(gap.seconds)}")
        for name in cam.invalid:
            lines.append(f"  invalid {name}")
        lines += [_clamp_line(clamp) for clamp in cam.clamped]
        if cam.primary is not None:
            p = cam.primary
            lines.append(f"  primary: only in primary {_seconds(p.only_primary_seconds)} (lost if the mirror were "
                         f"all you had), only in mirror {_seconds(p.only_mirror_seconds)}, "
                         f"both {_seconds(p.both_seconds)}")
            lines += [_clamp_line(clamp, "primary ") for clamp in p.clamped]
    for note in report.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)
