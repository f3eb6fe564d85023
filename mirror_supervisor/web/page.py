"""The status page as HTML: a header about this host, links choosing the window, and one row per
camera with its state, newest segment, restarts, timeline and last error (under the timeline,
where a long one has the room to wrap).

Pure: it gets everything it shows (:class:`View`) and returns text. Every value that comes from
the NVR's database or the master's files (ids, names, errors, paths, states) is escaped
(:func:`.document.escape`), in attributes as in text; links are built from our own parameters,
percent-encoded, then escaped. Nothing on the page acts: no form, no button, no script.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..cameras.camera import is_safe_id
from . import timeline as tl
from .document import document, escape
from .state import CameraRow, Fact

WINDOWS = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0}
WINDOW_NAMES = {"1h": "1 h", "24h": "24 h", "7d": "7 d"}
DEFAULT_WINDOW = "24h"
REFRESH = 30  # seconds: the page reloads itself this often (a meta refresh)
REFRESH_READING = 5  # while some timeline is still being read


@dataclass
class Row:
    camera: CameraRow
    timeline: tl.Timeline | None  # None: no timeline (an id the mirror never uses as a directory)
    problem: str | None = None  # what the read said of the camera (e.g. no directory yet)


@dataclass
class View:
    host: str
    facts: list[Fact]
    window: str
    now: float
    rows: list[Row] = field(default_factory=list)
    cameras: tuple[str, ...] = ()  # the camera filter, as asked
    primary: bool = False  # the timelines compare with the primary
    primary_available: bool = False  # a primary directory is known (HELDAR_RECORDINGS_DIR)
    notes: list[str] = field(default_factory=list)

    @property
    def reading(self) -> bool:
        return any(r.timeline is not None and r.timeline.of_kind("pending") and
                   sum(s.seconds for s in r.timeline.of_kind("pending")) > 60 for r in self.rows)


def link(window: str, cameras: Sequence[str] = (), primary: bool = False) -> str:
    """A query string for the page (percent-encoded; escape it for an attribute)."""
    fields = [("window", window), *(("camera", cid) for cid in cameras)] + ([("primary", "1")] if primary else [])
    return "?" + urllib.parse.urlencode(fields)


def render(view: View) -> str:
    refresh = REFRESH_READING if view.reading else REFRESH
    body = [_header(view, refresh), _navigation(view), tl.legend(view.primary)]
    if view.notes:
        body.append('<ul class="notes">' + "".join(f"<li>{escape(note)}</li>" for note in view.notes) + "</ul>")
    body.append(_table(view))
    return document(f"mirror-supervisor on {view.host}", "".join(body), refresh=refresh)


def _header(view: View, refresh: int) -> str:
    bad = ' class="bad"'
    facts = "".join(f"<dt>{escape(f.label)}</dt><dd{bad if f.bad else ''}>{escape(f.text)}</dd>" for f in view.facts)
    shown = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(view.now))
    return (f'<header><h1>mirror-supervisor on <span class="host">{escape(view.host)}</span></h1>'
            f'<dl class="facts">{facts}<dt>page</dt><dd>built {escape(shown)}; reloads itself every {refresh} s'
            "</dd></dl></header>")


def _navigation(view: View) -> str:
    parts = ["<nav>window:"]
    for window, name in WINDOW_NAMES.items():
        if window == view.window:
            parts.append(f' <strong class="window">last {escape(name)}</strong>')
        else:
            parts.append(f' <a href="{escape(link(window, view.cameras, view.primary))}">last {escape(name)}</a>')
    if view.cameras:
        parts.append(f' | <a href="{escape(link(view.window, (), view.primary))}">all cameras</a>')
    if view.primary_available:
        other = "mirror only" if view.primary else "compare with the primary"
        parts.append(f' | <a href="{escape(link(view.window, view.cameras, not view.primary))}">{other}</a>')
    return "".join(parts) + "</nav>"


def _table(view: View) -> str:
    head = ("<table><thead><tr><th>camera</th><th>state</th><th>newest segment</th><th>restarts</th>"
            f"<th>timeline, last {escape(WINDOW_NAMES[view.window])} (UTC); last error</th></tr></thead><tbody>")
    if not view.rows:
        return head + '<tr><td colspan="5">no camera</td></tr></tbody></table>'
    return head + "".join(_row(view, row) for row in view.rows) + "</tbody></table>"


def _row(view: View, row: Row) -> str:
    cam = row.camera
    name = f'<br><span class="name">{escape(cam.name)}</span>' if cam.name else ""
    camera = (f'<a href="{escape(link(view.window, (cam.id,), view.primary))}">{escape(cam.id)}</a>{name}'
              if is_safe_id(cam.id) else f"{escape(cam.id)}{name}")  # a filter for it would be refused
    newest = (f'{escape(cam.newest)}<br><span class="small">{escape(cam.newest_age)}</span>' if cam.newest
              else f'<span class="small">{escape(cam.newest_age)}</span>')
    if row.timeline is None:
        drawn = '<span class="small">no timeline: not an id the mirror keeps a directory for</span>'
    else:
        drawn = tl.svg(row.timeline, f"timeline of {cam.id}")
        if row.problem:
            drawn += f'<div class="small">{escape(row.problem)}</div>'
    error = f'<div class="error">last error: {escape(cam.last_error)}</div>' if cam.last_error else ""
    return (f'<tr class="camera" data-camera="{escape(cam.id)}"><td class="id">{camera}</td>'
            f'<td class="state {escape(cam.state_class)}">{escape(cam.state)}</td><td class="newest">{newest}</td>'
            f'<td class="restarts">{escape(cam.restarts)}</td><td class="timeline">{drawn}{error}</td></tr>')
