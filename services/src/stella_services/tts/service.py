"""The tts service: ``tts.request`` events become paced frames on ``stella.audio.<sid>.out``;
``stella.tts.synthesize`` streams audio back to an agent's ``AudioPipeline``."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from stella_contracts import (
    ControlInterrupt,
    Envelope,
    InvalidEnvelope,
    SessionEnded,
    SynthesisRequest,
    TtsRequest,
    subjects,
)
from stella_contracts.audio import HEADER_SEQ
from stella_contracts.speech import HEADER_ERROR, HEADER_FINAL
from stella_services.runtime.bus import Bus
from stella_services.tts.chunking import lead_in, speech_chunks
from stella_services.tts.engines import SpeechEngine, create_engine, to_bus_pcm
from stella_services.tts.settings import TtsSettings
from stella_services.tts.speaker import Speaker

log = logging.getLogger(__name__)

QUEUE = "tts"


class TtsService:
    name = "tts"

    def __init__(self, settings: TtsSettings | None = None) -> None:
        self.settings = settings or TtsSettings()
        self.engine: SpeechEngine | None = None
        self.bus: Bus | None = None
        self.speakers: dict[str, Speaker] = {}
        self._streams: dict[str, set[asyncio.Task[None]]] = {}
        self._subs: list[Subscription] = []
        # one synthesis at a time: two would only share the same two cores more slowly
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.engine = await loop.run_in_executor(
            self._executor, create_engine, self.settings.tts_provider, self.settings.tts_voice
        )
        if self.settings.tts_provider != "openai":  # warm-up: the first request is not slower
            await self.synthesize("Ready.", "")
        self.bus = await Bus.connect(self.settings, self.name)
        await self.bus.ensure_streams(self.settings.events_max_age_days)
        nc = self.bus.nc
        self._subs = [
            await nc.subscribe("stella.session.*.tts.request", queue=QUEUE, cb=self._on_request),
            await nc.subscribe("stella.session.*.control.interrupt", cb=self._on_control),
            await nc.subscribe("stella.session.*.lifecycle.ended", cb=self._on_control),
            await nc.subscribe(subjects.tts_synthesize(), queue=QUEUE, cb=self._on_stream),
        ]

    async def synthesize(self, text: str, voice: str) -> bytes:
        assert self.engine is not None
        engine = self.engine

        def run() -> bytes:
            return to_bus_pcm(engine.synthesize(text, voice), engine.sample_rate)

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    def speaker(self, session_id: str) -> Speaker:
        speaker = self.speakers.get(session_id)
        if speaker is None:
            assert self.bus is not None
            speaker = Speaker(session_id, self.bus, self.synthesize, self.settings.tts_lead_ms)
            self.speakers[session_id] = speaker
        return speaker

    async def _on_request(self, msg: Msg) -> None:
        try:
            env = Envelope.from_json(msg.data)
        except InvalidEnvelope:
            return  # the recorder dead-letters it
        if isinstance(env.payload, TtsRequest) and env.payload.text.strip():
            self.speaker(env.session_id).say(env.payload)

    async def _on_control(self, msg: Msg) -> None:
        try:
            env = Envelope.from_json(msg.data)
        except InvalidEnvelope:
            return
        if isinstance(env.payload, ControlInterrupt):
            if env.session_id in self.speakers:
                self.speakers[env.session_id].interrupt()
            for task in self._streams.get(env.session_id, set()):
                task.cancel()
        elif isinstance(env.payload, SessionEnded):
            speaker = self.speakers.pop(env.session_id, None)
            if speaker is not None:
                await speaker.close()
            for task in self._streams.pop(env.session_id, set()):
                task.cancel()

    async def _on_stream(self, msg: Msg) -> None:
        try:
            request = SynthesisRequest.model_validate_json(msg.data)
        except ValidationError as exc:
            await self._reply(msg.reply, b"", {HEADER_FINAL: "1", HEADER_ERROR: str(exc)[:500]})
            return
        task = asyncio.create_task(self._stream(msg.reply, request))
        tasks = self._streams.setdefault(request.session_id, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _stream(self, inbox: str, request: SynthesisRequest) -> None:
        seq = 0
        try:
            for chunk in lead_in(speech_chunks(request.text)) or [request.text]:
                pcm = await self.synthesize(chunk, request.voice)
                await self._reply(inbox, pcm, {HEADER_SEQ: str(seq)})
                seq += 1
            await self._reply(inbox, b"", {HEADER_SEQ: str(seq), HEADER_FINAL: "1"})
        except asyncio.CancelledError:
            await self._reply(inbox, b"", {HEADER_FINAL: "1", HEADER_ERROR: "interrupted"})
        except Exception as exc:
            log.exception("synthesis failed")
            await self._reply(inbox, b"", {HEADER_FINAL: "1", HEADER_ERROR: str(exc)[:500]})

    async def _reply(self, inbox: str, body: bytes, headers: dict[str, str]) -> None:
        assert self.bus is not None
        if inbox:
            await self.bus.nc.publish(inbox, body, headers=headers)

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        for speaker in list(self.speakers.values()):
            await speaker.close()
        if self.bus is not None:
            await self.bus.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
