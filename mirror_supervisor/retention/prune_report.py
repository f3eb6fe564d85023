"""What a prune pass did, and how it is told: the ``prune``/``check`` lines and the log lines.

Kept apart from the pass (:mod:`prune`) so that the caller decides how often a pass is worth a
log line, and so the wording of every kept-file reason is in one place. An *orphaned* directory
is a directory in the mirror whose camera is not in the database: reported, never pruned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..cameras.camera import is_safe_id
from ..plumbing import logs
from .orphaned import OrphanDir

# One broken disk can fail every unlink of a pass; a handful of messages says it, thousands don't.
MAX_ERRORS_KEPT = 5


@dataclass
class CameraPrune:
    """What one pass did (or would do) for one camera of the database."""

    camera_id: str
    retention_hours: float | None = None
    has_dir: bool = False
    deleted_files: int = 0
    deleted_bytes: int = 0
    kept_files: int = 0
    oldest_kept: str | None = None
    skipped: str | None = None
    failed_files: int = 0
    errors: list[str] = field(default_factory=list)
    # Kept although past retention: mtime not believable (see the retention module) ...
    implausible_files: int = 0
    # ... or past the clock's cutoff but not the footage cutoff (too little recorded since).
    held_back_files: int = 0
    jump_suspected: bool = False  # the footage cutoff is over a day behind the clock's

    def add_error(self, message: str) -> None:
        self.failed_files += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(message)


@dataclass
class PassReport:
    """One pass over the mirror; ``error`` set means the pass was skipped and nothing deleted."""

    mirror_dir: Path
    now: float
    dry_run: bool = False
    cameras: list[CameraPrune] = field(default_factory=list)
    orphans: list[OrphanDir] = field(default_factory=list)
    running: frozenset[str] = frozenset()
    error: str | None = None
    notes: list[str] = field(default_factory=list)  # about the input, e.g. columns defaulted

    @property
    def deleted_files(self) -> int:
        return sum(c.deleted_files for c in self.cameras)

    @property
    def deleted_bytes(self) -> int:
        return sum(c.deleted_bytes for c in self.cameras)

    def format_lines(self) -> list[str]:
        """Human output for ``prune`` and ``check``: one line per camera and per orphaned directory."""
        lines = [f"note: {note}" for note in self.notes]
        if self.error is not None:
            return lines + [f"prune pass skipped, nothing deleted: {self.error}"]
        verb = "would delete" if self.dry_run else "deleted"
        for cam in self.cameras:
            # An unsafe id is shown quoted and cut: it may hold anything, newlines included.
            shown = cam.camera_id if is_safe_id(cam.camera_id) else repr(cam.camera_id[:40])
            if cam.skipped is not None:
                text = f"{shown}: nothing deleted: {cam.skipped}"
            elif not cam.has_dir:
                text = f"{shown}: no mirror directory"
            else:
                text = (
                    f"{shown}: {verb} {cam.deleted_files} files {format_bytes(cam.deleted_bytes)}, "
                    f"oldest kept {cam.oldest_kept or '-'}"
                )
                if cam.camera_id in self.running:
                    text += " (recording)"
                text += "".join(f"; {part}" for part in _kept_texts(cam))
            if cam.failed_files:
                text += f"; {cam.failed_files} errors, first: {cam.errors[0]}"
            lines.append(text)
        for orphan in self.orphans:
            lines.append(f"{orphan.name}: {_orphan_text(orphan)}")
        lines.append(
            f"total: {verb} {self.deleted_files} files {format_bytes(self.deleted_bytes)}"
            + (f", {len(self.orphans)} orphaned directories left alone" if self.orphans else "")
        )
        return lines


def log_report(report: PassReport, log: logging.Logger | logging.LoggerAdapter | None = None) -> None:
    """Log one line per camera that lost files and one per problem; silence when all is well.

    ``log`` carries the lines that concern no single camera (skipped pass, orphaned directories).
    Cameras without a directory are not worth a line: they have nothing that could fill the volume.
    """
    log = log if log is not None else logs.master()
    for note in report.notes:
        log.info("prune: %s", note)
    if report.error is not None:
        log.warning("prune pass skipped, nothing deleted: %s", report.error)
        return
    verb = "would prune" if report.dry_run else "pruned"
    for cam in report.cameras:
        camera_log = logs.for_camera(cam.camera_id)
        if cam.deleted_files:
            camera_log.info(
                "%s %d files %s oldest_kept=%s",
                verb, cam.deleted_files, format_bytes(cam.deleted_bytes), cam.oldest_kept or "-",
            )
        if cam.skipped is not None and cam.has_dir:
            camera_log.warning("prune skipped, nothing deleted: %s", cam.skipped)
        if cam.implausible_files or cam.jump_suspected:
            # Held back by less than a day is ordinary (gaps in recording); more is worth a line.
            # A young mirror has little footage behind the clock: suspicious only with files held.
            texts = [text for text in _kept_texts(cam) if cam.jump_suspected or "implausible" in text]
            if texts:
                camera_log.warning("prune: %s", "; ".join(texts))
        if cam.failed_files:
            camera_log.warning("prune: %d files could not be deleted, first: %s", cam.failed_files, cam.errors[0])
    for orphan in report.orphans:
        log.warning("mirror directory %r: %s", orphan.name, _orphan_text(orphan))


def format_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _orphan_text(orphan: OrphanDir) -> str:
    if orphan.error is not None:
        return f"orphaned (camera not in the database), left alone; size unknown: {orphan.error}"
    return (
        f"orphaned (camera not in the database), left alone: "
        f"{orphan.files} files {format_bytes(orphan.bytes)}"
    )


def _kept_texts(cam: CameraPrune) -> list[str]:
    """Why files past retention were kept, for the CLI line and the log."""
    texts = []
    if cam.held_back_files:
        texts.append(
            f"{cam.held_back_files} files past retention kept: less than {cam.retention_hours:g} h of "
            "footage recorded after them" + (" (clock stepped forward?)" if cam.jump_suspected else "")
        )
    if cam.implausible_files:
        texts.append(f"{cam.implausible_files} files kept: implausible mtime (unset clock, future, or before their name)")
    return texts
