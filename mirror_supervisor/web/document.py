"""The HTML document around the page and the ``coverage --html`` file: its head, its one style
sheet, and the security policy that forbids everything the document does not use.

The document has no script, no external resource and no style attribute: one ``<style>`` element
whose SHA-256 the Content-Security-Policy names, so no injected style or element could load or run
anything. The favicon is an empty ``data:`` URL (so a browser asks for no ``/favicon.ico``, which
would be a 404 in its log), hence ``img-src data:``. Every text put into the document goes through
:func:`escape`, attributes included.
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Any

from .timeline import legend_css

STYLE = (
    "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:16px 20px;"
    "color:#212121;background:#fafafa}"
    "h1{font-size:20px;margin:0 0 8px}h1 .host{font-weight:700}"
    ".facts{display:grid;grid-template-columns:max-content 1fr;gap:1px 14px;margin:0 0 10px}"
    ".facts dt{font-weight:600;color:#555}.facts dd{margin:0}"
    ".bad{color:#b71c1c;font-weight:600}"
    "nav{margin:6px 0}nav a,nav strong{margin-right:10px}"
    ".legend{list-style:none;padding:0;margin:4px 0 10px;display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12px}"
    ".swatch{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-2px;"
    "border:1px solid rgba(0,0,0,.2)}"
    "table{border-collapse:collapse}"
    "th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e0e0e0;vertical-align:top}"
    "th{font-size:12px;color:#555;font-weight:600}"
    ".state{font-weight:600}.state.ok{color:#2e7d32}.state.warn{color:#8d6e00}.state.bad{color:#b71c1c}"
    ".name,.small{font-size:12px;color:#555}"
    ".error{font-size:12px;color:#b71c1c;max-width:600px;overflow-wrap:anywhere;margin-top:2px}"
    "svg.timeline{display:block}.notes{color:#555;font-size:12px}"
    + legend_css()
)
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
# What the document may use: its own style sheet and a data: favicon; nothing else, from nowhere.
POLICY = (f"default-src 'none'; style-src '{STYLE_HASH}'; img-src data:; base-uri 'none'; "
          "form-action 'none'")
CSP = POLICY + "; frame-ancestors 'none'"  # frame-ancestors only works as a header, not in <meta>
HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)
CONTENT_TYPE = "text/html; charset=utf-8"


def escape(value: Any) -> str:
    """Any value as HTML text, safe in element content and in quoted attributes alike."""
    return html.escape(str(value), quote=True)


def document(title: str, body: str, refresh: int | None = None, policy_meta: bool = False) -> str:
    """A whole HTML document. ``refresh``: seconds until the browser loads it again (a meta
    refresh, no script); ``policy_meta``: the policy in a ``<meta>`` element too, for a file that
    is opened without our headers (``coverage --html``)."""
    head = ['<!doctype html>', '<html lang="en"><head><meta charset="utf-8">']
    if policy_meta:
        head.append(f'<meta http-equiv="Content-Security-Policy" content="{escape(POLICY)}">')
    if refresh is not None:
        head.append(f'<meta http-equiv="refresh" content="{int(refresh)}">')
    head += ['<meta name="viewport" content="width=device-width, initial-scale=1">',
             '<meta name="referrer" content="no-referrer">', f"<title>{escape(title)}</title>",
             '<link rel="icon" href="data:,">', f"<style>{STYLE}</style></head>"]
    return "".join(head) + f"<body>{body}</body></html>\n"
