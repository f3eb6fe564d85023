"""``coverage --html FILE``: the coverage report as one self-contained HTML file, to attach to an
incident report.

The same timelines as the status page (:mod:`.timeline`), from the same :class:`Report` the text
and JSON outputs print: per camera its coverage, gaps and invalid segments, the timeline of the
window, and the gaps and invalid segments listed (a ``<details>`` element: no script). The file
carries its security policy in a ``<meta>`` element (it is opened without our headers) and loads
nothing: one style sheet inside, no script, no font, no image but the empty favicon.
"""

from __future__ import annotations

import time

from ..footage.coverage import CameraCoverage, Report
from ..footage.index import start_of
from . import timeline as tl
from .document import document, escape

MAX_LISTED = 200  # gaps and invalid segments listed per camera; the timeline shows them all


def timeline_of(cam: CameraCoverage) -> tl.Timeline:
    """A camera's timeline from its coverage: the mirror alone, or compared with the primary."""
    invalid = [(name, start_of(name) or cam.start) for name in cam.invalid]
    if cam.primary is not None:
        return tl.build(cam.start, cam.end, cam.spans, invalid, primary=cam.primary.spans)
    return tl.build(cam.start, cam.end, cam.spans, invalid, first=cam.first_start)


def render(report: Report, mirror_dir: str, generated: float | None = None) -> str:
    generated = time.time() if generated is None else generated
    compared = any(cam.primary is not None for cam in report.cameras)
    window = f"{tl.stamp(report.start)} to {tl.stamp(report.end)} ({tl.length(report.end - report.start)})"
    body = [f"<h1>Coverage of {escape(mirror_dir)}</h1>",
            f'<dl class="facts"><dt>window</dt><dd>{escape(window)}</dd>'
            f"<dt>made</dt><dd>{escape(tl.stamp(generated))} by mirror-supervisor coverage</dd></dl>",
            tl.legend(compared, pending=False)]
    if report.notes:
        body.append('<ul class="notes">' + "".join(f"<li>{escape(note)}</li>" for note in report.notes) + "</ul>")
    body.append("<table><thead><tr><th>camera</th><th>coverage</th><th>gaps</th><th>invalid</th>"
                "<th>timeline (UTC)</th></tr></thead><tbody>")
    body += [_row(cam) for cam in report.cameras]
    if not report.cameras:
        body.append('<tr><td colspan="5">no camera</td></tr>')
    body.append("</tbody></table>")
    return document(f"mirror-supervisor coverage {window}", "".join(body), policy_meta=True)


def _row(cam: CameraCoverage) -> str:
    drawn = tl.svg(timeline_of(cam), f"timeline of {cam.id}")
    if cam.problem:
        drawn += f'<span class="small bad">{escape(cam.problem)}</span>'
    if cam.primary is not None:
        p = cam.primary
        drawn += (f'<span class="small">only in the primary {escape(tl.length(p.only_primary_seconds))}, only in the '
                  f"mirror {escape(tl.length(p.only_mirror_seconds))}, in both {escape(tl.length(p.both_seconds))}"
                  "</span>")
    return (f'<tr class="camera" data-camera="{escape(cam.id)}"><td class="id">{escape(cam.id)}</td>'
            f"<td>{cam.coverage * 100:.2f}%<br><span class=\"small\">{escape(tl.length(cam.covered_seconds))}</span></td>"
            f"<td>{len(cam.gaps)}</td><td>{len(cam.invalid)}</td><td class=\"timeline\">{drawn}{_listed(cam)}</td></tr>")


def _listed(cam: CameraCoverage) -> str:
    items = [f"<li>gap {escape(tl.stamp(g.start))} to {escape(tl.stamp(g.end))} ({escape(tl.length(g.seconds))})</li>"
             for g in cam.gaps]
    items += [f"<li>invalid {escape(name)}</li>" for name in cam.invalid]
    if not items:
        return ""
    more = len(items) - MAX_LISTED
    tail = f"<li>... and {more} more</li>" if more > 0 else ""
    return (f'<details><summary class="small">{len(cam.gaps)} gaps, {len(cam.invalid)} invalid segments</summary>'
            f'<ul class="small">{"".join(items[:MAX_LISTED])}{tail}</ul></details>')
