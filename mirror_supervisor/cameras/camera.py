"""The camera row and its URL (docs/design.md, "Database" and "Recorded URL").

The NVR owns the ``cameras`` table and its rows are not trusted: any column may be NULL, of the
wrong type, hostile (an id with ``/`` or ``..``, a ``file:`` URL) or not even text (bytes that are
not UTF-8, a BLOB). Parsing turns one row into a :class:`Camera` whose ``problem`` says, in one
line, why it cannot be recorded; one bad row never affects another. Masking, which every log
line needs, is in :mod:`masking`.

No message built here ever quotes the value of a column that can hold a credential (username,
password, address, the stream URLs): those texts end up in the log and in status.json.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ..plumbing.masking import mask, url_secrets

ALLOWED_SCHEMES = ("rtsp", "rtsps", "http", "https")
# The columns of the NVR's table that mirroring reads; all others are ignored.
COLUMNS = (
    "id", "name", "vendor", "address", "rtsp_port", "username", "password", "main_stream_url",
    "sub_stream_url", "record_stream", "segment_seconds", "retention_hours", "record_audio",
    "record_enabled", "mirror_enabled", "enabled",
)
DEFAULT_PORT = 554
DEFAULT_SEGMENT_SECONDS = 60
MIN_SEGMENT_SECONDS = 2
# The stall timeout is three segments: a segment length of days would switch stall detection off.
MAX_SEGMENT_SECONDS = 3600
MAX_ID_LENGTH = 128

VENDOR_PATHS = {
    "hikvision": {"main": "/Streaming/Channels/101", "sub": "/Streaming/Channels/102"},
    "dahua": {
        "main": "/cam/realmonitor?channel=1&subtype=0",
        "sub": "/cam/realmonitor?channel=1&subtype=1",
    },
}

# A safe id is a single path component: word characters, dots and dashes, starting with a word
# character (so never "", ".", ".." or a hidden name), no separators or control characters.
_SAFE_ID = re.compile(r"[^\W][\w.\-]*")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_UNSAFE_URL_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")
_OFF_WORDS = {"enabled": "disabled", "record_enabled": "recording off", "mirror_enabled": "mirror off"}


@functools.lru_cache(maxsize=4096)
def _encode(text: str) -> str:
    """Percent-encode all but RFC 3986 unreserved characters (cached: the same credentials come
    back on every poll, and quote() was a third of parsing a row)."""
    return quote(text, safe="")


@dataclass(slots=True)
class Camera:
    """One camera as far as mirroring cares; ``problem`` is None when it can be recorded.

    Treated as immutable but not declared frozen: a frozen dataclass costs 4 us per instance,
    which was a fifth of reading a 1,000-row table. ``url`` and ``secrets`` stay out of repr() so
    that a Camera printed by accident never shows a password.
    """

    id: str
    name: str = ""
    mirrored: bool = False
    not_mirrored_because: str = ""
    url: str | None = field(default=None, repr=False)
    segment_seconds: int = DEFAULT_SEGMENT_SECONDS
    record_audio: bool = False
    retention_hours: Any = 24
    problem: str | None = None
    warnings: tuple[str, ...] = ()
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def masked_url(self) -> str:
        return mask(self.url or "", self.secrets)


def is_safe_id(camera_id: str) -> bool:
    return len(camera_id) <= MAX_ID_LENGTH and _SAFE_ID.fullmatch(camera_id) is not None


def check_url(url: str) -> str | None:
    """Why ffmpeg must not be given ``url``, or None when it is an acceptable network input.

    The reasons never quote the URL: it may hold a password.
    """
    if url.startswith("-"):
        return "URL starts with '-' (ffmpeg would read it as an option)"
    if _UNSAFE_URL_CHARS.search(url):
        return "URL contains whitespace or control characters"
    scheme = _SCHEME.match(url)
    if scheme is None:
        return "URL has no scheme (allowed: " + ", ".join(ALLOWED_SCHEMES) + ")"
    name = scheme.group(1).lower()
    if name not in ALLOWED_SCHEMES or not url[scheme.end():].startswith("//"):
        shown = name if len(name) <= 20 else name[:20] + "..."
        return f"URL scheme {shown!r} is refused (allowed: " + ", ".join(ALLOWED_SCHEMES) + ")"
    after = url[scheme.end() + 2:]
    authority = re.split(r"[/?#]", after, maxsplit=1)[0]
    if "@" in after[len(authority):]:
        # rtsp://user:12/34@host/...: ffmpeg ends the host part at the first '/', '?' or '#', so it
        # would send the request (password included) to host "user", and no rule can tell the
        # password from a path. Refuse rather than leak it.
        return ("URL has an '@' after its host part: a '/', '?' or '#' in the password must be "
                "percent-encoded (%2F, %3F, %23), and an '@' in the path as %40")
    host_port = authority.rsplit("@", 1)[-1]
    if not host_port or host_port.startswith(":"):
        return "URL has no host"
    return None


def build_url(
    vendor: str, address: str | None, port: int, stream: str, username: str | None, password: str | None
) -> tuple[str | None, str | None]:
    """Build the vendor URL; returns (url, None) or (None, reason)."""
    paths = VENDOR_PATHS.get(vendor)
    if paths is None:
        return None, f"no URL: vendor {vendor[:40]!r} has no known stream path and {stream}_stream_url is empty"
    host, reason = _host(address)
    if reason:
        return None, reason
    userinfo = ""
    if username:
        userinfo = _encode(username)
        if password:
            userinfo += ":" + _encode(password)
        userinfo += "@"
    return f"rtsp://{userinfo}{host}:{port}{paths[stream]}", None


def _host(address: str | None) -> tuple[str, str | None]:
    """The address as a URL host, or why it is not one.

    The address column may hold credentials pasted by mistake (``user:pw@10.0.0.7``), so no
    reason quotes it: each names the offending character instead.
    """
    host = (address or "").strip()
    if not host:
        return "", "no URL: address is empty"
    if "@" in host:
        return "", ("address contains '@': it must be a host name or IP address only; the user name "
                    "and password belong in the username and password columns")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in host):
        return "", "address contains whitespace or control characters"
    for ch in "/?#\\%":
        if ch in host:
            return "", f"address contains {ch!r}: it must be a host name or IP address only"
    if host.startswith("["):
        inner = host[1:-1] if host.endswith("]") else ""
        return (host, None) if _is_ipv6(inner) else ("", "address starts with '[' but is not a bracketed IPv6 address")
    if ":" in host:
        if _is_ipv6(host):
            return f"[{host}]", None
        return "", "address contains ':' but is not an IPv6 address (a port belongs in rtsp_port)"
    return host, None


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def parse_row(row: Mapping[str, Any]) -> Camera:
    """Turn one ``cameras`` row into a Camera; never raises for bad data, reports it instead."""
    camera_id, id_problem = _id(row.get("id"))
    name = _shown(row.get("name")) or ""
    # Retention belongs to every row, mirrored or not: its old mirror files must still age out.
    retention = row.get("retention_hours", 24)
    warnings: list[str] = []

    flags, errors = {}, []
    for column, default in (("enabled", True), ("record_enabled", True), ("mirror_enabled", False)):
        value, error = _flag(row.get(column), default)
        if error:
            errors.append(f"{column}: {error}")
        flags[column] = value
    reasons = [f"{word} ({column} = 0)" for column, word in _OFF_WORDS.items()
               if not flags[column] and not any(e.startswith(column + ":") for e in errors)]
    if reasons:
        return Camera(camera_id, name, retention_hours=retention, not_mirrored_because=", ".join(reasons))
    if errors:
        # Maybe meant to be mirrored: reported (logged, status, check) rather than silently skipped.
        return Camera(camera_id, name, mirrored=True, retention_hours=retention, problem="; ".join(errors))

    if id_problem or not is_safe_id(camera_id):
        shown = camera_id[:40] + ("..." if len(camera_id) > 40 else "")
        return Camera(
            camera_id, name, mirrored=True, retention_hours=retention,
            problem=id_problem or f"unsafe id {shown!r}: must be 1-{MAX_ID_LENGTH} letters, digits, '_', '.', '-' "
            "and start with a letter or digit",
        )

    segment_seconds = _segment_seconds(row.get("segment_seconds"), warnings)
    record_audio, error = _flag(row.get("record_audio"), False)
    if error:
        warnings.append(f"record_audio: {error}; audio is dropped")
        record_audio = False
    stream = _stream(row.get("record_stream"), warnings)
    url, reason, secrets = _url(row, stream, warnings)
    return Camera(
        id=camera_id,
        name=name,
        mirrored=True,
        url=url if reason is None else None,
        segment_seconds=segment_seconds,
        record_audio=bool(record_audio),
        retention_hours=retention,
        problem=mask(reason, secrets) if reason else None,
        warnings=tuple(mask(warning, secrets) for warning in warnings),
        secrets=secrets,
    )


def _url(row: Mapping[str, Any], stream: str, warnings: list[str]) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(url, None, secrets) or (None, reason, secrets): the explicit URL, else the vendor one.

    A column that would go into the URL but is not valid text refuses the row: guessing would
    send a wrong password or connect to a wrong host, and the raw bytes must not be shown.
    """
    password, password_problem = _text(row.get("password"), "password")
    secrets: tuple[str, ...] = (password, _encode(password)) if password else ()
    explicit, problem = _text(row.get(f"{stream}_stream_url"), f"{stream}_stream_url")
    if problem:
        return None, problem, secrets
    if explicit and explicit.strip():
        url = explicit.strip()
        secrets += url_secrets(url)
        return url, check_url(url), secrets

    username, problem = _text(row.get("username"), "username")
    address, address_problem = _text(row.get("address"), "address")
    if address:
        secrets += url_secrets("rtsp://" + address.strip())
    problem = problem or password_problem or address_problem
    if problem:
        return None, problem, secrets
    if password and not username:
        warnings.append("password is set but username is empty; the password is not used")
    port, reason = _port(row.get("rtsp_port"))
    if reason:
        return None, reason, secrets
    vendor = (_shown(row.get("vendor")) or "generic").strip().lower() or "generic"
    built, reason = build_url(vendor, address, port, stream, username, password)
    return built, reason, secrets


