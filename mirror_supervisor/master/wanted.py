"""The wanted set: which cameras should be recording now, and with which ffmpeg argv.

The master asks :class:`CameraSource` on every poll and at once on SIGHUP. The answer is a
:class:`Wanted` or ``None``, which means *no news*: the database could not be read (locked,
missing, damaged, a column lost mid-migration, an errno nobody expected), and the last good
answer stays in force. It is never "no cameras".

Kept here, out of the master: the fingerprint that skips parsing an unchanged file, the row
cache and the argv cache that make an idle poll cheap, the lost-column guard, the
once-per-change logging of each row's problem, and the ``--require-mount`` check, which reads the
kernel's mount table and never the mirror volume (a hung network volume would block the master).
The database's own volume may hang too (the NVR's data on a NAS share or a dying disk): before
each read a kept child stats the file with a deadline (:mod:`asker`), so the master never sleeps
in the kernel on it; no answer is no news, like any unreadable database.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..cameras.cache import CameraCache, utc
from ..cameras.camera import Camera, is_safe_id
from ..cameras.database import (
    ANSWER_TIMEOUT,
    DatabaseError,
    RowCache,
    fingerprint,
    not_responding,
    parse_rows,
    probe,
    read_raw,
)
from ..cameras.snapshot import CopyWatch
from ..plumbing import logs, volume
from ..plumbing.asker import Asker
from ..plumbing.masking import mask
from ..settings import Settings
from ..worker.ffmpeg import build_command
from .reconcile import wanted

FULL_READ_EVERY = 60.0  # read even an unchanged-looking database this often
DB_ASK_AGAIN = 10.0  # after no answer: the master's loop is not held up on every poll


@dataclass(frozen=True)
class Wanted:
    cameras: dict[str, Camera] = field(default_factory=dict)  # recordable, by id
    keys: dict[str, tuple[str, ...]] = field(default_factory=dict)  # each one's ffmpeg argv
    refused: dict[str, str] = field(default_factory=dict)  # mirrored rows that cannot be recorded
    rows: list[Camera] | None = None  # every row of the table, for retention; None: never read


class CameraSource:
    def __init__(self) -> None:
        self.log = logs.master()
        self.error: str | None = None
        self.error_since: float | None = None
        self.columns: frozenset[str] = frozenset()
        self.held: str | None = None  # why recording is held back (mount missing)
        self.fold_case = False  # the mirror volume ignores case: ids differing in case collide
        self.last_read: float | None = None
        self.mirror_real = ""  # the mirror dir resolved, for the mount table
        self._mirror_setting: Path | None = None
        self._fingerprint: tuple | None = None
        self._next_full_read = 0.0
        self._rows: RowCache = {}
        self._last = Wanted()
        self._keys_basis: tuple = ()
        self._reported: dict[str, str] = {}
        self._said_disabled = False
        self.asker = Asker()  # a kept child that stats the database's volume for each read
        self._stuck: int | None = None  # a child asking the database's volume that never came back
        self._ask_after = 0.0
        self.cache = CameraCache()  # the last good read on disk, for a start without a database
        self._unkept: tuple | None = None  # a good read whose rows the cache has not taken yet (settle)
        self.from_cache = False  # this master started recording from the cache
        self.copy = CopyWatch()  # whether --db is a snapshot copy that stopped being replaced

    @property
    def table(self) -> dict:
        """Where the camera table in force comes from, and the cache (status.json, metrics)."""
        source = "database" if self.last_read is not None else "cache" if self.from_cache else None
        return self.cache.status(None if self._said_disabled else source)

    def read(self, settings: Settings, now: float, force: bool = False, running: int = 0) -> Wanted | None:
        """The wanted set, or None for no news (the reason is in :attr:`error`)."""
        if not settings.recorder_enabled:
            if not self._said_disabled:
                self.log.info("recorder disabled: no camera is mirrored")
            self._said_disabled = True
            self._last = Wanted(rows=self._last.rows)
            return self._last
        self._said_disabled = False
        self._check_mount(settings)
        self.cache.open(settings.cache_dir, settings.mirror_dir)
        if not self._database_answers(settings, running):
            return self._from_cache(settings)
        try:
            mark = fingerprint(settings.db)
            self.copy.observe(settings.db, mark, now, settings.snapshot_max_age)
            if not force and self.error is None and mark == self._fingerprint and now < self._next_full_read:
                # Nothing committed since the last good read: only check it is still readable.
                self._check_columns(probe(settings.db))
                return self._last
            table = read_raw(settings.db)
            self._check_columns(table.columns)
        except Exception as exc:  # noqa: BLE001 - any failure to read is "no news", never "no cameras"
            self._failed(settings, exc, running)
            return self._from_cache(settings)
        if self.error is not None:
            first = self.from_cache and self.last_read is None  # the first good read after a start from the cache
            self.log.info("database readable again%s", "; the camera cache is no longer used" if first else "")
            self.error = self.error_since = None
        self.columns, self._fingerprint, self._next_full_read = table.columns, mark, now + FULL_READ_EVERY
        self.last_read = time.time()
        self._unkept = (table, settings.db, settings.mirror_dir, self.last_read)  # written by settle()
        return self._use(settings, parse_rows(table, self._rows))

    def settle(self) -> None:
        """Write the camera cache of the last good read (an fsynced file: milliseconds that a new
        camera's worker need not wait for, so the master calls this after its forks)."""
        if self._unkept is not None:
            unkept, self._unkept = self._unkept, None
            self.cache.keep(*unkept)

    def _use(self, settings: Settings, rows: list[Camera]) -> Wanted:
        good, bad = wanted(rows, True, fold_case=self.fold_case)
        self._report_rows(rows, bad)
        self._last = Wanted(good, self._keys(settings, good), {cid: c.problem or "" for cid, c in bad.items()}, rows)
        return self._last

    def _from_cache(self, settings: Settings) -> Wanted | None:
        """A master that has not read the database yet records from the camera cache (once: later
        failures are no news like any other); one that has read it keeps what it read."""
        cached = self.cache.loaded
        if self.last_read is not None or self.from_cache or cached is None:
            return None
        self.from_cache, self.columns = True, cached.table.columns  # its columns guard the next read
        found = self._use(settings, parse_rows(cached.table, self._rows))
        self.log.warning("database unreadable at start: recording %d cameras from the camera cache %s, the table as the "
                         "database held it at %s (%.0fs ago); the database wins as soon as it reads again",
                         len(found.cameras), self.cache.path, utc(cached.confirmed_at),
                         max(0.0, time.time() - cached.confirmed_at))
        return found

    def learn_volume(self, settings: Settings) -> None:
        """At start only (this touches the volume): resolve the mirror dir, learn whether its
        file system ignores case, and warn when it is not a separate volume."""
        assert settings.mirror_dir is not None
        try:
            self.mirror_real = volume.resolve_once(settings.mirror_dir)
            self._mirror_setting = settings.mirror_dir
            self.fold_case = volume.folds_case(settings.mirror_dir) is True
            mounts = volume.read_mounts()
        except OSError as exc:
            self.log.warning("cannot inspect the mirror volume: %s", exc.strerror)
            return
        if self.fold_case:
            self.log.warning("mirror dir %s is on a case-insensitive file system: ids that differ only "
                             "in case are refused as duplicates", settings.mirror_dir)
        holder = volume.mount_of(self.mirror_real, mounts)
        if not settings.require_mount and holder is not None and holder.point == "/":
            self.log.warning("mirror dir %s is on the same filesystem as /: it is not a separate volume",
                             settings.mirror_dir)

    def reaped(self, pid: int) -> bool:
        """The master reaped ``pid``: True when it was our stuck child (its volume answered)."""
        if self.asker.reaped(pid):
            return True
        if pid != self._stuck:
            return False
        self._stuck, self._ask_after = None, 0.0
        return True

    # -- helpers -----------------------------------------------------------------------------

    def _database_answers(self, settings: Settings, running: int) -> bool:
        """Asked of a kept child (:mod:`asker`: a pipe round trip; a fork per ask took 3-4 ms);
        while a child the kernel will not let go of is still there, or for a while after no answer,
        the answer is no without asking: a hung volume costs one sleeping process, not a stall of
        the loop on every poll."""
        now = time.monotonic()
        if self._stuck is None and now >= self._ask_after:
            asked = self.asker.ask(Path(settings.db), ANSWER_TIMEOUT)
            if asked.answered:
                return True
            if asked.refused is not None:  # nothing was asked: no news, and asked again next poll
                self._failed(settings, DatabaseError(f"database not read: {asked.refused}"), running)
                return False
            self._stuck, self._ask_after = asked.stuck, now + DB_ASK_AGAIN
        self._failed(settings, not_responding(settings.db), running)
        return False

    def _failed(self, settings: Settings, exc: Exception, running: int) -> None:
        """Log a changed reason once. The reason is built from the error's kind, never from
        values read out of the table."""
        if isinstance(exc, DatabaseError):
            reason = str(exc)
        elif isinstance(exc, OSError):
            reason = f"cannot read database {str(settings.db)!r}: {exc.strerror or type(exc).__name__}"
        else:
            self.log.exception("unexpected error reading the database")
            reason = f"unexpected {type(exc).__name__} while reading database {str(settings.db)!r} (see log)"
        reason = mask(reason)
        if reason != self.error:
            self.log.error("database unreadable; keeping %d workers as they are: %s", running, reason)
            self.error_since = self.error_since or time.time()
        self.error = reason

    def _check_columns(self, columns: frozenset[str]) -> None:
        """A column that was there and is gone is a migration in progress or damage, not an
        older schema: taking defaults now could stop or restart every camera."""
        lost = (self.columns or self.cache.columns) - columns  # before any read: the cache's columns
        if lost:
            where = "the last read" if self.last_read is not None else \
                f"the camera cache {self.cache.path} (if the NVR dropped them for good: remove it and restart)"
            raise DatabaseError(f"table 'cameras' lost column(s) {', '.join(sorted(lost))} since {where}")

    def _keys(self, settings: Settings, cameras: dict[str, Camera]) -> dict[str, tuple[str, ...]]:
        """Each camera's ffmpeg argv. An unchanged row comes back from the row cache as the very
        same object, so its argv is reused unless the ffmpeg binary or mirror dir changed."""
        assert settings.mirror_dir is not None
        basis = (settings.ffmpeg, settings.mirror_dir)
        last, keys = self._last, {}
        for cid, camera in cameras.items():
            if basis == self._keys_basis and last.cameras.get(cid) is camera and cid in last.keys:
                keys[cid] = last.keys[cid]
            else:
                keys[cid] = build_command(settings.ffmpeg, camera, settings.mirror_dir)
        self._keys_basis = basis
        return keys

    def _report_rows(self, rows: list[Camera], bad: dict[str, Camera]) -> None:
        """Log each camera's problem or warnings once, when they change, not on every poll."""
        current: dict[str, str] = {}
        for camera in rows:
            if camera.id in bad:
                current[camera.id] = "not recorded: " + (bad[camera.id].problem or "")
            elif camera.mirrored and camera.warnings:
                current[camera.id] = "; ".join(camera.warnings)
        for cid, text in current.items():
            if self._reported.get(cid) != text:
                level = logging.ERROR if cid in bad else logging.WARNING
                # An id that is not a plain name may hold control characters: shown quoted.
                shown = cid if is_safe_id(cid) else repr(cid[:40])
                logs.for_camera(shown).log(level, "%s", text)
        self._reported = current

    def _check_mount(self, settings: Settings) -> None:
        """With --require-mount, record only onto the mounted volume, never onto what is under it."""
        problem = None
        if settings.require_mount:
            if settings.mirror_dir != self._mirror_setting:  # resolving touches the volume: rarely
                assert settings.mirror_dir is not None
                self.mirror_real, self._mirror_setting = volume.resolve_once(settings.mirror_dir), settings.mirror_dir
            try:
                mounted = volume.is_mount_point(self.mirror_real, volume.read_mounts())
            except OSError as exc:
                self.log.warning("cannot read the mount table: %s; mount state unchanged", exc.strerror)
                return
            if not mounted:
                problem = f"mirror dir {settings.mirror_dir} is not a mount point (--require-mount): not recording"
        if problem != self.held:
            if problem:
                self.log.error("%s", problem)
            elif self.held:
                self.log.info("mirror dir %s is mounted: recording", settings.mirror_dir)
            self.held = problem
