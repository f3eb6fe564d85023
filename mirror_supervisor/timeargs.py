"""Time and span arguments of the commands: ``coverage --since/--from/--to/--tolerance`` and
``stop --timeout``.

Each is a number the program can work with, or a one-line error naming its option
(:class:`SettingsError`: exit status 2, as for any bad setting), never a traceback. Times lie where
a segment name can: from 1970-01-01 (a camera host whose clock was never set names its segments
from there) to 9999-12-31 (names have four-digit years); spans are positive and finite, and a
``--since`` window must not reach back before 1970. NaN, infinities, ``1e400`` and negative
numbers are refused.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable

from .settings import SettingsError

EARLIEST = 0.0  # 1970-01-01T00:00:00Z
LATEST = 253402300799.0  # 9999-12-31T23:59:59Z
DEFAULT_SPAN = "24h"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_span(text: str) -> float:
    """``90s``, ``30m``, ``24h``, ``7d``, ``1w``, or bare seconds; ValueError with a reason otherwise."""
    text = text.strip().lower()
    unit = _UNITS.get(text[-1:]) if text else None
    number = text[:-1] if unit else text
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (90s, 30m, 24h, 7d, 1w or seconds)") from None
    if not math.isfinite(value) or not 0 < value <= LATEST - EARLIEST:
        raise ValueError(f"{text!r} is not a positive duration a recording can span")
    return value


def parse_time(text: str) -> float:
    """RFC 3339 (``2026-11-25T10:00:00Z``, an offset, or a space for the T); no zone means UTC.
    ValueError with a reason for anything else, or a time no segment name can hold."""
    shown = text.strip()
    try:
        moment = datetime.datetime.fromisoformat(shown.replace("z", "Z"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        epoch = moment.timestamp()
    except (ValueError, OverflowError):
        raise ValueError(f"{shown!r} is not an RFC 3339 time such as 2026-11-25T10:00:00Z") from None
    if not EARLIEST <= epoch <= LATEST:
        raise ValueError(f"{shown!r} is outside 1970-01-01 .. 9999-12-31 UTC, the times a segment name can hold")
    return epoch


def _option(option: str, parse: Callable[[str], float], text: str) -> float:
    try:
        return parse(text)
    except ValueError as exc:
        raise SettingsError(f"{option}: {exc}") from None


def window(since: str | None, from_: str | None, to: str | None, now: float) -> tuple[float, float]:
    """``coverage``'s window: ``--from`` .. ``--to``, or the ``--since`` span (default 24 h) up to ``now``."""
    if from_ is None and to is None:
        text = since or DEFAULT_SPAN
        span = _option("--since", parse_span, text)
        if now - span < EARLIEST:
            raise SettingsError(f"--since: {text.strip()!r} reaches back before 1970-01-01, "
                                "the earliest time a segment name can hold")
        return now - span, now
    if from_ is None:
        raise SettingsError("--from: missing (--to needs it; or give --since alone)")
    if to is None:
        raise SettingsError("--to: missing (--from needs it; or give --since alone)")
    start, end = _option("--from", parse_time, from_), _option("--to", parse_time, to)
    if end <= start:
        raise SettingsError(f"--to: {to.strip()!r} is not after --from {from_.strip()!r}")
    return start, end


def seconds(option: str, text: str, low: float, high: float) -> float:
    """A number of seconds from ``low`` to ``high`` (NaN and infinities never are)."""
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{option}: {text.strip()!r} is not a number of seconds") from None
    if not low <= value <= high:
        raise SettingsError(f"{option}: {text.strip()!r} must be from {low:g} to {high:g} seconds")
    return value
