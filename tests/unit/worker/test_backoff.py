"""Back-off rules (docs/design.md, "Worker loop" and "Master rules")."""

from mirror_supervisor.worker.backoff import ffmpeg_delay, worker_respawn_delay


def test_ffmpeg_backoff_doubles_to_cap_and_resets():
    delay, waits = 1.0, []
    for _ in range(7):
        wait, delay = ffmpeg_delay(delay, ran_seconds=2)
        waits.append(wait)
    assert waits == [1, 2, 4, 8, 16, 30, 30]
    wait, delay = ffmpeg_delay(delay, ran_seconds=31)
    assert (wait, delay) == (1, 2)


def test_a_run_of_exactly_30s_still_counts_as_failing():
    assert ffmpeg_delay(8.0, 30.0) == (8.0, 16.0)


def test_worker_respawn():
    assert worker_respawn_delay(0.0, lived_seconds=3600) == 0
    assert worker_respawn_delay(0.0, lived_seconds=1) == 1
    delays, delay = [], 0.0
    for _ in range(8):
        delay = worker_respawn_delay(delay, lived_seconds=0.1)
        delays.append(delay)
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    assert worker_respawn_delay(60.0, lived_seconds=45) == 0


# -- the probed wait (docs/design.md, "Worker loop") ----------------------------------------------

from mirror_supervisor.worker.backoff import ProbedWait  # noqa: E402
from mirror_supervisor.worker.reachability import ACCEPTS, INTERRUPTED, NO_ANSWER, REFUSES  # noqa: E402


def test_a_port_seen_down_then_accepting_ends_the_wait_early():
    plan = ProbedWait(30.0, now=0.0)
    plan.record(REFUSES)
    assert not plan.start_now(1.0)
    plan.record(ACCEPTS)
    assert plan.came_back and plan.start_now(2.0)


def test_no_answer_then_accepting_also_ends_it():
    plan = ProbedWait(30.0, now=0.0)
    plan.record(NO_ANSWER)
    plan.record(ACCEPTS)
    assert plan.start_now(2.0)


def test_a_port_that_always_accepts_keeps_the_full_back_off():
    """A port that accepts TCP but whose RTSP fails: the probe cannot cause a restart loop."""
    plan = ProbedWait(8.0, now=0.0)
    for t in range(8):
        plan.record(ACCEPTS)
        assert not plan.start_now(float(t))
    assert plan.start_now(8.0)


def test_a_refusing_port_holds_ffmpeg_past_the_back_off():
    plan = ProbedWait(2.0, now=0.0)
    for t in range(300):
        plan.record(REFUSES)
        assert not plan.start_now(float(t))
    assert plan.holding(300.0)
    plan.record(ACCEPTS)
    assert plan.start_now(301.0)


def test_no_answer_at_the_end_of_the_back_off_starts_ffmpeg_as_before():
    plan = ProbedWait(4.0, now=0.0)
    plan.record(REFUSES)
    plan.record(NO_ANSWER)
    assert not plan.start_now(3.9)
    assert plan.start_now(4.0) and not plan.holding(4.0)


def test_no_probe_result_and_interruptions_change_nothing():
    plan = ProbedWait(4.0, now=0.0)
    plan.record(INTERRUPTED)
    assert plan.last is None and not plan.seen_down
    assert not plan.start_now(3.0) and plan.start_now(4.0)
