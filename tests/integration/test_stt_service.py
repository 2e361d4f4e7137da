"""The stt service over NATS with real models: silero VAD and Whisper tiny.en."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nats.aio.msg import Msg

from stella_contracts import Envelope, SttTranscript, SttVad, VadState, new_id, subjects
from stella_services.runtime.bus import Bus
from stella_services.runtime.claims import request_claim
from tests.support.processes import ServiceProcess
from tests.support.speech import silence, speech_pcm, stream_audio, wer
from tests.support.waiting import until

pytestmark = pytest.mark.slow
Start = Callable[[str, dict[str, str]], ServiceProcess]

SENTENCES = [
    "Please create a task to buy milk tomorrow morning.",
    "What time does the pharmacy on Main Street open on Saturday?",
    "Remind me to call my sister at seven thirty tonight.",
    "I would like to book a table for four people at eight.",
    "Can you read me the last three messages from Anna?",
]


@pytest.mark.parametrize("provider", ["sherpa", "whisper"])
async def test_finals_partials_and_vad_through_the_service(
    bus: Bus, recorder_env: dict[str, str], start_service: Start, provider: str
) -> None:
    start_service("stt", {**recorder_env, "STELLA_STT_PROVIDER": provider})
    sid = str(new_id())
    events: list[Envelope] = []

    async def on(msg: Msg) -> None:
        events.append(Envelope.from_json(msg.data))

    sub = await bus.nc.subscribe(subjects.session_events(sid), cb=on)
    assert (await request_claim(bus.nc, "stt", sid)).startswith("stt/")
    pcm = silence(500)
    for sentence in SENTENCES:
        pcm += speech_pcm(sentence) + silence(1200)
    await stream_audio(bus, sid, pcm, speed=1.0)

    def heard() -> list[SttTranscript]:
        return [p for e in events if isinstance(p := e.payload, SttTranscript) and p.is_final]

    await until(
        lambda: len(heard()) >= len(SENTENCES),
        lambda: f"a final transcript of every sentence; got {[f.text for f in heard()]}",
    )
    await sub.unsubscribe()
    finals = heard()
    assert len(finals) == len(SENTENCES), [f.text for f in finals]
    errors = total = 0
    for sentence, final in zip(SENTENCES, finals, strict=True):
        e, n = wer(sentence, final.text)
        errors, total = errors + e, total + n
    assert errors / total <= 0.10, [f.text for f in finals]

    vad = [e.payload for e in events if isinstance(e.payload, SttVad)]
    assert [v.state for v in vad] == [VadState.SPEECH_STARTED, VadState.SPEECH_ENDED] * 5
    # Partials come while the user speaks, and never after their utterance's final. Whether
    # a given utterance gets one is a matter of speed: stt starts no partial while the
    # decoder is busy and drops one that finishes after the speech ended (finals first), so
    # on a loaded machine a 2-3 s utterance may have none. Latency is the bench's to report,
    # not a test's to assert; the mechanism is checked here.
    with_partials = 0
    for final in finals:
        partials = [
            e
            for e in events
            if isinstance(e.payload, SttTranscript)
            and not e.payload.is_final
            and e.payload.utterance_id == final.utterance_id
        ]
        first_final = next(i for i, e in enumerate(events) if e.payload is final)
        assert all(events.index(p) < first_final for p in partials), final.text
        with_partials += bool(partials)
    assert with_partials, "no utterance had a partial transcript"
