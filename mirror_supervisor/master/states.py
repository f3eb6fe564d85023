"""Every state a camera can be in, in one place, importing nothing of the project.

Two sets, because two processes hold state. A worker knows what its ffmpeg is doing
(:class:`WorkerState`, sent to the master in its reports and shown in its process title). The
master knows where the camera's slot stands in the life cycle of its worker processes
(:class:`SlotState`). ``status`` shows one word per camera: the worker's while the worker runs
normally, the slot's otherwise (:func:`shown`).
"""

from __future__ import annotations

import enum


class WorkerState(enum.StrEnum):
    STARTING = "starting"  # forked, no ffmpeg yet
    CONNECTING = "connecting"  # ffmpeg runs, nothing has reached the disk yet
    RECORDING = "recording"  # data reaches the disk
    BACKOFF = "backoff"  # ffmpeg ended; waiting before the next start
    STALLED = "stalled"  # ffmpeg was alive but wrote nothing; restarted after a back-off
    ERROR = "error"  # ffmpeg cannot be started, or the camera directory cannot be made
    STOPPING = "stopping"  # asked to stop; ending ffmpeg so its last segment stays playable
    STOPPED = "stopped"  # about to exit


class SlotState(enum.StrEnum):
    IDLE = "idle"  # wanted, nothing running yet: the next step starts a worker
    RUNNING = "running"  # a worker runs; its own report says what it does
    STOPPING = "stopping"  # SIGTERM sent to the worker; SIGKILL of its group at the deadline
    KILLED = "killed"  # SIGKILL sent; only the kernel can keep it now
    REMAINS = "remains"  # the worker exited, its ffmpeg (process group) did not yet
    BACKOFF = "backoff"  # the worker died unexpectedly; a new one at the respawn time
    HELD = "held"  # wanted but held back: the mirror volume is not mounted (--require-mount)
    REFUSED = "refused"  # the row cannot be recorded (bad URL, unsafe id...): no worker
    GONE = "gone"  # not wanted and nothing left running: the master forgets the slot


def shown(slot: SlotState, worker: str | None) -> str:
    """The one word ``status`` shows for a camera."""
    if slot is SlotState.RUNNING:
        return worker or WorkerState.STARTING
    if slot in (SlotState.STOPPING, SlotState.KILLED):
        return WorkerState.STOPPING
    if slot in (SlotState.REMAINS, SlotState.BACKOFF):
        return WorkerState.BACKOFF
    if slot in (SlotState.HELD, SlotState.REFUSED):
        return WorkerState.ERROR
    return WorkerState.STARTING
