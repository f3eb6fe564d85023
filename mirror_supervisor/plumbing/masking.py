"""Credentials out of every text we show: log lines, status, ``check``, process titles
(docs/design.md, "Recorded URL", masking).

It sits at the bottom of the package because every log line passes through it; only the
camera's URL columns carry secrets, and :mod:`camera` hands over what they hold
(:func:`url_secrets`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

# userinfo of any URL in free text: everything from '://' to the last '@' before whitespace. Wider
# than the RFC's authority on purpose: a password with an unencoded '/', '?' or '#' (or printed
# decoded) still ends at its '@', and hiding part of a path is a small price for never showing it.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)\S*@")
# Password-like parameters (some cameras take ?user=admin&password=x, or put them in the path).
_SECRET_PARAM = re.compile(r"(?i)((?:pass(?:word|wd|phrase)?|pwd|psw|secret|token)=)[^&;#\s]*")
_SHORTEST_REDACTED_SECRET = 4


# Replacements as functions, not templates: a template (r"\1***") is expanded by the ``re``
# module's Python code at every match, whose pages every worker would copy.
def _keep_scheme(match: re.Match[str]) -> str:
    return match.group(1) + "***@"


def _keep_name(match: re.Match[str]) -> str:
    return match.group(1) + "***"


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """Hide credentials: the userinfo of every URL in ``text``, password-like parameters, then any
    known secret verbatim.

    The literal pass catches what no URL rule can, e.g. a password that ffmpeg echoes back after
    decoding it. Longer secrets go first, so that a secret inside another leaves nothing behind.
    """
    text = _USERINFO.sub(_keep_scheme, text)
    text = _SECRET_PARAM.sub(_keep_name, text)
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= _SHORTEST_REDACTED_SECRET:
            text = text.replace(secret, "***")
    return text


def url_secrets(url: str) -> tuple[str, ...]:
    """Every password ``url`` can express, as written and percent-decoded, so that it is redacted
    even where no URL surrounds it (ffmpeg may echo it decoded).

    The userinfo is taken as wide as :func:`mask` takes it: up to the last '@' before whitespace.
    Password-like query or path parameters count too.
    """
    found: set[str] = set()
    rest = url.split("://", 1)[-1].split(None, 1)[0] if url.strip() else ""
    if "@" in rest:
        userinfo = rest.rsplit("@", 1)[0]
        if ":" in userinfo:
            found.add(userinfo.split(":", 1)[1])
    for match in _SECRET_PARAM.finditer(url):
        found.add(match.group(0)[len(match.group(1)):])
    found |= {unquote(secret) for secret in found}
    return tuple(sorted(found - {""}))
