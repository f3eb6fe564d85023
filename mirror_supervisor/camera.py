"""The camera row and its URL (SPEC sections 2 and 3).

The NVR owns the ``cameras`` table and its rows are not trusted: any column may be NULL, of the
wrong type, or hostile (an id with ``/`` or ``..``, a ``file:`` URL). Parsing turns one row into a
:class:`Camera` whose ``problem`` says, in one line, why it cannot be recorded; one bad row never
affects another. Masking lives here too because the URL is the only thing that carries secrets.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

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
# userinfo of any URL in free text: the last '@' before the first '/' after '://'.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^\s/]*@")
_UNSAFE_URL_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")
_SHORTEST_REDACTED_SECRET = 4
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
    which was a fifth of reading a 1,000-row table.
    """

    id: str
    name: str = ""
    mirrored: bool = False
    not_mirrored_because: str = ""
    url: str | None = None
    segment_seconds: int = DEFAULT_SEGMENT_SECONDS
    record_audio: bool = False
    retention_hours: Any = 24
    problem: str | None = None
    warnings: tuple[str, ...] = ()
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def masked_url(self) -> str:
        return mask(self.url or "", self.secrets)


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """Hide credentials: the userinfo of every URL in ``text``, then any known secret verbatim.

    The literal pass catches what no URL rule can, e.g. a password that ffmpeg echoes back after
    decoding it, or an explicit URL whose password holds an unencoded '/'.
    """
    text = _USERINFO.sub(r"\1***@", text)
    for secret in secrets:
        if len(secret) >= _SHORTEST_REDACTED_SECRET:
            text = text.replace(secret, "***")
    return text


def is_safe_id(camera_id: str) -> bool:
    return len(camera_id) <= MAX_ID_LENGTH and _SAFE_ID.fullmatch(camera_id) is not None


def check_url(url: str) -> str | None:
    """Why ffmpeg must not be given ``url``, or None when it is an acceptable network input."""
    if url.startswith("-"):
        return "URL starts with '-' (ffmpeg would read it as an option)"
    if _UNSAFE_URL_CHARS.search(url):
        return "URL contains whitespace or control characters"
    scheme = _SCHEME.match(url)
    if scheme is None:
        return "URL has no scheme (allowed: " + ", ".join(ALLOWED_SCHEMES) + ")"
    name = scheme.group(1).lower()
    if name not in ALLOWED_SCHEMES or not url[scheme.end():].startswith("//"):
        return f"URL scheme {name!r} is refused (allowed: " + ", ".join(ALLOWED_SCHEMES) + ")"
    after = url[scheme.end() + 2:]
    authority = after.split("/", 1)[0]
    host_port = authority.rsplit("@", 1)[-1]
    if not host_port or host_port.startswith(":"):
        return "URL has no host"
    port = host_port.rpartition(":")[2] if ":" in host_port and not host_port.endswith("]") else ""
    if "@" not in authority and "@" in after.split("?", 1)[0] and port and not port.isdigit():
        # rtsp://user:pa/ss@host/...: ffmpeg would take "user" for the host, and no masking rule
        # can find the password; refuse rather than leak it into logs.
        return "URL password seems to contain an unencoded '/'; percent-encode it as %2F"
    return None


def build_url(
    vendor: str, address: str | None, port: int, stream: str, username: str | None, password: str | None
) -> tuple[str | None, str | None]:
    """Build the vendor URL; returns (url, None) or (None, reason)."""
    paths = VENDOR_PATHS.get(vendor)
    if paths is None:
        return None, f"no URL: vendor {vendor!r} has no known stream path and {stream}_stream_url is empty"
    host = (address or "").strip()
    if not host:
        return None, "no URL: address is empty"
    if any(ch in host for ch in "/@?#") or any(ch.isspace() or ord(ch) < 0x20 for ch in host):
        return None, f"address {host!r} is not a host name or IP address"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # a bare IPv6 address
    userinfo = ""
    if username:
        userinfo = _encode(username)
        if password:
            userinfo += ":" + _encode(password)
        userinfo += "@"
    return f"rtsp://{userinfo}{host}:{port}{paths[stream]}", None


