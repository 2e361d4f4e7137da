from dataclasses import FrozenInstanceError

import pytest

from stella_sdk.turn import (
    DEFAULT_BACKCHANNELS,
    InterruptDecision,
    TurnPolicy,
    content_words,
    is_backchannel,
    should_interrupt,
    should_respond,
)

POLICY = TurnPolicy()


def test_policy_defaults() -> None:
    assert POLICY.min_barge_in_ms == 400
    assert POLICY.min_barge_in_words == 2
    assert POLICY.interrupt_on_final is True
    assert POLICY.backchannels == DEFAULT_BACKCHANNELS
    assert {"mhm", "mm-hmm", "uh-huh", "i see", "got it", "okay", "um"} <= POLICY.backchannels
    assert len(POLICY.backchannels) == 17


def test_policy_is_frozen_hashable_and_checked() -> None:
    with pytest.raises(FrozenInstanceError):
        POLICY.min_barge_in_ms = 1  # type: ignore[misc]
    assert hash(TurnPolicy()) == hash(POLICY)
    # Any iterable of strings is kept as a frozenset.
    policy = TurnPolicy(backchannels={"yo"})  # type: ignore[arg-type]
    assert policy.backchannels == frozenset({"yo"})
    with pytest.raises(ValueError, match="min_barge_in_ms"):
        TurnPolicy(min_barge_in_ms=-1)
    with pytest.raises(ValueError, match="min_barge_in_words"):
        TurnPolicy(min_barge_in_words=-1)


# --- backchannels ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "mhm",
        "mhm.",
        "Mhm!",
        "  MHM  ",
        "okay okay",
        "Okay, okay.",
        "yeah yeah yeah",
        "Mm-hmm",
        "mm hmm",  # STT may drop the hyphen
        "Mm, hmm.",
        "uh-huh",
        "Uh huh...",
        "I see.",
        "i SEE",
        "Got it!",
        "yeah, got it",
        "O.K.",
        "ok",
        "Alright\u2026",
        "um",
        "hmm?",
        "right, right",
        '"Sure."',
    ],
)
def test_backchannels(text: str) -> None:
    assert is_backchannel(text, POLICY)
    assert content_words(text, POLICY) == []


@pytest.mark.parametrize(
    ("text", "content"),
    [
        ("okay stop", ["stop"]),
        ("stop", ["stop"]),
        ("wait, what?", ["wait", "what"]),
        ("yeah but no", ["but", "no"]),
        ("I see you", ["you"]),  # "i see" is matched as one phrase, longest first
        ("I", ["i"]),
        ("see", ["see"]),
        ("got", ["got"]),
        ("mhmm", ["mhmm"]),  # not in the list
        ("That's right", ["thats"]),
        ("Okay, book it for 9:30.", ["book", "it", "for", "9", "30"]),
    ],
)
def test_not_backchannels(text: str, content: list[str]) -> None:
    assert not is_backchannel(text, POLICY)
    assert content_words(text, POLICY) == content


@pytest.mark.parametrize("text", ["", "   ", ".", "...", "?!", "\u2014"])
def test_nothing_said_is_no_backchannel(text: str) -> None:
    assert not is_backchannel(text, POLICY)
    assert content_words(text, POLICY) == []


def test_custom_backchannels() -> None:
    policy = TurnPolicy(backchannels=frozenset({"d'accord", "oui", "uh-huh"}))
    assert is_backchannel("Oui, oui.", policy)
    assert is_backchannel("D'accord!", policy)
    assert is_backchannel("uh huh", policy)
    assert not is_backchannel("mhm", policy)
    assert not is_backchannel("oui", TurnPolicy(backchannels=frozenset()))


# --- barge-in ----------------------------------------------------------------------------------


def _decide(
    transcript: str,
    speech_ms: int,
    *,
    is_final: bool = False,
    agent_speaking: bool = True,
    policy: TurnPolicy = POLICY,
) -> InterruptDecision:
    return should_interrupt(
        agent_speaking=agent_speaking,
        speech_ms=speech_ms,
        transcript=transcript,
        is_final=is_final,
        policy=policy,
    )