def _id(value: Any) -> tuple[str, str | None]:
    """The id as text, and a problem when it is not valid text (then shown with escapes, so no
    raw byte reaches a log line, and distinct bad ids stay distinct)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8"), None
        except UnicodeDecodeError:
            shown = value.decode("utf-8", "backslashreplace")
            return shown, f"id {shown[:40]!r} is not valid UTF-8 text"
    return ("" if value is None else str(value)), None


def _text(value: Any, column: str) -> tuple[str | None, str | None]:
    """A column used to build the URL: its text, or a problem naming the column but never quoting
    the value (these columns hold credentials). A BLOB that is valid UTF-8 is taken as text."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8"), None
        except UnicodeDecodeError:
            return None, f"{column} is not valid UTF-8 text"
    if value is None:
        return None, None
    return str(value), None


def _shown(value: Any) -> str | None:
    """A column that is only shown or compared (name, vendor, flags, numbers): bytes that are not
    UTF-8 become U+FFFD, which is harmless to show and keeps the row usable."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _flag(value: Any, default: bool) -> tuple[bool, str | None]:
    if value is None:
        return default, None
    if isinstance(value, bool):
        return value, None
    if isinstance(value, (int, float)):
        return value != 0, None
    word = (_shown(value) or "").strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True, None
    if word in ("0", "false", "no", "off", ""):
        return False, None
    return default, f"unreadable value {(_shown(value) or '')[:20]!r}"


def _segment_seconds(value: Any, warnings: list[str]) -> int:
    if value is None:
        return DEFAULT_SEGMENT_SECONDS
    text = (_shown(value) or "").strip()
    try:
        seconds = int(float(text))
    except (ValueError, OverflowError):
        warnings.append(f"segment_seconds {text[:20]!r} is not a number; using {DEFAULT_SEGMENT_SECONDS}")
        return DEFAULT_SEGMENT_SECONDS
    if seconds < MIN_SEGMENT_SECONDS:
        warnings.append(f"segment_seconds {seconds} is below {MIN_SEGMENT_SECONDS}; using {MIN_SEGMENT_SECONDS}")
        return MIN_SEGMENT_SECONDS
    if seconds > MAX_SEGMENT_SECONDS:
        warnings.append(f"segment_seconds {text[:20]} is above {MAX_SEGMENT_SECONDS}; using {MAX_SEGMENT_SECONDS}")
        return MAX_SEGMENT_SECONDS
    return seconds


def _stream(value: Any, warnings: list[str]) -> str:
    stream = (_shown(value) or "main").strip().lower() or "main"
    if stream not in ("main", "sub"):
        warnings.append(f"record_stream {stream[:20]!r} is neither 'main' nor 'sub'; using 'main'")
        return "main"
    return stream


def _port(value: Any) -> tuple[int, str | None]:
    if value is None:
        return DEFAULT_PORT, None
    text = (_shown(value) or "").strip()
    try:
        port = int(text)
    except ValueError:
        return 0, f"rtsp_port {text[:20]!r} is not a number"
    if not 1 <= port <= 65535:
        return 0, f"rtsp_port {port} is outside 1-65535"
    return port, None
