"""How each setting's text becomes its value: one parser per kind, each raising ValueError with
a reason that follows the setting's name in a one-line error ("--poll-interval: 'abc' is not a
number of seconds")."""

from __future__ import annotations

import pwd
from pathlib import Path


def text(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("is empty")
    return value


def path(value: str) -> Path:
    return Path(text(value))


def db_url(value: str) -> Path:
    """``HELDAR_DATABASE_URL`` is an sqlx URL: ``sqlite://data/x.db``, ``sqlite:///abs``, ``?mode=rwc``."""
    value = text(value)
    for prefix in ("sqlite://", "sqlite:"):
        if value.startswith(prefix):
            return path(value[len(prefix):].split("?", 1)[0])
    raise ValueError(f"{value!r} is not a sqlite:// URL")


def seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{value.strip()!r} is not a number of seconds") from None
    if not (0 < seconds <= 86400):
        raise ValueError(f"{value.strip()!r} must be more than 0 and at most 86400 seconds")
    return seconds


def user(value: str) -> str:
    name = text(value)
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise ValueError(f"{name!r} is not a user of this system") from None
    return name


def host_port(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9101`` for IPv6); the port 1-65535."""
    value = text(value)
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:9101)")
    return host, int(port)


def seconds_or_off(value: str) -> float:
    if value.strip() in ("0", "0.0"):
        return 0.0
    return seconds(value)


TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


def parse_bool(value: str) -> bool:
    word = value.strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise ValueError(f"{value.strip()!r} is not a boolean (true/false, 1/0, yes/no, on/off)")
