"""``stella call`` counts the answer to the question, never the greeting's own turn."""

from __future__ import annotations

from stella_sdk.session import CONNECT_TURN
from stella_services.cli.call import GREETING_TURN, CallLog


def test_the_greetings_turn_is_not_an_answer_even_when_it_ends_after_the_question() -> None:
    assert GREETING_TURN == CONNECT_TURN
    log = CallLog()
    log.event({"type": "stt.transcript", "payload": {"text": "Buy milk.", "is_final": True}})
    log.event({"type": "agent.turn_done", "payload": {"turn_id": CONNECT_TURN}})
    assert log.turns_done == 0
    log.event({"type": "agent.turn_done", "payload": {"turn_id": "01a2375b16a7"}})
    assert log.turns_done == 1
    assert log.lines == [("user", "Buy milk.")]
