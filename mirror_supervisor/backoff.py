"""Back-off rules (docs/design.md, "Worker loop" and "Master rules"), pure so they can be tested without processes.

A run that lasted long enough is evidence the camera (or worker) works, so it resets the delay;
quick failures double it up to a cap, so a dead camera costs a reconnect every 30 s at most and
never a hot loop.
"""

from __future__ import annotations

HEALTHY_RUN_SECONDS = 30.0

FFMPEG_FIRST_DELAY = 1.0
FFMPEG_MAX_DELAY = 30.0
SPAWN_FAILED_DELAY = 15.0  # ffmpeg could not be started at all (missing binary, exec error)

WORKER_MAX_DELAY = 60.0


def ffmpeg_delay(current: float, ran_seconds: float) -> tuple[float, float]:
    """Wait before the next ffmpeg start, and the delay to carry to the run after it.

    ``current`` starts at 1 s: failing runs wait 1, 2, 4, ... 30 s; a run over 30 s waits 1 s again.
    """
    wait = FFMPEG_FIRST_DELAY if ran_seconds > HEALTHY_RUN_SECONDS else current
    return wait, min(wait * 2, FFMPEG_MAX_DELAY)


def worker_respawn_delay(previous: float, lived_seconds: float) -> float:
    """Delay before the master replaces a worker that died unexpectedly.

    The first death after a healthy life is replaced at once (a stray SIGKILL should cost no
    footage); each further quick death doubles the delay, from 1 s up to 60 s.
    """
    if lived_seconds > HEALTHY_RUN_SECONDS:
        return 0.0
    return min(max(1.0, previous * 2), WORKER_MAX_DELAY)
