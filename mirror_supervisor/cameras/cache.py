"""The camera cache: the last good read of the ``cameras`` table, kept on a local disk
(docs/design.md, "Camera cache").

A master that *starts* while the NVR's database cannot be read (missing, garbage, locked, a
column gone, its volume not answering) would otherwise know no camera and record nothing, from
a power cut or a dead NVR disk on, exactly when the mirror is the only copy. So after every good
read the master keeps the rows it read, in their raw column form, in
``<cache_dir>/cameras-<digest of the mirror dir>.json``; such a master records from that instead
(:class:`~.wanted.CameraSource` decides when), until the database reads again and wins.

- Raw values, not parsed cameras: cached rows go through the same parse and checks as rows read
  from the database, so a change in those rules applies to them too. Text that is not UTF-8 and
  BLOBs are kept as bytes (base64), non-finite floats by name.
- Written only when the rows change (compared with the last rows kept: an idle poll costs
  nothing, and a full read of an unchanged table one list comparison), durably (temporary file,
  fsync, rename, fsync of the directory), mode 0600 in a 0700 directory of the master's user:
  it holds the cameras' passwords as the NVR's database does. An unchanged table only has the
  file's mtime moved, at most every :data:`CONFIRM_EVERY`: the time the cache last matched the
  database, which is what "the cache of <time>" means.
- One file per mirror dir, so two masters on one host never record each other's cameras.
- A file that is missing, unreadable, of another format, damaged (its sha256 does not match) or
  written for another mirror dir is ignored with one log line; it never stops the master.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..plumbing import files, logs
from .camera import COLUMNS

if TYPE_CHECKING:  # imported where used: settings imports this module, and sqlite_utils is slow to load
    from .database import RawTable

FORMAT = 1
KIND = "mirror-supervisor camera cache"
FILE_MODE = 0o600  # the cameras' passwords, as in the NVR's database
DIR_MODE = 0o700
MAX_BYTES = 64 << 20  # far beyond any camera table; a bigger file is not ours
CONFIRM_EVERY = 600.0  # seconds between two mtime updates of an unchanged cache


class CacheError(Exception):
    """The cache file cannot be used; the message says why, in one line."""


def default_cache_dir() -> Path:
    """systemd's ``StateDirectory=`` (``$STATE_DIRECTORY``) when it set one; /var/lib for root;
    otherwise the user's state directory. Unlike the state dir in /run, it survives a reboot."""
    given = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if given:
        return Path(given)
    if os.geteuid() == 0:
        return Path("/var/lib/mirror-supervisor")
    xdg = os.environ.get("XDG_STATE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path(os.path.expanduser("~")) / ".local" / "state") / "mirror-supervisor"


def cache_path(cache_dir: Path, mirror_dir: Path | None) -> Path:
    digest = hashlib.sha256(str(mirror_dir).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return Path(cache_dir) / f"cameras-{digest}.json"


# -- the file -------------------------------------------------------------------------------------

def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if value is None or isinstance(value, str | int | float):
        return value
    raise CacheError(f"a value of type {type(value).__name__} cannot be cached")


def _decode(value: Any) -> Any:
    if value is None or isinstance(value, str | float) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, dict) and len(value) == 1:
        if isinstance(value.get("bytes"), str):
            try:
                return base64.b64decode(value["bytes"], validate=True)
            except ValueError:
                raise CacheError("a bytes value is not base64") from None
        if value.get("float") in ("nan", "inf", "-inf"):
            return float(value["float"])
    raise CacheError("a value of an unknown kind")


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("ascii")


def dump(table: RawTable, read_at: float, db: Path, mirror_dir: Path | None) -> bytes:
    """The file's bytes: the rows, their columns, where and when they were read, and a sha256."""
    document = {"kind": KIND, "format": FORMAT, "read_at": read_at, "db": str(db), "mirror_dir": str(mirror_dir),
                "columns": list(table.names), "rows": [[_encode(value) for value in row] for row in table.rows]}
    document["sha256"] = hashlib.sha256(_canonical(document)).hexdigest()
    return _canonical(document) + b"\n"


@dataclass(frozen=True)
class Cached:
    table: RawTable
    read_at: float  # when these rows were read from the database
    confirmed_at: float  # when the database last held them (the file's mtime)
    db: str


def load(path: Path, mirror_dir: Path | None) -> Cached:
    """The cache file, checked from end to end; :class:`CacheError` (or OSError) when unusable."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
            raise CacheError("not a regular file of a plausible size")
        with os.fdopen(os.dup(fd), "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    finally:
        os.close(fd)
    try:
        document = json.loads(raw)
    except ValueError:
        raise CacheError("not JSON (truncated or garbage)") from None
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise CacheError("not a camera cache")
    if document.get("format") != FORMAT:
        raise CacheError(f"format {document.get('format')!r}; this version reads format {FORMAT}")
    digest = document.pop("sha256", None)
    try:
        intact = digest == hashlib.sha256(_canonical(document)).hexdigest()
    except (TypeError, ValueError):
        intact = False
    if not intact:
        raise CacheError("its sha256 does not match its content (damaged)")
    if document.get("mirror_dir") != str(mirror_dir):
        raise CacheError(f"written for mirror dir {document.get('mirror_dir')!r}, not {str(mirror_dir)!r}")
    names, rows, read_at = document.get("columns"), document.get("rows"), document.get("read_at")
    if (not isinstance(names, list) or "id" not in names or len(set(names)) != len(names)
            or not all(name in COLUMNS for name in names)):
        raise CacheError("its columns are not camera columns with an 'id'")
    if not isinstance(rows, list) or not all(isinstance(row, list) and len(row) == len(names) for row in rows):
        raise CacheError("its rows do not match its columns")
    if not isinstance(read_at, int | float) or not math.isfinite(read_at):
        raise CacheError("no time of reading")
    from .database import RawTable

    table = RawTable(tuple(names), [tuple(_decode(value) for value in row) for row in rows])
    return Cached(table, float(read_at), info.st_mtime, str(document.get("db")))


def utc(epoch: float | None) -> str:
    return "never" if epoch is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


# -- the master's side ----------------------------------------------------------------------------

class CameraCache:
    """The cache of one master: loaded once at its first read, kept after every good read."""

    def __init__(self) -> None:
        self.log = logs.master()
        self.path: Path | None = None  # None: no cache dir (or not opened yet)
        self.loaded: Cached | None = None  # the file as found at start: what a start records from
        self.problem: str | None = None  # why the file found at start is not used
        self.read_at: float | None = None  # of the rows the file on disk holds now
        self.confirmed_at: float | None = None
        self.cameras: int | None = None
        self._opened = False
        self._dir: Path | None = None
        self._mirror_dir: Path | None = None
        self._kept: RawTable | None = None
        self._write_error: str | None = None

    def open(self, cache_dir: Path | None, mirror_dir: Path | None) -> None:
        """Once, at the master's first read (the directory is fixed until a restart)."""
        if self._opened:
            return
        self._opened = True
        if cache_dir is None:
            return
        self._dir, self._mirror_dir = cache_dir, mirror_dir
        self.path = cache_path(cache_dir, mirror_dir)
        try:
            files.check_private_dir(self.path.parent)  # a directory another user can write: not ours to trust
            self.loaded = load(self.path, mirror_dir)
        except FileNotFoundError:
            self.problem = "none yet"
            self.log.info("camera cache %s: none yet (written after the first good read of the database)", self.path)
        except (CacheError, files.UnsafeDirectory, OSError) as exc:
            self.problem = f"ignored: {exc.strerror if isinstance(exc, OSError) else exc}"
            self.log.warning("camera cache %s %s", self.path, self.problem)
        else:
            self._kept, self.cameras = self.loaded.table, len(self.loaded.table.rows)
            self.read_at, self.confirmed_at = self.loaded.read_at, self.loaded.confirmed_at

    @property
    def columns(self) -> frozenset[str]:
        return self.loaded.table.columns if self.loaded is not None else frozenset()

    def keep(self, table: RawTable, db: Path, mirror_dir: Path | None, wall: float) -> None:
        """After a good read: write the rows when they changed; else note, now and then, that the
        database still holds them (the file's mtime). A failure is logged once per reason."""
        if self.path is None or self._dir is None:
            return
        if mirror_dir != self._mirror_dir:  # a reload moved the mirror: its cameras get their own file
            self._mirror_dir, self.path, self._kept = mirror_dir, cache_path(self._dir, mirror_dir), None
            self.read_at = self.confirmed_at = self.cameras = None
        try:
            if self._kept is not None and table.names == self._kept.names and table.rows == self._kept.rows:
                if self.confirmed_at is None or wall - self.confirmed_at >= CONFIRM_EVERY:
                    os.utime(self.path, (wall, wall), follow_symlinks=False)
                    self.confirmed_at = wall
                return
            files.ensure_private_dir(self.path.parent, DIR_MODE)
            if stat.S_IMODE(os.lstat(self.path.parent).st_mode) & 0o077:
                os.chmod(self.path.parent, DIR_MODE, follow_symlinks=False)  # ours: closed to others
            files.write_durably(self.path, dump(table, wall, db, mirror_dir), FILE_MODE)
            os.utime(self.path, (wall, wall), follow_symlinks=False)  # mtime: when it last matched the database
        except (OSError, files.UnsafeDirectory, CacheError) as exc:
            error = f"{exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)
            if error != self._write_error:
                self.log.warning("cannot write the camera cache %s: %s (a master started while the database is "
                                 "unreadable would not have these cameras)", self.path, error)
            self._write_error = error
            self._kept = None  # tried again at the next good read
            return
        if self._write_error is not None:
            self.log.info("camera cache %s written again", self.path)
        self._write_error, self._kept, self.cameras = None, table, len(table.rows)
        self.read_at = self.confirmed_at = wall

    def status(self, source: str | None) -> dict[str, Any]:
        """status.json's ``camera_table``: where the cameras come from, and the cache."""
        return {"source": source, "cache": {
            "path": None if self.path is None else str(self.path), "read_at": self.read_at,
            "confirmed_at": self.confirmed_at, "cameras": self.cameras,
            "problem": self._write_error or (self.problem if self.read_at is None else None)}}


def note(table: dict[str, Any] | None) -> str:
    """What systemd's ``STATUS=`` adds while the cameras come from the cache."""
    if not table or table.get("source") != "cache":
        return ""
    return f", from the cache of {utc(table['cache'].get('confirmed_at'))}"


def metric_families(prefix: str, table: dict[str, Any] | None) -> list[Any]:
    """``camera_table_source{source}`` (1 for where the cameras come from) and the cache's time."""
    from prometheus_client.core import GaugeMetricFamily

    source = (table or {}).get("source")
    where = GaugeMetricFamily(prefix + "camera_table_source", "1 for where the recorded camera table comes from: "
                              "the database, or the camera cache (a start while the database was unreadable)",
                              labels=["source"])
    for name in ("database", "cache"):
        where.add_metric([name], 1.0 if source == name else 0.0)
    families = [where]
    confirmed = ((table or {}).get("cache") or {}).get("confirmed_at")
    if confirmed is not None:
        families.append(GaugeMetricFamily(prefix + "camera_cache_timestamp_seconds", "when the camera cache last "
                                          "matched the database", value=float(confirmed)))
    return families
