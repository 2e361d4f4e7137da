"""Executes tool calls arriving on ``stella.tools.<name>`` (a queue group of executors).

Each call runs within the smaller of the caller's deadline and the tool's own timeout,
at most ``STELLA_TOOL_CONCURRENCY`` at once; every failure is a structured result. Calls
hold nothing between them; on SIGTERM an executor takes no new calls and answers the ones
it has (waiting up to ``STELLA_DRAIN_TIMEOUT_S``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import Field, ValidationError

from stella_contracts import (
    ServiceStatus,
    ToolErrorKind,
    ToolInvocation,
    ToolOutcome,
    ToolProgress,
    subjects,
)
from stella_sdk import Tool
from stella_sdk.bus import stop_taking
from stella_sdk.runtime.status import answer_status, status_of
from stella_sdk.tool_run import error_outcome, run_tool
from stella_services.runtime.bus import Bus
from stella_services.runtime.loading import LoadError, extend_path, import_module
from stella_services.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)

QUEUE = "tool-executors"


class ToolExecutorSettings(ServiceSettings):
    tool_modules: str = Field(default="", description="modules whose @tool functions to serve")
    agent_path: str = Field(default="", description="folders to import them from")
    tool_concurrency: int = Field(default=8, ge=1)
    tool_timeout_s: float = Field(default=30.0, gt=0)


def discover_tools(module_names: list[str]) -> dict[str, Tool[..., Any]]:
    found: dict[str, Tool[..., Any]] = {}
    for name in module_names:
        module = import_module(name)
        for value in vars(module).values():
            if isinstance(value, Tool):
                if value.name in found and found[value.name].fn is not value.fn:
                    raise LoadError(f"two tools are named {value.name!r}")
                found[value.name] = value
    return found


class ToolExecutorService:
    name = "tool-executor"

    def __init__(self, settings: ToolExecutorSettings | None = None) -> None:
        self.settings = settings or ToolExecutorSettings()
        self.bus: Bus | None = None
        self.tools: dict[str, Tool[..., Any]] = {}
        self._subs: list[Subscription] = []
        self._status_subs: list[Subscription] = []
        self._slots = asyncio.Semaphore(self.settings.tool_concurrency)
        self._inflight: dict[asyncio.Task[None], str] = {}  # call → its session
        self._calls_total = 0
        self._draining = False

    @property
    def executed_by(self) -> str:
        return f"{self.name}/{self.settings.instance}"

    async def start(self) -> None:
        modules = [m.strip() for m in self.settings.tool_modules.split(",") if m.strip()]
        if not modules:
            raise LoadError("set STELLA_TOOL_MODULES to the modules holding the tools")
        extend_path(self.settings.agent_path)
        self.tools = discover_tools(modules)
        if not self.tools:
            raise LoadError(f"no @tool functions found in {', '.join(modules)}")
        self.bus = await Bus.connect(self.settings, self.name)
        for tool_name in sorted(self.tools):
            sub = await self.bus.nc.subscribe(
                subjects.tool(tool_name), queue=QUEUE, cb=self._on_call
            )
            self._subs.append(sub)
        self._status_subs = await answer_status(self.bus.nc, self.name, self.status)
        log.info("serving tools: %s", ", ".join(sorted(self.tools)))

    async def _on_call(self, msg: Msg) -> None:
        # nats-py runs one callback at a time per subscription: run calls as tasks
        task = asyncio.create_task(self._handle(msg))
        self._calls_total += 1
        self._inflight[task] = _session_of(msg.data)
        task.add_done_callback(lambda t: self._inflight.pop(t, None))

    def status(self) -> ServiceStatus:
        assert self.bus is not None
        return status_of(  # calls are request/reply: no subscription is held per session
            self.bus.nc,
            self.name,
            self.settings.instance,
            sessions={sid for sid in self._inflight.values() if sid},
            tasks=len(self._inflight),
            draining=self._draining,
            capacity=self.settings.tool_concurrency,
            served_total=self._calls_total,
        )

    async def _handle(self, msg: Msg) -> None:
        call = _invocation(msg.data)
        beating = None
        if call is not None and call.heartbeat_ms and msg.reply:
            beating = asyncio.create_task(self._heartbeat(msg, call))
        try:
            outcome = await self.outcome(msg.data)
        except asyncio.CancelledError:
            # stopped past the drain deadline: the caller hears why instead of timing out
            outcome = error_outcome(
                _call_id_of(msg.data),
                ToolErrorKind.UNAVAILABLE,
                "the tool-executor shut down before the call finished",
                executed_by=self.executed_by,
            )
            await msg.respond(outcome.model_dump_json().encode())
            raise
        finally:
            if beating is not None:
                beating.cancel()
        await msg.respond(outcome.model_dump_json().encode())

    async def _heartbeat(self, msg: Msg, call: ToolInvocation) -> None:
        """Tell the caller at once that this executor has the call, then every heartbeat:
        its silence is how a caller learns that an executor died mid-call."""
        assert call.heartbeat_ms is not None
        beat = ToolProgress(call_id=call.call_id, executed_by=self.executed_by)
        data = beat.model_dump_json().encode()
        while True:
            with contextlib.suppress(Exception):  # a lost beat is what the caller watches for
                await msg.respond(data)
            await asyncio.sleep(call.heartbeat_ms / 1000)

    async def outcome(self, data: bytes) -> ToolOutcome:
        try:
            call = ToolInvocation.model_validate_json(data)
        except ValidationError as exc:
            return error_outcome(
                "",
                ToolErrorKind.INVALID_ARGUMENTS,
                f"not a tool invocation: {exc}",
                executed_by=self.executed_by,
            )
        tool = self.tools.get(call.name)
        if tool is None:
            return error_outcome(
                call.call_id,
                ToolErrorKind.UNKNOWN_TOOL,
                f"this executor has no tool {call.name!r}",
                executed_by=self.executed_by,
            )
        deadline = min(call.deadline_ms / 1000, tool.timeout or self.settings.tool_timeout_s)
        try:
            await asyncio.wait_for(self._slots.acquire(), deadline)
        except TimeoutError:
            return error_outcome(
                call.call_id,
                ToolErrorKind.TIMEOUT,
                f"{call.name} waited {deadline:g} s for a free slot "
                f"({self.settings.tool_concurrency} at once)",
                executed_by=self.executed_by,
            )
        try:
            return await run_tool(
                tool,
                call.arguments,
                call_id=call.call_id,
                deadline_s=deadline,
                executed_by=self.executed_by,
            )
        finally:
            self._slots.release()

    async def stop(self) -> None:
        """Drain: calls already delivered here still run and get their answer."""
        self._draining = True
        for sub in self._subs:
            await stop_taking(sub)
        if self._inflight:
            _, late = await asyncio.wait(
                list(self._inflight), timeout=self.settings.drain_timeout_s
            )
            for task in late:
                task.cancel()
            if late:
                log.warning("drain timed out: %d call(s) cut short", len(late))
                await asyncio.wait(late, timeout=5)
        for sub in self._status_subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if self.bus is not None:
            await self.bus.close()


def _invocation(data: bytes) -> ToolInvocation | None:
    try:
        return ToolInvocation.model_validate_json(data)
    except ValidationError:
        return None  # refused with the reason when the call is handled


def _session_of(data: bytes) -> str:
    call = _invocation(data)
    return call.session_id if call else ""


def _call_id_of(data: bytes) -> str:
    call = _invocation(data)
    return call.call_id if call else ""
