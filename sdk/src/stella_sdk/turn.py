"""Turn-taking and barge-in decisions for the agent runner.

Pure decisions: no I/O, no clocks. The runner passes in how long the user has been speaking
(from VAD) and what STT has heard so far; these functions say whether to cut the agent off
(``should_interrupt``) and whether a final transcript starts a new agent turn
(``should_respond``). Backchannels ("mhm", "yeah", "got it") tell the agent to go on, so they
neither interrupt it nor get an answer while it is speaking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

__all__ = [
    "DEFAULT_BACKCHANNELS",
    "REASON_BACKCHANNEL",
    "REASON_FINAL",
    "REASON_LONG_SPEECH",
    "REASON_NOT_SPEAKING",
    "REASON_TOO_FEW_WORDS",
    "REASON_TOO_SHORT",
    "REASON_WAITING_FOR_WORDS",
    "REASON_WORDS",
    "InterruptDecision",
    "TurnPolicy",
    "content_words",
    "is_backchannel",
    "should_interrupt",
    "should_respond",
]

DEFAULT_BACKCHANNELS: Final[frozenset[str]] = frozenset(
    {
        "mhm", "mm", "mm-hmm", "uh-huh", "yeah", "yes", "yep", "ok", "okay", "right", "sure",
        "i see", "got it", "alright", "uh", "um", "hmm",
    }
)  # fmt: skip

REASON_NOT_SPEAKING: Final = "agent not speaking"
REASON_BACKCHANNEL: Final = "backchannel"
REASON_FINAL: Final = "final transcript"
REASON_TOO_SHORT: Final = "too short"
REASON_WORDS: Final = "words"
REASON_LONG_SPEECH: Final = "speech long enough"
REASON_TOO_FEW_WORDS: Final = "too few words"
REASON_WAITING_FOR_WORDS: Final = "waiting for transcript"

# Hyphens, dashes and separating punctuation become spaces, so "mm-hmm", "mm hmm" and
# "Mm, hmm." all read the same; other punctuation (".", quotes, apostrophes) just goes, so
# "O.K." reads "ok".
_SEPARATORS = re.compile(r"[-\u2010-\u2015,;:!?/\u2026]+|\.{2,}")
_DROPPED = re.compile(r"[^\w\s]+")


@dataclass(frozen=True)
class TurnPolicy:
    """Thresholds for barge-in and turn-taking."""

    min_barge_in_ms: int = 400  # user speech shorter than this is noise, a cough, a click
    min_barge_in_words: int = 2  # one word is too often a misheard noise or "no, go on"
    backchannels: frozenset[str] = field(default=DEFAULT_BACKCHANNELS)
    interrupt_on_final: bool = True  # STT settled on real words: the user means it

    def __post_init__(self) -> None:
        if self.min_barge_in_ms < 0:
            raise ValueError(f"min_barge_in_ms must not be negative, got {self.min_barge_in_ms}")
        if self.min_barge_in_words < 0:
            raise ValueError(
                f"min_barge_in_words must not be negative, got {self.min_barge_in_words}"
            )
        # Accept any set of strings, but keep the policy hashable.
        object.__setattr__(self, "backchannels", frozenset(self.backchannels))


@dataclass(frozen=True)
class InterruptDecision:
    interrupt: bool
    reason: str


def content_words(text: str, policy: TurnPolicy) -> list[str]:
    """The normalised words of ``text`` that are not part of a backchannel phrase."""
    words = _normalise(text)
    phrases = _phrases(policy.backchannels)
    longest = max((len(p) for p in phrases), default=0)
    content: list[str] = []
    i = 0
    while i < len(words):
        # Longest match first, so "i see" is one backchannel rather than "i" plus "see".
        for size in range(min(longest, len(words) - i), 0, -1):
            if tuple(words[i : i + size]) in phrases:
                i += size
                break
        else:
            content.append(words[i])
            i += 1
    return content


def is_backchannel(text: str, policy: TurnPolicy) -> bool:
    """Whether ``text`` is nothing but backchannels ("mhm.", "okay okay", "yeah, got it")."""
    return bool(_normalise(text)) and not content_words(text, policy)


def should_interrupt(
    *, agent_speaking: bool, speech_ms: int, transcript: str, is_final: bool, policy: TurnPolicy
) -> InterruptDecision:
    """Whether the user's speech so far should cut the agent off.

    ``speech_ms`` is how much speech VAD has heard in this user utterance; ``transcript`` is
    STT's partial (or, with ``is_final``, final) text for it, possibly still empty.
    """
    if not agent_speaking:
        return InterruptDecision(False, REASON_NOT_SPEAKING)
    if is_backchannel(transcript, policy):
        return InterruptDecision(False, REASON_BACKCHANNEL)
    said = len(content_words(transcript, policy))
    if is_final and said > 0 and policy.interrupt_on_final:
        return InterruptDecision(True, REASON_FINAL)
    if speech_ms < policy.min_barge_in_ms:
        return InterruptDecision(False, REASON_TOO_SHORT)
    if said >= policy.min_barge_in_words and said > 0:
        return InterruptDecision(True, REASON_WORDS)
    if not _normalise(transcript):
        # STT lags speech: a long stretch with no words yet is still someone talking over us.
        if speech_ms >= 2 * policy.min_barge_in_ms:
            return InterruptDecision(True, REASON_LONG_SPEECH)
        return InterruptDecision(False, REASON_WAITING_FOR_WORDS)
    return InterruptDecision(False, REASON_TOO_FEW_WORDS)


def should_respond(transcript: str, *, agent_speaking: bool, policy: TurnPolicy) -> bool:
    """Whether a final transcript starts a new agent turn."""
    if not _normalise(transcript):
        return False
    # "mhm" while the agent talks means "go on"; said into silence it deserves an answer.
    return not (agent_speaking and is_backchannel(transcript, policy))


def _normalise(text: str) -> list[str]:
    words = _DROPPED.sub("", _SEPARATORS.sub(" ", text.lower())).split()
    # Recognisers spell hums out ("M-H-M.", "M. M."): a run of single letters is one word.
    merged: list[str] = []
    run = ""
    for word in words:
        if len(word) == 1 and word.isalpha():
            run += word
            continue
        if run:
            merged.append(run)
            run = ""
        merged.append(word)
    if run:
        merged.append(run)
    return merged


@lru_cache(maxsize=32)
def _phrases(backchannels: frozenset[str]) -> frozenset[tuple[str, ...]]:
    return frozenset(words for p in backchannels if (words := tuple(_normalise(p))))