def parse_row(row: Mapping[str, Any]) -> Camera:
    """Turn one ``cameras`` row into a Camera; never raises for bad data, reports it instead."""
    camera_id = "" if row.get("id") is None else str(row["id"])
    name = "" if row.get("name") is None else str(row["name"])
    # Retention belongs to every row, mirrored or not: its old mirror files must still age out.
    retention = row.get("retention_hours", 24)
    warnings: list[str] = []

    flags = {}
    for column, default in (("enabled", True), ("record_enabled", True), ("mirror_enabled", False)):
        value, error = _flag(row.get(column), default)
        if error:
            return Camera(camera_id, name, retention_hours=retention, problem=f"{column}: {error}")
        flags[column] = value
    reasons = [f"{word} ({column} = 0)" for column, word in _OFF_WORDS.items() if not flags[column]]
    if reasons:
        return Camera(camera_id, name, retention_hours=retention, not_mirrored_because=", ".join(reasons))

    if not is_safe_id(camera_id):
        shown = camera_id[:40] + ("..." if len(camera_id) > 40 else "")
        return Camera(
            camera_id, name, mirrored=True, retention_hours=retention,
            problem=f"unsafe id {shown!r}: must be 1-{MAX_ID_LENGTH} letters, digits, '_', '.', '-' "
            "and start with a letter or digit",
        )

    segment_seconds = _segment_seconds(row.get("segment_seconds"), warnings)
    record_audio, error = _flag(row.get("record_audio"), False)
    if error:
        warnings.append(f"record_audio: {error}; audio is dropped")
        record_audio = False
    stream = _stream(row.get("record_stream"), warnings)
    username = _optional_text(row.get("username"))
    password = _optional_text(row.get("password"))
    secrets = (password, _encode(password)) if password else ()

    explicit = _optional_text(row.get(f"{stream}_stream_url"))
    if explicit and explicit.strip():
        url: str | None = explicit.strip()
        reason = check_url(url)
        secrets += _explicit_password(url)
    else:
        port, reason = _port(row.get("rtsp_port"))
        url = None
        if reason is None:
            vendor = (_optional_text(row.get("vendor")) or "generic").strip().lower() or "generic"
            url, reason = build_url(vendor, _optional_text(row.get("address")), port, stream, username, password)
    return Camera(
        id=camera_id,
        name=name,
        mirrored=True,
        url=url if reason is None else None,
        segment_seconds=segment_seconds,
        record_audio=bool(record_audio),
        retention_hours=retention,
        problem=mask(reason, secrets) if reason else None,
        warnings=tuple(warnings),
        secrets=secrets,
    )


def _explicit_password(url: str) -> tuple[str, ...]:
    """The password part of an explicit URL, so it is redacted even where no URL surrounds it."""
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    if "@" not in rest:
        return ()
    userinfo = rest.rsplit("@", 1)[0]
    if ":" not in userinfo:
        return ()
    password = userinfo.split(":", 1)[1]
    return tuple({password, unquote(password)} - {""})


def _optional_text(value: Any) -> str | None:
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
    word = str(value).strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True, None
    if word in ("0", "false", "no", "off", ""):
        return False, None
    return default, f"unreadable value {str(value)[:20]!r}"


def _segment_seconds(value: Any, warnings: list[str]) -> int:
    if value is None:
        return DEFAULT_SEGMENT_SECONDS
    try:
        seconds = int(float(str(value).strip()))
    except (ValueError, OverflowError):
        warnings.append(f"segment_seconds {str(value)[:20]!r} is not a number; using {DEFAULT_SEGMENT_SECONDS}")
        return DEFAULT_SEGMENT_SECONDS
    if seconds < MIN_SEGMENT_SECONDS:
        warnings.append(f"segment_seconds {seconds} is below {MIN_SEGMENT_SECONDS}; using {MIN_SEGMENT_SECONDS}")
        return MIN_SEGMENT_SECONDS
    return seconds


def _stream(value: Any, warnings: list[str]) -> str:
    stream = (_optional_text(value) or "main").strip().lower() or "main"
    if stream not in ("main", "sub"):
        warnings.append(f"record_stream {stream[:20]!r} is neither 'main' nor 'sub'; using 'main'")
        return "main"
    return stream


def _port(value: Any) -> tuple[int, str | None]:
    if value is None:
        return DEFAULT_PORT, None
    try:
        port = int(str(value).strip())
    except ValueError:
        return 0, f"rtsp_port {str(value)[:20]!r} is not a number"
    if not 1 <= port <= 65535:
        return 0, f"rtsp_port {port} is outside 1-65535"
    return port, None
