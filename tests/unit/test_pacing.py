from stella_sdk.pacing import Pacer


def test_first_frames_go_at_once_then_real_time_with_a_lead() -> None:
    p = Pacer(lead_ms=100, frame_ms=20, clock=lambda: 0.0)
    sent_at = []
    now = 10.0
    for _ in range(20):
        now += p.delay(now)
        sent_at.append(round(now - 10.0, 3))
        p.sent(now)
    # the first 100 ms of audio (5 frames + the one playing) leave immediately
    assert sent_at[:6] == [0.0] * 6
    # then one frame every 20 ms, keeping 100 ms ahead of the playhead
    assert sent_at[6:9] == [0.02, 0.04, 0.06]
    assert sent_at[-1] == 0.28


def test_a_pause_restarts_the_run() -> None:
    p = Pacer(lead_ms=100, frame_ms=20, clock=lambda: 0.0)
    for _ in range(10):
        p.sent(0.0)
    assert round(p.delay(0.05), 3) == 0.05  # 200 ms queued, 50 ms played, 100 ms lead
    assert p.delay(5.0) == 0.0  # long after: no debt carried over
