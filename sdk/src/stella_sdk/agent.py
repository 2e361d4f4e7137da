"""``BaseAgent``: subclass it, write the conversation; STELLA runs everything else."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

from stella_contracts import ChatMessage
from stella_sdk.history import HistoryUnavailable
from stella_sdk.llm import LLM
from stella_sdk.messages import AgentInput, AgentOutput, InputKind
from stella_sdk.session import AgentSession
from stella_sdk.settings import AgentSettings
from stella_sdk.tool import Tool
from stella_sdk.toolbox import Toolbox

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful voice assistant. Answer in one or two short sentences: "
    "your words are spoken aloud."
)


def kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


class NotInSession(RuntimeError):
    """A session-only method was called before the runner gave the agent a session."""


class BaseAgent:
    """One instance serves one session. Override what you need:

    - ``on_connect()``: the session started (greet the user here);
    - ``on_transcript(text, is_final)``: recognised speech (and typed text, as final);
    - or ``process(input)``: yield ``AgentOutput`` for each user turn.
    """

    #: Dispatch name; default: the class name in kebab-case (``MyCustomAgent`` →
    #: ``my-custom-agent``); ``STELLA_AGENT_NAME`` overrides both.
    name: ClassVar[str] = ""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT

    def __init__(self) -> None:
        self.settings = AgentSettings()
        self._session: AgentSession | None = None
        self._toolbox = Toolbox()
        self.llm = LLM(self, self.settings.openai_model)

    # -- identity ------------------------------------------------------------------------

    @classmethod
    def agent_name(cls, settings: AgentSettings | None = None) -> str:
        configured = (settings or AgentSettings()).agent_name
        return configured or cls.name or kebab(cls.__name__)

    @property
    def session_id(self) -> str:
        return self._require_session().session_id

    @property
    def room_name(self) -> str:
        if self._session is not None:
            return self._session.room_name
        return self.settings.room_name

    def _attach(self, session: AgentSession) -> None:
        self._session = session

    def _require_session(self) -> AgentSession:
        if self._session is None:
            raise NotInSession("this works once the agent serves a session (agent.run())")
        return self._session

    # -- hooks ---------------------------------------------------------------------------

    async def on_connect(self) -> None:
        """The session started. The default says nothing."""

    async def on_disconnect(self) -> None:
        """The session ended. The default does nothing."""

    async def on_user_text(self, text: str) -> None:
        """Typed user text; by default handled exactly like a final transcript."""
        await self.on_transcript(text, True)

    async def on_transcript(self, text: str, is_final: bool) -> None:
        """Recognised speech. The default runs ``process()`` on each final and speaks it."""
        if not is_final:
            return
        session = self._require_session()
        turn_input = AgentInput(
            session_id=session.session_id,
            text=text,
            kind=InputKind.TRANSCRIPT if session.audio else InputKind.TEXT,
            turn_id=session.turn_id,
        )
        pending: list[str] = []
        async for output in self.process(turn_input):
            if output.is_final:
                pending.clear()
                await self.speak(output.text)
            else:
                pending.append(output.text)
                await session.say_text(output.text, final=False)
        if pending:  # deltas without a closing final: say what they add up to
            await self.speak("".join(pending))

    async def process(self, input: AgentInput) -> AsyncIterator[AgentOutput]:
        """One user turn → the reply. The default asks ``self.llm`` with the system prompt,
        this session's conversation so far and the registered tools."""
        messages: list[dict[str, Any]] = [{"role": "system", "content": self.system_prompt}]
        if self.has_history:
            try:
                for m in await self.get_chat_history(limit=50):
                    if m.role in ("user", "assistant") and m.envelope.get("id") != input.turn_id:
                        messages.append({"role": m.role, "content": m.content})
            except HistoryUnavailable:
                pass  # answer without context rather than not at all
        if not messages[-1:] or messages[-1] != {"role": "user", "content": input.text}:
            messages.append({"role": "user", "content": input.text})
        reply = await self.llm.chat(messages, tools=bool(self._toolbox.names()))
        yield AgentOutput.text_final(input.session_id, reply)

    # -- saying things -------------------------------------------------------------------

    async def speak(self, text: str) -> None:
        """Say ``text``: recorded as the agent's reply and, in a voice session, spoken."""
        session = self._require_session()
        await session.say_text(text)
        if session.audio:
            await session.request_speech(text)

    async def publish_audio(self, chunk: bytes) -> None:
        """Send raw PCM s16le 16 kHz mono to the user (cut into 20 ms frames)."""
        session = self._require_session()
        if session.audio:
            await session.publish_audio(chunk)

    # -- tools ---------------------------------------------------------------------------

    def register_tool(self, fn: Callable[..., Any] | Tool[..., Any]) -> Tool[..., Any]:
        """Offer a tool (a ``@tool`` function, or a plain typed function) to the LLM."""
        return self._toolbox.register(fn)

    def get_tool_definitions(self) -> list[dict[str, Any]]:
        """The registered tools in OpenAI's ``tools`` format."""
        return self._toolbox.definitions()

    async def execute_tool(self, name: str, args: dict[str, Any]) -> Any:
        """Run a tool (in a tool-executor when one serves it). Failures come back as
        ``{"error": {"kind", "message"}}`` so the LLM can read them and go on."""
        return await self._require_session().tools.execute(self._toolbox, name, args)

    # -- history -------------------------------------------------------------------------

    @property
    def has_history(self) -> bool:
        """True when this agent serves a session whose history it may read."""
        return self._session is not None and bool(self._session.request.history_token)

    async def get_chat_history(
        self, include_debug: bool = False, limit: int = 100
    ) -> list[ChatMessage]:
        """This session's recorded messages, oldest first (``limit`` is capped at 500)."""
        session = self._require_session()
        return await session.history.get(session.session_id, limit, include_debug)

    # -- running -------------------------------------------------------------------------

    @classmethod
    def create_for_session(cls) -> BaseAgent:
        """A fresh instance for each session; override if ``__init__`` needs arguments."""
        return cls()

    def run(self) -> None:
        """Serve sessions for this agent until SIGTERM/SIGINT (this is the agent-runner)."""
        from stella_sdk.host import run_host

        run_host(type(self), self.settings)
