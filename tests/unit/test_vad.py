from stella_services.stt.vad import (
    SilenceStarted,
    SpeechEnded,
    SpeechResumed,
    SpeechStarted,
    VadConfig,
    VadTracker,
)

WIN = 32  # ms per silero window


def run(probs: list[float], config: VadConfig | None = None) -> list[object]:
    tracker = VadTracker(config or VadConfig(min_speech_ms=90, min_silence_ms=300))
    events: list[object] = []
    for i, p in enumerate(probs):
        events += tracker.update(p, i * WIN, (i + 1) * WIN)
    return events


def test_speech_needs_min_duration_then_ends_after_min_silence() -> None:
    events = run([0.1] * 5 + [0.9] * 20 + [0.05] * 12)
    assert events == [
        SpeechStarted(5 * WIN),
        SilenceStarted(25 * WIN),
        SpeechEnded(start_ms=5 * WIN, end_ms=25 * WIN),
    ]


def test_a_short_blip_is_noise() -> None:
    assert run([0.1] * 5 + [0.9, 0.9] + [0.1] * 20) == []


def test_a_short_pause_resumes_the_same_utterance() -> None:
    events = run([0.9] * 10 + [0.1] * 4 + [0.9] * 10 + [0.1] * 12)
    assert events == [
        SpeechStarted(0),
        SilenceStarted(10 * WIN),
        SpeechResumed(14 * WIN),
        SilenceStarted(24 * WIN),
        SpeechEnded(start_ms=0, end_ms=24 * WIN),
    ]


def test_hysteresis_between_the_thresholds_changes_nothing() -> None:
    # 0.4 is neither speech (>= 0.5) nor silence (< 0.35): the utterance goes on
    events = run([0.9] * 10 + [0.4] * 30)
    assert events == [SpeechStarted(0)]
