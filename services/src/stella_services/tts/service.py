"""The tts service: ``tts.request`` events become paced frames on ``stella.audio.<sid>.out``;
``stella.tts.synthesize`` streams audio back to an agent's ``AudioPipeline``.

``tts.request`` is sticky: a session is claimed once (``stella.claim.tts``) and this
replica alone then hears that session's requests, so one speaker speaks them in order.
``stella.tts.synthesize`` stays stateless: any replica answers any request (a queue group).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from stella_contracts import (
    ControlInterrupt,
    Envelope,
    InvalidEnvelope,
    SynthesisRequest,
    TtsDone,
    TtsRequest,
    subjects,
)
from stella_contracts.audio import HEADER_SEQ
from stella_contracts.speech import HEADER_ERROR, HEADER_FINAL
from stella_sdk.bus import stop_taking
from stella_sdk.runtime.replica import Claim, Replica
from stella_services.runtime.bus import Bus
from stella_services.runtime.claims import speech_claims
from stella_services.tts.chunking import lead_in, speech_chunks
from stella_services.tts.engines import SpeechEngine, create_engine, to_bus_pcm
from stella_services.tts.queue import SynthesisQueue
from stella_services.tts.settings import TtsSettings
from stella_services.tts.speaker import Speaker

log = logging.getLogger(__name__)

QUEUE = "tts"


class TtsSession:
    """One claimed session: its speaker and the subscription to its ``tts.request``s."""

    def __init__(self, speaker: Speaker) -> None:
        self.speaker = speaker
        self.sub: Subscription | None = None

    async def on_request(self, msg: Msg) -> None:
        try:
            env = Envelope.from_json(msg.data)
        except InvalidEnvelope:
            return  # the recorder dead-letters it
        if isinstance(env.payload, TtsRequest) and env.payload.text.strip():
            self.speaker.say(env.payload)

    def held(self) -> tuple[int, int]:
        return int(not self.speaker.task.done()), int(self.sub is not None)

    async def close(self) -> None:
        if self.sub is not None:
            with contextlib.suppress(Exception):
                await self.sub.unsubscribe()
            self.sub = None
        await self.speaker.close()


class TtsService:
    name = "tts"

    def __init__(self, settings: TtsSettings | None = None) -> None:
        self.settings = settings or TtsSettings()
        self.engine: SpeechEngine | None = None
        self.bus: Bus | None = None
        self.replica: Replica | None = None
        self._streams: dict[str, set[asyncio.Task[None]]] = {}
        self._subs: list[Subscription] = []
        self._stream_sub: Subscription | None = None
        self._streams_total = 0
        # one synthesis at a time: two would only share the same two cores more slowly
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")
        self._queue: SynthesisQueue[bytes] = SynthesisQueue(self._executor)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.engine = await loop.run_in_executor(
            self._executor,
            create_engine,
            self.settings.tts_provider,
            self.settings.tts_voice,
            self.settings.openai_tts_model,
        )
        if self.settings.tts_provider != "openai":  # warm-up: the first request is not slower
            await self.synthesize("Ready.", "")
        self.bus = await Bus.connect(self.settings, self.name)
        await self.bus.ensure_streams(
            self.settings.events_max_age_days, self.settings.stream_replicas
        )
        nc = self.bus.nc
        self.replica = Replica(
            self.bus,
            self.settings,
            self.name,
            self.open_session,
            extra=self._stream_load,
            on_ended=self._stop_streams,
        )
        await self.replica.start(speech_claims(self.name))
        self._subs = [
            await nc.subscribe(
                subjects.any_session_event(ControlInterrupt.TYPE), cb=self._on_interrupt
            ),
        ]
        self._stream_sub = await nc.subscribe(
            subjects.tts_synthesize(), queue=QUEUE, cb=self._on_stream
        )

    async def synthesize(self, text: str, voice: str, first: bool = True) -> bytes:
        """Bus PCM for ``text``; ``first``: a reply's first clause, which goes ahead."""
        assert self.engine is not None
        engine = self.engine

        def run() -> bytes:
            return to_bus_pcm(engine.synthesize(text, voice), engine.sample_rate)

        return await self._queue.run(run, first=first)

    async def open_session(self, claim: Claim) -> TtsSession:
        """A speaker for the session, subscribed to its requests (before the claim is answered).
        Taken over from a replica that died, the reply it was speaking is dropped, and its
        ``tts.done`` says so (the agent's turn then ends instead of waiting for it)."""
        assert self.bus is not None
        session_id = claim.session_id
        session = TtsSession(
            Speaker(session_id, self.bus, self.synthesize, self.settings.tts_lead_ms)
        )
        session.sub = await self.bus.nc.subscribe(
            subjects.session_event(session_id, TtsRequest.TYPE), cb=session.on_request
        )
        if claim.resumed:
            await self._drop_unfinished(session_id)
        return session

    async def _drop_unfinished(self, session_id: str) -> None:
        """The last ``tts.request`` with no ``tts.done`` after it: the dead replica's reply."""
        assert self.bus is not None
        found = await self.bus.last_event(session_id, TtsRequest.TYPE)
        if found is None or not isinstance(request := found[1].payload, TtsRequest):
            return
        done = await self.bus.last_event(session_id, TtsDone.TYPE)
        if done is not None and (
            done[0] > found[0]
            or (isinstance(done[1].payload, TtsDone) and done[1].payload.turn_id == request.turn_id)
        ):
            return
        await self.bus.emit(
            session_id,
            TtsDone(
                turn_id=request.turn_id,
                text=request.text,
                spoken_text="",
                interrupted=True,
                dropped=True,
            ),
        )

    @property
    def speakers(self) -> dict[str, Speaker]:
        sessions = self.replica.sessions if self.replica else {}
        return {sid: s.speaker for sid, s in sessions.items() if isinstance(s, TtsSession)}

    def _stream_load(self) -> tuple[set[str], int]:
        """Sessions with a synthesis stream in flight, and those streams (for the status)."""
        return set(self._streams), sum(len(tasks) for tasks in self._streams.values())

    def _stop_streams(self, session_id: str) -> None:
        """No one wants the rest of these streams' audio (an interrupt, or the end)."""
        for task in list(self._streams.get(session_id, ())):
            task.cancel()

    async def _on_interrupt(self, msg: Msg) -> None:
        """Barge-in: stop speaking and drop queued synthesis (a session's end does the same
        through the replica's ``on_ended`` hook, which hears every ended session)."""
        try:
            env = Envelope.from_json(msg.data)
        except InvalidEnvelope:
            return
        if isinstance(env.payload, ControlInterrupt):
            speaker = self.speakers.get(env.session_id)
            if speaker is not None:
                speaker.interrupt()
            self._stop_streams(env.session_id)

    async def _on_stream(self, msg: Msg) -> None:
        try:
            request = SynthesisRequest.model_validate_json(msg.data)
        except ValidationError as exc:
            await self._reply(msg.reply, b"", {HEADER_FINAL: "1", HEADER_ERROR: str(exc)[:500]})
            return
        task = asyncio.create_task(self._stream(msg.reply, request))
        self._streams_total += 1
        self._streams.setdefault(request.session_id, set()).add(task)
        task.add_done_callback(lambda t: self._stream_done(request.session_id, t))

    def _stream_done(self, session_id: str, task: asyncio.Task[None]) -> None:
        tasks = self._streams.get(session_id)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:  # nothing is kept for a session between its streams
                del self._streams[session_id]

    async def _stream(self, inbox: str, request: SynthesisRequest) -> None:
        seq = 0
        try:
            for chunk in lead_in(speech_chunks(request.text)) or [request.text]:
                pcm = await self.synthesize(chunk, request.voice, first=seq == 0)
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

    async def _finish_streams(self) -> None:
        if self._stream_sub is not None:
            await stop_taking(self._stream_sub)  # queued requests still get their audio
            self._stream_sub = None
        streams = [t for tasks in self._streams.values() for t in tasks]
        if streams:
            await asyncio.wait(streams, timeout=self.settings.drain_timeout_s)

    async def stop(self) -> None:
        """Drain: no new sessions or streams; finish what is in flight, then let go."""
        held = self.replica.drain() if self.replica is not None else asyncio.sleep(0)
        await asyncio.gather(held, self._finish_streams())
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if self.replica is not None:
            await self.replica.stop()
        if self.bus is not None:
            await self.bus.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
