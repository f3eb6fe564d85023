"""Back-off rules (docs/design.md, "Worker loop" and "Master rules"), pure so they can be tested without processes.

The waits of ffmpeg restarts, of worker respawns, and when a probe of the camera's port may cut
an ffmpeg back-off short (:class:`ProbedWait`, docs/design.md "Worker loop").

A run that lasted long enough is evidence the camera (or worker) works, so it resets the delay;
quick failures double it up to a cap, so a dead camera costs a reconnect every 30 s at most and
never a hot loop.
"""

from __future__ import annotations

from .reachability import ACCEPTS, NO_ANSWER, REFUSES

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


PROBE_INTERVAL = 1.0  # at most one probe connect a second per camera
PROBE_TIMEOUT = 1.0  # a probe with no answer by then says nothing either way


class ProbedWait:
    """The back-off wait after a failure that may mean the camera is down (``reachability.classify``
    said UNREACHABLE or LOST), while its port is probed about once a second.

    - The wait ends early only when a probe *in this wait* saw the port not accept (refused, or no
      answer) and a later one saw it accept: the camera came back. Every early start therefore
      needs the port to have been down since the last ffmpeg exit, so a port that accepts TCP but
      whose RTSP fails can never cause a restart loop: it gets the plain back-off.
    - At the end of the back-off ffmpeg starts as before, unless the last probe was a definite
      refusal: then it is held (no ffmpeg start while the port refuses) until the port accepts.
      A probe that got no answer within its time-out says nothing, so it does not hold ffmpeg.
    """

    def __init__(self, wait_seconds: float, now: float) -> None:
        self.deadline = now + wait_seconds
        self.seen_down = False
        self.last: str | None = None

    def record(self, outcome: str) -> None:
        if outcome in (REFUSES, NO_ANSWER):
            self.seen_down = True
        if outcome in (ACCEPTS, REFUSES, NO_ANSWER):
            self.last = outcome

    @property
    def came_back(self) -> bool:
        return self.seen_down and self.last == ACCEPTS

    def holding(self, now: float) -> bool:
        """The back-off is over but the port refuses: ffmpeg waits for it."""
        return now >= self.deadline and self.last == REFUSES

    def start_now(self, now: float) -> bool:
        return self.came_back or (now >= self.deadline and not self.holding(now))
