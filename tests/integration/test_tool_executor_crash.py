"""A tool-executor SIGKILLed mid-call: the call becomes a structured `unavailable` result in
seconds (its heartbeats stop), or, for a tool declared idempotent, runs again on the other
executor — never a turn that hangs until the tool's deadline."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stella_contracts import ToolResult
from stella_sdk.settings import AgentSettings
from stella_sdk.tool import Tool
from stella_sdk.toolbox import Toolbox, ToolCaller
from stella_services.runtime.bus import Bus
from tests.support import tools
from tests.support.events import EventLog
from tests.support.processes import ServiceProcess
from tests.support.status import gather_status

ROOT = Path(__file__).resolve().parents[2]
Start = Callable[[str, dict[str, str]], ServiceProcess]
# the tool's own deadline is 30 s: an answer well before it shows the death was noticed
NOTICED_WITHIN_S = 20.0


async def kill_the_busy_executor(bus: Bus, executors: list[ServiceProcess]) -> ServiceProcess:
    """SIGKILL whichever executor holds the call, once it holds it; returns the other."""
    while True:
        busy = [s for s in await gather_status(bus.nc, "tool-executor", expect=2) if s.tasks]
        if busy:
            break
    [holder] = [p for p in executors if busy[0].instance.endswith(f"-{p.pid}")]
    holder.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    [other] = [p for p in executors if p is not holder]
    return other


async def call_and_kill(
    bus: Bus, recorder_env: dict[str, str], start_service: Start, tool: Tool[..., Any], sid: str
) -> tuple[Any, ServiceProcess]:
    env = {
        **recorder_env,
        "STELLA_TOOL_MODULES": "tests.support.tools",
        "STELLA_AGENT_PATH": str(ROOT),
    }
    executors = [start_service("tool-executor", env), start_service("tool-executor", env)]
    toolbox = Toolbox()
    toolbox.register(tool)
    caller = ToolCaller(
        bus, AgentSettings(nats_url=recorder_env["NATS_URL"], tools_mode="remote"), sid
    )
    call = asyncio.create_task(caller.execute(toolbox, tool.name, {"seconds": 8.0}))
    other = await asyncio.wait_for(kill_the_busy_executor(bus, executors), 60)
    result = await asyncio.wait_for(call, NOTICED_WITHIN_S)
    return result, other


async def test_a_call_whose_executor_dies_is_unavailable_not_hung(
    bus: Bus, recorder_env: dict[str, str], start_service: Start, uid: str
) -> None:
    sid = f"tools-crash-{uid}"
    log = await EventLog(bus).attach()
    result, _ = await call_and_kill(bus, recorder_env, start_service, tools.pause, sid)
    assert result["error"]["kind"] == "unavailable", result
    assert "may or may not have taken effect" in result["error"]["message"]
    assert await log.wait_until(lambda: bool(log.of(sid, "tool.result")))
    [recorded] = [e.payload for e in log.of(sid, "tool.result")]
    assert isinstance(recorded, ToolResult) and not recorded.ok
    await log.close()


async def test_an_idempotent_call_whose_executor_dies_runs_on_the_other(
    bus: Bus, recorder_env: dict[str, str], start_service: Start, uid: str
) -> None:
    result, other = await call_and_kill(
        bus, recorder_env, start_service, tools.pause_safely, f"tools-retry-{uid}"
    )
    assert result == {"waited": 8.0}
    assert other.process is not None and other.process.poll() is None
