"""Pure pieces of scale-out: who takes a session, what a status says, what a claim records."""

from __future__ import annotations

import pytest

from stella_contracts import (
    ClaimReply,
    ClaimRequest,
    Envelope,
    EnvelopeFactory,
    ServiceStatus,
    SessionClaimed,
    chat_view,
)
from stella_sdk.runtime.admission import Admission, admit


@pytest.mark.parametrize(
    ("already_held", "draining", "held", "capacity", "expected"),
    [
        (False, False, 0, 50, Admission(True)),
        (False, False, 49, 50, Admission(True)),
        (False, False, 50, 50, Admission(False, "at capacity")),
        (False, False, 10_000, 0, Admission(True)),  # 0: no limit
        (False, True, 0, 50, Admission(False, "draining")),
        (False, True, 50, 50, Admission(False, "draining")),
        # a repeated request for a session held here is never sent elsewhere
        (True, False, 50, 50, Admission(True, "already serving")),
        (True, True, 3, 50, Admission(True, "already serving")),
    ],
)
def test_admission(
    already_held: bool, draining: bool, held: int, capacity: int, expected: Admission
) -> None:
    decision = admit(already_held=already_held, draining=draining, held=held, capacity=capacity)
    assert decision == expected


def test_status_says_whether_anything_is_held() -> None:
    idle = ServiceStatus(service="stt", instance="a", pid=1)
    assert not idle.holds_anything
    assert ServiceStatus(service="stt", instance="a", pid=1, sessions=["s1"]).holds_anything
    assert ServiceStatus(service="tts", instance="a", pid=1, tasks=1).holds_anything
    assert ServiceStatus(service="tts", instance="a", pid=1, subscriptions=1).holds_anything
    # process-wide counts are context, not something a session holds
    assert not ServiceStatus(
        service="tts", instance="a", pid=1, process_tasks=9, process_subscriptions=7
    ).holds_anything
    again = ServiceStatus.model_validate_json(idle.model_dump_json())
    assert again == idle


def test_claim_models_refuse_what_is_not_a_claim() -> None:
    request = ClaimRequest(session_id="s1", service="stt")
    assert request.handoff_from == ""
    with pytest.raises(ValueError):
        ClaimRequest.model_validate_json(b'{"session_id": "", "service": "stt"}')
    with pytest.raises(ValueError):
        ClaimReply.model_validate_json(b'{"accepted": true, "extra": 1}')


def test_a_claim_is_an_event_and_reads_as_one_line() -> None:
    env = EnvelopeFactory("tts", "host-7").wrap(
        "s1", SessionClaimed(service="tts", instance="host-7", handoff_from="host-3")
    )
    back = Envelope.from_json(env.to_json())
    assert back.subject == "stella.session.s1.lifecycle.claimed"
    view = chat_view(back)
    assert not view.is_chat
    assert view.content == "tts served by host-7 (handed on by host-3)"
