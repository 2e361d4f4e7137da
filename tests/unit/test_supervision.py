"""`stella up`'s restart decision: backoff doubles within the window, a crash loop gives up."""

from __future__ import annotations

from stella_services.cli.supervision import RestartPolicy, restart_delay

POLICY = RestartPolicy(first_delay_s=0.5, max_delay_s=4.0, max_crashes=5, window_s=60.0)


def test_the_first_crash_restarts_after_the_first_delay() -> None:
    assert restart_delay([100.0], 100.0, POLICY) == 0.5


def test_the_delay_doubles_with_recent_crashes_up_to_the_maximum() -> None:
    crashes: list[float] = []
    delays = []
    for t in (0.0, 1.0, 2.0, 3.0, 4.0):
        crashes.append(t)
        delays.append(restart_delay(crashes, t, POLICY))
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_more_crashes_than_allowed_within_the_window_give_up() -> None:
    crashes = [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    assert restart_delay(crashes, 25.0, POLICY) is None


def test_crashes_older_than_the_window_are_forgiven() -> None:
    crashes = [0.0, 5.0, 10.0, 15.0, 20.0, 200.0]
    assert restart_delay(crashes, 200.0, POLICY) == 0.5
