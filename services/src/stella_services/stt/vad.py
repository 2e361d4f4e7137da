"""Where speech starts and ends, from per-window speech probabilities (a pure state machine).

Besides start and end it reports the moment silence *begins* (``SilenceStarted``): the
listener decodes the utterance right then, while the end is still being confirmed, and
throws the result away if speech resumes (``SpeechResumed``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VadConfig:
    threshold: float = 0.5  # speech when the probability reaches this
    neg_threshold: float = 0.35  # silence when it falls below this (hysteresis)
    min_speech_ms: int = 90  # shorter blips are noise
    min_silence_ms: int = 300  # this much silence ends an utterance
    pre_roll_ms: int = 300  # audio kept before the detected onset (first words start early)


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    at_ms: int


@dataclass(frozen=True, slots=True)
class SilenceStarted:
    at_ms: int


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    at_ms: int


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    start_ms: int
    end_ms: int  # where the speech stopped (silence start), not when it was confirmed


VadEvent = SpeechStarted | SilenceStarted | SpeechResumed | SpeechEnded


class VadTracker:
    def __init__(self, config: VadConfig | None = None) -> None:
        self.config = config or VadConfig()
        self.in_speech = False
        self._candidate_start: int | None = None
        self._speech_start = 0
        self._silence_start: int | None = None

    def update(self, prob: float, start_ms: int, end_ms: int) -> list[VadEvent]:
        """Feed one window's probability; ``start_ms``/``end_ms`` bound the window."""
        c = self.config
        events: list[VadEvent] = []
        if not self.in_speech:
            if prob >= c.threshold:
                if self._candidate_start is None:
                    self._candidate_start = start_ms
                if end_ms - self._candidate_start >= c.min_speech_ms:
                    self.in_speech = True
                    self._speech_start = self._candidate_start
                    self._candidate_start = None
                    events.append(SpeechStarted(self._speech_start))
            elif prob < c.neg_threshold:
                self._candidate_start = None
            return events
        if prob >= c.threshold:
            if self._silence_start is not None:
                events.append(SpeechResumed(start_ms))
                self._silence_start = None
        elif prob < c.neg_threshold:
            if self._silence_start is None:
                self._silence_start = start_ms
                events.append(SilenceStarted(start_ms))
            if end_ms - self._silence_start >= c.min_silence_ms:
                events.append(SpeechEnded(self._speech_start, self._silence_start))
                self.in_speech = False
                self._silence_start = None
        return events
