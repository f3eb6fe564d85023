"""Markdown for the worker-pages suite (see ``suite_worker_pages``)."""

from __future__ import annotations

from typing import Any

LEFT_OUT = {
    "idle": "everything: a forked child of the zygote that only sleeps",
    "stripped": "everything but a Popen loop around the recorder and a thread draining its stderr",
    "full": "nothing: the worker as it runs",
    "no-title": "the process title (setproctitle on every state)",
    "no-report": "the report lines to the master",
    "no-log": "the worker's log lines",
    "no-thread": "the stderr reader thread",
    "no-progress": "the progress check (the segment ffmpeg has open, from /proc/<pid>/fd)",
    "no-names": "the directory checks before a start and at each new segment (names in the future)",
    "no-input": "the input script (the URL written for ffmpeg to read)",
    "no-probe": "the camera's port probe (the URL parsed for it at start)",
}


def render(results: dict[str, Any]) -> list[str]:
    r = results.get("worker_pages")
    if not r:
        return []
    m = r["machine"]
    full = r["variants"]["full"]["median_kib"]
    lines = ["## Worker pages: what each part of a worker costs", "",
             f"`scripts/bench --worker-pages` on {m.get('date', '?')}, commit {m.get('commit', '?')}, "
             f"{r['duration_s']:.0f} s. One worker forked from a process playing the zygote, recording with "
             f"the ffmpeg stand-in for {r['seconds']:g} s; its exclusively mapped pages counted from "
             f"`/proc/<pid>/pagemap` (its USS); median of {r['repeats']} runs per row "
             "(`scripts/benchlib/cow_map.py`, `cow_variants.py`).", "",
             "| variant | left out | worker USS | vs the full worker |", "|---|---|---|---|"]
    for name, value in r["variants"].items():
        kib = value["median_kib"]
        lines.append(f"| {name} | {LEFT_OUT.get(name, name)} | {kib:.0f} KiB | {kib - full:+.0f} KiB |")
    lines += ["", "The full worker's private pages by mapping, and by the kind of Python object on them "
              "(a page is split among the objects on it by their bytes; \"no object\": allocator headers, free "
              "blocks a worker allocated into, dict and list tables, C data):", "",
              "| mapping | KiB |", "|---|---|"]
    lines += [f"| `{name}` | {kib} |" for name, kib in list(r["full"]["by_mapping_kib"].items())[:6]]
    lines += ["", "| objects | KiB |", "|---|---|"]
    lines += [f"| {kind} | {kib:.0f} |" for kind, kib in r["full"]["by_object_kib"][:15]]
    return lines + [""]
