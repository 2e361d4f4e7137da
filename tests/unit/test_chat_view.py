import pytest

from stella_contracts import (
    AgentText,
    Debug,
    EnvelopeFactory,
    Event,
    SttTranscript,
    SttVad,
    ToolCall,
    ToolError,
    ToolErrorKind,
    ToolResult,
    TtsDone,
    UserText,
    VadState,
    chat_view,
)

F = EnvelopeFactory("t", "1")


@pytest.mark.parametrize(
    ("event", "role", "message_type", "content", "is_chat"),
    [
        (UserText(text="hi"), "user", "user_text", "hi", True),
        (SttTranscript(text="hello", is_final=True), "user", "transcript", "hello", True),
        (SttTranscript(text="hel", is_final=False), "user", "transcript_partial", "hel", False),
        (AgentText(text="Hi!"), "assistant", "agent_text", "Hi!", True),
        (AgentText(text="Hi", is_final=False), "assistant", "agent_text_delta", "Hi", False),
        (
            ToolCall(call_id="1", name="create_task", arguments={"title": "a"}),
            "system",
            "tool.call",
            'create_task({"title":"a"})',
            False,
        ),
        (
            ToolResult(call_id="1", name="create_task", ok=True, result={"task_id": 3}),
            "system",
            "tool.result",
            'create_task → {"task_id":3}',
            False,
        ),
        (
            ToolResult(
                call_id="1",
                name="x",
                ok=False,
                error=ToolError(kind=ToolErrorKind.TIMEOUT, message="took > 5 s"),
            ),
            "system",
            "tool.result",
            "x failed (timeout): took > 5 s",
            False,
        ),
        (
            SttVad(state=VadState.SPEECH_ENDED, audio_ms=1200),
            "system",
            "stt.vad",
            "speech_ended at 1200 ms",
            False,
        ),
        (
            TtsDone(
                turn_id="t", text="Hello there", spoken_text="Hello", interrupted=True, audio_ms=400
            ),
            "system",
            "tts.done",
            "spoke 400 ms: Hello (interrupted)",
            False,
        ),
        (Debug(message="note"), "system", "debug", "note", False),
    ],
)
def test_chat_view(event: Event, role: str, message_type: str, content: str, is_chat: bool) -> None:
    view = chat_view(F.wrap("s", event))
    assert (view.role.value, str(view.message_type), view.content, view.is_chat) == (
        role,
        message_type,
        content,
        is_chat,
    )
