import pytest

from stella_contracts import subjects
from stella_contracts.subjects import InvalidSubjectToken


def test_builders_spell_the_architecture_subjects() -> None:
    assert subjects.session_event("s-1", "stt.transcript") == "stella.session.s-1.stt.transcript"
    assert subjects.session_events("s-1") == "stella.session.s-1.>"
    assert subjects.all_session_events() == "stella.session.>"
    assert subjects.audio_in("s_1") == "stella.audio.s_1.in"
    assert subjects.audio_out("s_1") == "stella.audio.s_1.out"
    assert subjects.dispatch("my-custom-agent") == "stella.dispatch.my-custom-agent"
    assert subjects.tool("create_task") == "stella.tools.create_task"
    assert subjects.deadletter("recorder") == "stella.deadletter.recorder"


def test_scale_out_subjects() -> None:
    assert subjects.claim("stt") == "stella.claim.stt"
    assert subjects.status() == "stella.status"
    assert subjects.status("tool-executor") == "stella.status.tool-executor"
    ended = subjects.any_session_event("lifecycle.ended")
    assert ended == "stella.session.*.lifecycle.ended"
    with pytest.raises(InvalidSubjectToken):
        subjects.claim("stt.*")
    with pytest.raises(InvalidSubjectToken):
        subjects.any_session_event("Lifecycle.Ended")


@pytest.mark.parametrize("bad", ["", "a.b", "a b", "*", ">", "a>", "sess\n"])
def test_tokens_with_separators_or_wildcards_are_refused(bad: str) -> None:
    with pytest.raises(InvalidSubjectToken):
        subjects.session_event(bad, "user.text")


@pytest.mark.parametrize("bad", ["User.Text", "user..text", ".x", "x.", "user text", "a.>"])
def test_event_types_must_be_dotted_lowercase(bad: str) -> None:
    with pytest.raises(InvalidSubjectToken):
        subjects.session_event("s1", bad)


def test_parse_session_subject_round_trips() -> None:
    subject = subjects.session_event("abc", "tool.result")
    assert subjects.parse_session_subject(subject) == ("abc", "tool.result")
    with pytest.raises(InvalidSubjectToken):
        subjects.parse_session_subject("stella.audio.abc.in")
