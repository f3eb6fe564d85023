"""The cluster's settings: how their text is read, and the rules between them.

``--shard I/N`` (this host is number I, 0-based, of N), ``--copies K`` (1 to N), ``--peers``
(every host's ``--metrics-listen`` address in host order, this host's included) and
``--peer-timeout S``. All four are fixed until a restart. Each parser raises ValueError with a
reason that follows the setting's name in a one-line error, like every other setting
(``setting_values.py``); :func:`check` raises ValueError naming the setting for the rules
between them. Nothing here imports :mod:`..settings` (which imports this).
"""

from __future__ import annotations

from typing import Any

from .. import setting_values as values

MAX_HOSTS = 64  # far beyond any real mirror cluster; keeps a typo from costing a line of 10**9 hosts
MAX_COPIES = 8
FIXED = ("shard", "copies", "peers", "peer_timeout")  # cannot change on reload
FLAG = {"shard": "--shard", "copies": "--copies", "peers": "--peers", "peer_timeout": "--peer-timeout"}


def shard(value: str) -> tuple[int, int]:
    """``I/N`` with 0 <= I < N."""
    text = values.text(value)
    index, sep, count = text.partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise ValueError(f"{text!r} is not I/N (this host's number, 0-based, of N hosts; e.g. 0/3)")
    i, n = int(index), int(count)
    if not 1 <= n <= MAX_HOSTS:
        raise ValueError(f"{text!r}: N must be 1 to {MAX_HOSTS}")
    if i >= n:
        raise ValueError(f"{text!r}: the host number must be 0 to {n - 1} (0-based)")
    return i, n


def copies(value: str) -> int:
    text = values.text(value)
    if not text.isdigit() or not 1 <= int(text) <= MAX_COPIES:
        raise ValueError(f"{text!r} is not a number of copies from 1 to {MAX_COPIES}")
    return int(text)


def peers(value: str) -> tuple[tuple[str, int], ...]:
    """``HOST:PORT,HOST:PORT,...`` in host order."""
    text = values.text(value)
    found = []
    for number, item in enumerate(text.split(",")):
        try:
            found.append(values.host_port(item))
        except ValueError as exc:
            raise ValueError(f"entry {number} (host {number}): {exc}") from None
    return tuple(found)


def check(settings: Any) -> None:
    """The rules between the four settings (and ``--metrics-listen``); ValueError names one."""
    n = settings.shard[1] if settings.shard is not None else 1
    if settings.copies > n:
        if settings.shard is None:
            raise ValueError(f"--copies: {settings.copies} copies need --shard I/N with N >= {settings.copies}")
        raise ValueError(f"--copies: {settings.copies} is more than the {n} hosts of --shard")
    if settings.peers is None:
        return
    if settings.shard is None:
        raise ValueError("--peers: needs --shard I/N (which of the peers this host is)")
    if len(settings.peers) != n:
        raise ValueError(f"--peers: {len(settings.peers)} addresses for the {n} hosts of --shard "
                         f"{settings.shard[0]}/{n} (one per host, in host order, this host's included)")
    if settings.metrics_listen is None:
        raise ValueError("--peers: needs --metrics-listen HOST:PORT (this host's entry in --peers: its peers "
                         "read its health document there)")


def reload_problem(old: Any, new: Any) -> str | None:
    """Why a reload cannot take ``new`` (the cluster's settings are fixed until a restart)."""
    for field in FIXED:
        if getattr(old, field) != getattr(new, field):
            return f"{FLAG[field]}: cannot change while running (every host's table depends on it); restart instead"
    return None


def describe(settings: Any) -> str | None:
    """One line for ``check``: this host's place, or None without ``--shard``."""
    if settings.shard is None:
        return None
    i, n = settings.shard
    text = f"cluster: this is host {i} of {n} (0-based), {settings.copies} cop{'y' if settings.copies == 1 else 'ies'} " \
           "of every camera"
    if settings.peers is None:
        return text + "; no --peers: fixed shares, no failover"
    addresses = ", ".join(f"{host}:{port}" for host, port in settings.peers)
    return text + f"; peers {addresses}; a peer silent for {settings.peer_timeout:g}s is down"
