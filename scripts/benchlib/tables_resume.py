"""Tables of the resume suite, from ``results["resume"]`` alone (it carries its own provenance)."""

from __future__ import annotations

from typing import Any


def _s(x: Any) -> str:
    return "–" if x is None else f"{x:.1f} s"


def render(results: dict[str, Any]) -> list[str]:
    r = results.get("resume")
    if not r:
        return []
    c, m = r["config"], r.get("machine") or {}
    lines = [
        "## Resume after a camera outage",
        "",
        f"`scripts/bench --resume{' --quick' if c.get('quick') else ''}` on {m.get('date_utc', '?')}, "
        f"{r['duration_s'] / 60:.1f} min, commit {m.get('commit', '?')}; before = commit {c['before_commit']}. "
        f"One real test camera (1 s keyframes), {c['segment_seconds']} s segments, recorded by both versions "
        f"side by side; each outage follows {c['warm_s']:g} s of recording. Hole: first growth of the mirror "
        "after the camera is back minus the last growth before (includes about one keyframe interval of "
        "fragmenting). Extra loss = hole - outage.",
        "",
        "| outage | hole before | hole after | extra loss before | extra loss after |",
        "|---|---|---|---|---|",
    ]
    for row in r.get("outages", []):
        b, a = row["before"], row["after"]
        lines.append(f"| {_s(row['outage_s'])} | {_s(b['hole_s'])} | {_s(a['hole_s'])} | "
                     f"{_s(b['extra_loss_s'])} | {_s(a['extra_loss_s'])} |")
    down = r.get("down") or {}
    if down:
        lines += [
            "",
            "A camera that stays down (nothing listens on its port), each version alone in its own network "
            "namespace; connection attempts are the namespace's TCP `ActiveOpens` (ffmpeg's and the probe's).",
            "",
            "| | before | after |",
            "|---|---|---|",
            "| seconds down | " + " | ".join(f"{down[n]['seconds']:.0f}" for n in ("before", "after")) + " |",
            "| TCP connection attempts | " + " | ".join(str(down[n]["tcp"].get("ActiveOpens", "–"))
                                                      for n in ("before", "after")) + " |",
            "| attempts per second | " + " | ".join(
                f"{down[n]['tcp']['ActiveOpens'] / down[n]['seconds']:.2f}" if down[n]["tcp"] else "–"
                for n in ("before", "after")) + " |",
            "| ffmpeg starts | " + " | ".join(str(down[n]["ffmpeg_starts"]) for n in ("before", "after")) + " |",
        ]
    lines += ["", f"Leftover ffmpegs of this run after cleanup: {r.get('leftovers')}.", ""]
    return lines