@pytest.mark.parametrize(
    ("transcript", "speech_ms", "is_final", "expected"),
    [
        # Short noise: a cough or a click, transcribed or not.
        ("", 120, False, InterruptDecision(False, "too short")),
        ("hey there", 399, False, InterruptDecision(False, "too short")),
        # At the threshold, two words interrupt.
        ("hey there", 400, False, InterruptDecision(True, "words")),
        ("wait a second", 1200, False, InterruptDecision(True, "words")),
        ("Wait, WAIT!", 500, False, InterruptDecision(True, "words")),
        # Backchannels never interrupt, however long or final.
        ("mhm", 300, False, InterruptDecision(False, "backchannel")),
        ("mhm.", 2000, False, InterruptDecision(False, "backchannel")),
        ("Okay okay.", 900, True, InterruptDecision(False, "backchannel")),
        ("yeah, got it", 5000, True, InterruptDecision(False, "backchannel")),
        # Backchannel words do not count towards min_barge_in_words.
        ("okay stop", 600, False, InterruptDecision(False, "too few words")),
        ("yeah hold on", 600, False, InterruptDecision(True, "words")),
        ("stop", 600, False, InterruptDecision(False, "too few words")),
        # Speech not yet transcribed: wait for words, unless it has gone on for long.
        ("", 400, False, InterruptDecision(False, "waiting for transcript")),
        ("", 799, False, InterruptDecision(False, "waiting for transcript")),
        ("", 800, False, InterruptDecision(True, "speech long enough")),
        ("...", 3000, False, InterruptDecision(True, "speech long enough")),
        # A final transcript with any real word interrupts, even a short one.
        ("stop", 250, True, InterruptDecision(True, "final transcript")),
        ("okay stop", 600, True, InterruptDecision(True, "final transcript")),
        ("", 250, True, InterruptDecision(False, "too short")),
        ("", 900, True, InterruptDecision(True, "speech long enough")),
    ],
)
def test_should_interrupt(
    transcript: str, speech_ms: int, is_final: bool, expected: InterruptDecision
) -> None:
    assert _decide(transcript, speech_ms, is_final=is_final) == expected


@pytest.mark.parametrize(
    ("transcript", "speech_ms", "is_final"),
    [("wait a second", 3000, False), ("stop", 3000, True), ("", 9000, False), ("mhm", 10, True)],
)
def test_nothing_to_interrupt_when_the_agent_is_quiet(
    transcript: str, speech_ms: int, is_final: bool
) -> None:
    decision = _decide(transcript, speech_ms, is_final=is_final, agent_speaking=False)
    assert decision == InterruptDecision(False, "agent not speaking")


def test_interrupt_on_final_can_be_turned_off() -> None:
    policy = TurnPolicy(interrupt_on_final=False)
    assert _decide("stop", 250, is_final=True, policy=policy) == InterruptDecision(
        False, "too short"
    )
    assert _decide("stop", 600, is_final=True, policy=policy) == InterruptDecision(
        False, "too few words"
    )
    assert _decide("stop now", 600, is_final=True, policy=policy) == InterruptDecision(
        True, "words"
    )


def test_thresholds_come_from_the_policy() -> None:
    eager = TurnPolicy(min_barge_in_ms=100, min_barge_in_words=1)
    assert _decide("stop", 100, policy=eager) == InterruptDecision(True, "words")
    assert _decide("", 199, policy=eager) == InterruptDecision(False, "waiting for transcript")
    assert _decide("", 200, policy=eager) == InterruptDecision(True, "speech long enough")
    patient = TurnPolicy(min_barge_in_ms=1000, min_barge_in_words=3)
    assert _decide("wait a second", 999, policy=patient) == InterruptDecision(False, "too short")
    assert _decide("wait a", 1500, policy=patient) == InterruptDecision(False, "too few words")
    assert _decide("wait a second", 1000, policy=patient) == InterruptDecision(True, "words")
    assert _decide("", 1999, policy=patient) == InterruptDecision(False, "waiting for transcript")
    # With no word minimum, any speech long enough interrupts, but an empty transcript still
    # needs the long-speech rule.
    anything = TurnPolicy(min_barge_in_words=0)
    assert _decide("what", 400, policy=anything) == InterruptDecision(True, "words")
    assert _decide("", 500, policy=anything) == InterruptDecision(False, "waiting for transcript")
    assert _decide("mhm", 500, policy=anything) == InterruptDecision(False, "backchannel")


def test_interrupt_decision_is_frozen() -> None:
    decision = InterruptDecision(True, "words")
    with pytest.raises(FrozenInstanceError):
        decision.interrupt = False  # type: ignore[misc]


# --- starting a new turn -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transcript", "agent_speaking", "respond"),
    [
        ("What time is it?", False, True),
        ("What time is it?", True, True),
        ("stop", True, True),
        ("okay stop", True, True),
        # "mhm" while the agent talks means "go on"; into silence it deserves an answer.
        ("mhm", True, False),
        ("Mm-hmm.", True, False),
        ("okay okay", True, False),
        ("mhm", False, True),
        ("Okay.", False, True),
        # Nothing said.
        ("", False, False),
        ("", True, False),
        ("  ", False, False),
        ("...", False, False),
    ],
)
def test_should_respond(transcript: str, agent_speaking: bool, respond: bool) -> None:
    assert should_respond(transcript, agent_speaking=agent_speaking, policy=POLICY) is respond


def test_spelled_out_hums_are_backchannels() -> None:
    policy = TurnPolicy()
    assert is_backchannel("M-H-M.", policy)
    assert is_backchannel("Mm. Hmm.", policy) or is_backchannel("M. M.", policy)
    assert not is_backchannel("I need a car", policy)
