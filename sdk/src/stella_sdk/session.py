"""One live session inside an agent runner: its events in, the agent's replies out.

Events of ``stella.session.<sid>.>`` are read as they arrive; user turns run one after
another on a turn worker, so a new turn never overlaps the previous one, while the reader
stays free to decide barge-in (``stella_sdk.turn``) and to see the end of the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy

from stella_contracts import (
    AgentText,
    AgentTurnDone,
    ControlInterrupt,
    DispatchRequest,
    Envelope,
    InvalidEnvelope,
    SessionEnded,
    SttTranscript,
    SttVad,
    SynthesisRequest,
    TtsDone,
    TtsRequest,
    TurnMetrics,
    UserText,
    VadState,
    audio,
    new_id,
    subjects,
)
from stella_contracts.speech import HEADER_ERROR, HEADER_FINAL
from stella_sdk.bus import Bus
from stella_sdk.checkpoint import Checkpoints, restore, snapshot
from stella_sdk.history import HistoryClient
from stella_sdk.pacing import Pacer
from stella_sdk.settings import AgentSettings
from stella_sdk.toolbox import ToolCaller
from stella_sdk.turn import TurnPolicy, should_interrupt, should_respond

if TYPE_CHECKING:
    from stella_sdk.agent import BaseAgent

log = logging.getLogger(__name__)

current_session: ContextVar[AgentSession | None] = ContextVar("stella_session", default=None)

CONNECT_TURN = "connect"
EVENTS_HEARTBEAT_S = 1.0  # a lost events consumer is noticed and recreated within a few of these
FIRST_AUDIO_TIMEOUT_S = 15.0


class SpeechServiceUnavailable(RuntimeError):
    """No tts service answered a synthesis request."""


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class Turn:
    turn_id: str
    started: float = field(default_factory=time.perf_counter)
    replies: int = 0
    user_speech_end_us: int | None = None
    final_transcript_us: int | None = None
    first_agent_text_us: int | None = None
    first_audio_synth_us: int | None = None
    first_audio_out_us: int | None = None
    speech_requests: int = 0  # tts.request events whose tts.done is awaited for the metrics

    def metrics(self) -> TurnMetrics:
        marks = {
            "user_speech_end_us": self.user_speech_end_us,
            "final_transcript_us": self.final_transcript_us,
            "first_agent_text_us": self.first_agent_text_us,
            "first_audio_synth_us": self.first_audio_synth_us,
            "first_audio_out_us": self.first_audio_out_us,
        }
        deltas: dict[str, float] = {}
        pairs = [
            ("stt_final_ms", "user_speech_end_us", "final_transcript_us"),
            ("agent_text_ms", "final_transcript_us", "first_agent_text_us"),
            ("synthesis_ms", "first_agent_text_us", "first_audio_synth_us"),
            ("audio_out_ms", "first_audio_synth_us", "first_audio_out_us"),
            ("voice_to_voice_ms", "user_speech_end_us", "first_audio_out_us"),
        ]
        for name, a, b in pairs:
            if marks[a] is not None and marks[b] is not None:
                deltas[name] = round((marks[b] - marks[a]) / 1000, 3)  # type: ignore[operator]
        return TurnMetrics(turn_id=self.turn_id, deltas_ms=deltas, **marks)


class AgentSession:
    def __init__(
        self,
        bus: Bus,
        settings: AgentSettings,
        request: DispatchRequest,
        agent: BaseAgent,
        *,
        resumed: bool = False,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self.bus = bus
        self.resumed = resumed  # taken over from a runner that died or drained
        self.checkpoints = checkpoints
        self._kept = b""  # the agent state last kept
        self._over = False  # the session itself ended (not just its hold here)
        self.settings = settings
        self.request = request
        self.session_id = request.session_id
        self.room_name = request.room_name
        self.audio = request.audio
        self.agent = agent
        self.policy = TurnPolicy(
            min_barge_in_ms=settings.barge_in_min_ms,
            min_barge_in_words=settings.barge_in_min_words,
        )
        self.tools = ToolCaller(bus, settings, request.session_id)
        self.history = HistoryClient(settings.history_addr, request.history_token)
        self.turn: Turn | None = None
        self.ended = asyncio.Event()
        self._events: asyncio.Queue[Envelope | None] = asyncio.Queue()
        self._turns: asyncio.Queue[tuple[Turn, Callable[[], Awaitable[Any]]] | None] = (
            asyncio.Queue()
        )
        self._sub: Subscription | None = None
        self._reader: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._turn_task: asyncio.Task[Any] | None = None
        self._inboxes = 0  # synthesis replies being received
        self._audio_seq = 0
        self._pacer = Pacer()
        # speech state, for barge-in and the latency ledger
        self._speaking_turns: dict[str, Turn] = {}  # tts.request sent, tts.done not yet
        self._streaming = 0  # pipeline streams being published
        self._user_speech_start_ms: int | None = None
        self._last_speech_end_us: int | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> bool:
        """Subscribe before the dispatch is answered, so no event of the session is missed.
        False (and nothing started) if the session has ended already.

        The events come from JetStream (an ordered consumer of the session's subjects), not
        from a plain subscription: when this runner's NATS node dies and it reconnects to
        another, what was published meanwhile is delivered then instead of lost."""
        self._sub = await self.bus.js.subscribe(
            subjects.session_events(self.session_id),
            stream=subjects.EVENTS_STREAM,
            cb=self._on_message,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
            idle_heartbeat=EVENTS_HEARTBEAT_S,
        )
        if await self.bus.has_ended(self.session_id):  # its opener gave up on us
            await self._sub.unsubscribe()
            self._sub = None
            self.ended.set()
            return False
        self.agent._attach(self)
        if self.resumed and self.checkpoints is not None:
            kept = await self.checkpoints.load(self.session_id)
            if kept:
                restored = restore(self.agent, kept)
                self._kept = kept
                log.info("session %s resumed with the agent's %s", self.session_id, restored)
        self._worker = asyncio.create_task(self._work(), name=f"turns-{self.session_id}")
        self._reader = asyncio.create_task(self._read(), name=f"session-{self.session_id}")
        await self._turns.put((Turn(CONNECT_TURN), self.agent.on_connect))
        return True

    def _muted(self) -> bool:
        """A resumed session's ``on_connect`` runs again (setup) but says nothing: the user
        heard the greeting from the runner before."""
        return self.resumed and self.turn is not None and self.turn.turn_id == CONNECT_TURN

    async def _keep_state(self) -> None:
        if self.checkpoints is None:
            return
        state = snapshot(self.agent)
        if state != self._kept:
            await self.checkpoints.save(self.session_id, state)
            self._kept = state

    def stop(self) -> None:
        """End the session from the runner's side (shutdown); idempotent."""
        self._events.put_nowait(None)

    def held(self) -> tuple[int, int]:
        """(asyncio tasks, NATS subscriptions) this session holds now; (0, 0) once ended."""
        running = (self._reader, self._worker, self._turn_task)
        tasks = sum(1 for t in running if t is not None and not t.done())
        return tasks, int(self._sub is not None) + self._inboxes

    async def _on_message(self, msg: Msg) -> None:
        try:
            envelope = Envelope.from_json(msg.data)
        except InvalidEnvelope:
            return  # the recorder dead-letters it; one report is enough
        self._events.put_nowait(envelope)

    async def _read(self) -> None:
        token = current_session.set(self)
        try:
            while (envelope := await self._events.get()) is not None:
                p = envelope.payload
                if isinstance(p, SessionEnded):
                    self._over = True
                    break
                if isinstance(p, UserText):
                    turn = Turn(new_id().hex)
                    await self._turns.put((turn, partial(self.agent.on_user_text, p.text)))
                elif isinstance(p, SttVad):
                    self._on_vad(p)
                elif isinstance(p, SttTranscript):
                    await self._on_transcript(p, envelope)
                elif isinstance(p, TtsDone):
                    await self._on_tts_done(p)
                elif isinstance(p, ControlInterrupt) and envelope.source.instance != (
                    self.bus.instance
                ):
                    self._cancel_turn()  # someone else (a client, the gateway) said stop
        finally:
            await self._finish()
            current_session.reset(token)

    # -- turn-taking and barge-in ----------------------------------------------------------

    @property
    def agent_speaking(self) -> bool:
        return bool(self._speaking_turns) or self._streaming > 0

    def _on_vad(self, vad: SttVad) -> None:
        if vad.state is VadState.SPEECH_STARTED:
            self._user_speech_start_ms = vad.audio_ms
        else:
            self._last_speech_end_us = vad.wall_us

    async def _on_transcript(self, p: SttTranscript, envelope: Envelope) -> None:
        speech_ms = p.end_ms - (self._user_speech_start_ms or p.start_ms)
        if self.agent_speaking:
            decision = should_interrupt(
                agent_speaking=True,
                speech_ms=speech_ms,
                transcript=p.text,
                is_final=p.is_final,
                policy=self.policy,
            )
            if decision.interrupt:
                await self.interrupt(f"barge_in: {decision.reason}")
        if not p.is_final:
            await self._guarded(self.agent.on_transcript(p.text, False), "partial")
            return
        if not should_respond(p.text, agent_speaking=self.agent_speaking, policy=self.policy):
            return  # a backchannel while the agent talks: it goes on
        turn = Turn(
            new_id().hex,
            user_speech_end_us=self._last_speech_end_us,
            final_transcript_us=int(envelope.ts.timestamp() * 1_000_000),
        )
        self._last_speech_end_us = None
        await self._turns.put((turn, partial(self.agent.on_transcript, p.text, True)))

    async def interrupt(self, reason: str) -> None:
        """Stop the agent's speech now: tell tts and the transport, end the turn's work."""
        turn_ids = list(self._speaking_turns) or [self.turn_id]
        self._speaking_turns.clear()
        self._cancel_turn()
        for turn_id in turn_ids:
            await self.bus.emit(self.session_id, ControlInterrupt(reason=reason, turn_id=turn_id))

    def _cancel_turn(self) -> None:
        if self._turn_task is not None and not self._turn_task.done():
            self._turn_task.cancel()

    async def _on_tts_done(self, done: TtsDone) -> None:
        turn = self._speaking_turns.pop(done.turn_id, None)
        if turn is None:
            return
        if turn.first_audio_synth_us is None:
            turn.first_audio_synth_us = done.first_audio_synth_us
            turn.first_audio_out_us = done.first_audio_out_us
        turn.speech_requests -= 1
        if turn.speech_requests <= 0 and turn.turn_id != CONNECT_TURN:
            await self.bus.emit(self.session_id, turn.metrics())

    # -- running turns -------------------------------------------------------------------

    async def _work(self) -> None:
        token = current_session.set(self)
        try:
            while (item := await self._turns.get()) is not None:
                turn, handler = item
                await self._run_turn(turn, handler)
        finally:
            current_session.reset(token)

    async def _run_turn(self, turn: Turn, handler: Callable[[], Awaitable[Any]]) -> None:
        self.turn = turn
        error = ""
        interrupted = False
        self._turn_task = asyncio.ensure_future(handler())
        try:
            await self._turn_task
        except asyncio.CancelledError:
            interrupted = True
            if self._turn_task is not None and not self._turn_task.cancelled():
                raise  # the worker itself is being cancelled
        except Exception as exc:  # an agent bug ends the turn, not the session
            log.exception("session %s: turn %s failed", self.session_id, turn.turn_id)
            error = f"{type(exc).__name__}: {exc}"
        self._turn_task = None
        self.turn = None
        await self.bus.emit(
            self.session_id,
            AgentTurnDone(
                turn_id=turn.turn_id,
                duration_ms=round((time.perf_counter() - turn.started) * 1000, 3),
                replies=turn.replies,
                error=error,
                interrupted=interrupted,
            ),
        )
        if self.audio and turn.turn_id != CONNECT_TURN and turn.speech_requests == 0:
            await self.bus.emit(self.session_id, turn.metrics())
        await self._keep_state()

    async def _guarded(self, call: Awaitable[Any], what: str) -> None:
        try:
            await call
        except Exception:
            log.exception("session %s: %s handler failed", self.session_id, what)

    async def _finish(self) -> None:
        while not self._turns.empty():  # turns not yet started die with the session
            self._turns.get_nowait()
        await self._turns.put(None)
        if self._worker is not None:
            # the turn in flight finishes (its reply is still recorded); then we leave
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self._guarded(self.agent.on_disconnect(), "disconnect")
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        await self.history.close()
        if self._over and self.checkpoints is not None:
            await self.checkpoints.drop(self.session_id)
        self.bus.envelopes.forget(self.session_id)
        self.ended.set()

    # -- what the agent does -------------------------------------------------------------

    @property
    def turn_id(self) -> str:
        return self.turn.turn_id if self.turn else ""

    async def say_text(self, text: str, *, final: bool = True) -> None:
        """Record what the agent says (``agent.text``); deltas carry ``final=False``."""
        if self._muted():
            return
        if self.turn is not None:
            if final:
                self.turn.replies += 1
            if self.turn.first_agent_text_us is None:
                self.turn.first_agent_text_us = _now_us()
        await self.bus.emit(
            self.session_id, AgentText(text=text, turn_id=self.turn_id, is_final=final)
        )

    async def request_speech(self, text: str) -> None:
        """Ask the tts service to speak ``text`` on this session's audio out."""
        if self._muted():
            return
        turn = self.turn or Turn(CONNECT_TURN)
        turn.speech_requests += 1
        self._speaking_turns[turn.turn_id] = turn
        await self.bus.emit(self.session_id, TtsRequest(text=text, turn_id=turn.turn_id))

    async def synthesize(self, text: str, voice: str, provider: str) -> AsyncIterator[bytes]:
        """Audio for ``text`` from the tts service, chunk by chunk as it is synthesized."""
        if self._muted():
            return
        inbox = self.bus.nc.new_inbox()
        chunks: asyncio.Queue[Msg] = asyncio.Queue()

        async def collect(msg: Msg) -> None:
            chunks.put_nowait(msg)

        sub = await self.bus.nc.subscribe(inbox, cb=collect)
        self._inboxes += 1
        request = SynthesisRequest(
            session_id=self.session_id,
            turn_id=self.turn_id,
            text=text,
            voice=voice,
            provider=provider,
        )
        try:
            await self.bus.nc.publish(
                subjects.tts_synthesize(), request.model_dump_json().encode(), reply=inbox
            )
            while True:
                try:
                    msg = await asyncio.wait_for(chunks.get(), FIRST_AUDIO_TIMEOUT_S)
                except TimeoutError:
                    raise SpeechServiceUnavailable(
                        "no audio from the tts service within "
                        f"{FIRST_AUDIO_TIMEOUT_S:g} s (is `stella serve tts` running?)"
                    ) from None
                headers = msg.headers or {}
                if headers.get("Status") == "503":
                    raise SpeechServiceUnavailable("no tts service is running (stella serve tts)")
                if msg.data:
                    if self.turn is not None and self.turn.first_audio_synth_us is None:
                        self.turn.first_audio_synth_us = _now_us()
                    yield msg.data
                if headers.get(HEADER_ERROR):
                    raise SpeechServiceUnavailable(f"tts: {headers[HEADER_ERROR]}")
                if headers.get(HEADER_FINAL):
                    return
        finally:
            self._inboxes -= 1
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def publish_audio(self, pcm: bytes) -> None:
        """Raw PCM s16le 16 kHz mono onto ``stella.audio.<sid>.out``: 20 ms frames, paced."""
        if self._muted():
            return
        frames = audio.padded_frames(pcm)
        subject = subjects.audio_out(self.session_id)
        self._streaming += 1
        try:
            for pcm_frame in frames:
                delay = self._pacer.delay()
                if delay > 0:
                    await asyncio.sleep(delay)  # a cancelled turn stops here, within a frame
                frame = audio.AudioFrame(pcm=pcm_frame, seq=self._audio_seq, ts_us=_now_us())
                self._audio_seq += 1
                self._pacer.sent()
                await self.bus.nc.publish(subject, frame.pcm, headers=frame.headers())
                if self.turn is not None and self.turn.first_audio_out_us is None:
                    self.turn.first_audio_out_us = frame.ts_us
        finally:
            self._streaming -= 1
