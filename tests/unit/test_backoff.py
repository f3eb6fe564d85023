"""Back-off rules (docs/design.md, "Worker loop" and "Master rules")."""

from mirror_supervisor.backoff import ffmpeg_delay, worker_respawn_delay


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
