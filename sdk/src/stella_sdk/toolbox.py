"""An agent's tools: registration, OpenAI definitions, and execution with events.

Calls go to a tool-executor over ``stella.tools.<name>`` (request/reply with a deadline and
heartbeats, see ``stella_contracts.tools``).
With ``tools_mode=auto`` a tool no executor serves runs in the agent's process instead.
Either way a ``tool.call`` and a ``tool.result`` event are published for the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from nats.aio.msg import Msg
from nats.errors import NoRespondersError

from stella_contracts import (
    ToolCall,
    ToolErrorKind,
    ToolInvocation,
    ToolOutcome,
    ToolResult,
    new_id,
    parse_tool_reply,
    subjects,
)
from stella_sdk.bus import Bus
from stella_sdk.settings import AgentSettings
from stella_sdk.tool import Tool, tool
from stella_sdk.tool_run import as_llm_result, error_outcome, run_tool

log = logging.getLogger(__name__)

GRACE_S = 0.5  # on top of the tool's deadline, for the executor's reply to travel back
STATUS_HEADER, NO_RESPONDERS = "Status", "503"  # what NATS sends a reply subject nobody serves


class Toolbox:
    def __init__(self) -> None:
        self._tools: dict[str, Tool[..., Any]] = {}

    def register(self, fn: Callable[..., Any] | Tool[..., Any]) -> Tool[..., Any]:
        t = fn if isinstance(fn, Tool) else tool(fn)
        known = self._tools.get(t.name)
        if known is not None and known.fn is not t.fn:
            raise ValueError(f"another tool is already registered as {t.name!r}")
        self._tools[t.name] = t
        return t

    def get(self, name: str) -> Tool[..., Any] | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def definitions(self) -> list[dict[str, Any]]:
        return [t.definition() for t in self._tools.values()]


class ToolCaller:
    """Executes tools for one session and records each call and result."""

    def __init__(self, bus: Bus, settings: AgentSettings, session_id: str) -> None:
        self.bus = bus
        self.settings = settings
        self.session_id = session_id
        self._warned_local: set[str] = set()

    async def execute(self, toolbox: Toolbox, name: str, arguments: Mapping[str, Any]) -> Any:
        call_id = f"call_{new_id().hex[:24]}"
        args = dict(arguments) if isinstance(arguments, Mapping) else arguments
        await self.bus.emit(
            self.session_id,
            ToolCall(call_id=call_id, name=name, arguments=args if isinstance(args, dict) else {}),
        )
        outcome = await self._outcome(toolbox, name, args, call_id)
        await self.bus.emit(
            self.session_id,
            ToolResult(
                call_id=call_id,
                name=name,
                ok=outcome.ok,
                result=outcome.result,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
                executed_by=outcome.executed_by,
            ),
        )
        return as_llm_result(outcome)

    async def _outcome(self, toolbox: Toolbox, name: str, args: Any, call_id: str) -> ToolOutcome:
        t = toolbox.get(name)
        if t is None:
            known = ", ".join(toolbox.names()) or "none"
            return error_outcome(
                call_id,
                ToolErrorKind.UNKNOWN_TOOL,
                f"no tool named {name!r}; this agent has: {known}",
            )
        if not isinstance(args, dict):
            return error_outcome(
                call_id, ToolErrorKind.INVALID_ARGUMENTS, "arguments must be a JSON object"
            )
        deadline = t.timeout or self.settings.tool_timeout_s
        mode = self.settings.tools_mode
        if mode != "local":
            try:
                return await self._remote(t, args, call_id, deadline)
            except NoRespondersError:
                if mode == "remote":
                    return error_outcome(
                        call_id, ToolErrorKind.UNAVAILABLE, f"no tool-executor serves {name!r}"
                    )
                if name not in self._warned_local:
                    self._warned_local.add(name)
                    log.warning("no tool-executor serves %r: running it in this process", name)
            except TimeoutError:
                return error_outcome(
                    call_id, ToolErrorKind.TIMEOUT, f"{name} did not answer within {deadline:g} s"
                )
        return await run_tool(
            t,
            args,
            call_id=call_id,
            deadline_s=deadline,
            executed_by=f"{self.bus.service}/{self.bus.instance} (local)",
        )

    async def _remote(
        self, t: Tool[..., Any], args: dict[str, Any], call_id: str, deadline: float
    ) -> ToolOutcome:
        """Through a tool-executor; an executor that dies mid-call is noticed by its silence
        (no heartbeat for ``tool_silence_s``) instead of at the deadline."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + deadline + GRACE_S
        attempts = 2 if t.idempotent else 1
        for attempt in range(attempts):
            left = ends - loop.time()
            if left <= 0:
                raise TimeoutError
            invocation = ToolInvocation(
                session_id=self.session_id,
                call_id=call_id,
                name=t.name,
                arguments=args,
                # a retry gets what is left of the deadline, the first call all of it
                deadline_ms=max(1, int((left - GRACE_S if attempt else deadline) * 1000)),
                heartbeat_ms=max(1, int(self.settings.tool_heartbeat_s * 1000)),
            )
            outcome = await self._call_once(invocation, ends)
            if outcome is not None:
                return outcome
            if attempt + 1 < attempts:
                log.warning("the executor running %s went silent: retrying (idempotent)", t.name)
        return error_outcome(
            call_id,
            ToolErrorKind.UNAVAILABLE,
            f"the tool-executor running {t.name} stopped answering mid-call"
            + ("" if t.idempotent else "; the call may or may not have taken effect"),
        )

    async def _call_once(self, invocation: ToolInvocation, ends: float) -> ToolOutcome | None:
        """The executor's outcome, or None when it went silent. Raises NoRespondersError
        when no executor serves the tool, TimeoutError past ``ends``."""
        nc = self.bus.nc
        loop = asyncio.get_running_loop()
        replies: asyncio.Queue[Msg] = asyncio.Queue()
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, cb=replies.put)
        try:
            await nc.publish(
                subjects.tool(invocation.name), invocation.model_dump_json().encode(), reply=inbox
            )
            while True:
                left = ends - loop.time()
                if left <= 0:
                    raise TimeoutError
                try:
                    msg = await asyncio.wait_for(
                        replies.get(), min(left, self.settings.tool_silence_s)
                    )
                except TimeoutError:
                    if ends - loop.time() <= 0:
                        raise
                    return None
                if msg.headers and msg.headers.get(STATUS_HEADER) == NO_RESPONDERS:
                    raise NoRespondersError
                reply = parse_tool_reply(msg.data)
                if isinstance(reply, ToolOutcome):
                    return reply
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
