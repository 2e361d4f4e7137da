"""``AudioPipeline``: the speech side of an agent (STT and TTS providers)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from stella_sdk.session import SpeechServiceUnavailable, current_session

STT_PROVIDERS = ("sherpa", "whisper", "openai")
TTS_PROVIDERS = ("kokoro", "piper", "openai")


class SpeechUnavailable(RuntimeError):
    """Speech was asked for but cannot be produced here; the message says what is missing."""


class AudioPipeline:
    def __init__(
        self, stt_provider: str = "sherpa", tts_provider: str = "kokoro", voice: str = ""
    ) -> None:
        if stt_provider not in STT_PROVIDERS:
            raise ValueError(f"stt_provider {stt_provider!r} is not one of {STT_PROVIDERS}")
        if tts_provider not in TTS_PROVIDERS:
            raise ValueError(f"tts_provider {tts_provider!r} is not one of {TTS_PROVIDERS}")
        self.stt_provider = stt_provider
        self.tts_provider = tts_provider
        self.voice = voice

    async def text_to_speech_stream(self, text: str) -> AsyncIterator[bytes]:
        """Speak ``text``: records it as the agent's reply, then yields its audio as PCM
        s16le 16 kHz mono chunks. A text-only session gets the reply and no audio."""
        session = current_session.get()
        if session is None:
            raise RuntimeError("text_to_speech_stream works inside a session (agent.run())")
        await session.say_text(text)
        if not session.audio:
            return
        try:
            async for chunk in session.synthesize(text, self.voice, self.tts_provider):
                yield chunk
        except SpeechServiceUnavailable as exc:
            raise SpeechUnavailable(str(exc)) from exc
