"""Running one tool call to a structured outcome: the same code in a tool-executor and,
when tools run locally, in the agent's own process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from pydantic_core import to_jsonable_python

from stella_contracts import ToolError, ToolErrorKind, ToolOutcome
from stella_sdk.tool import Tool, ToolArgumentsError


def error_outcome(call_id: str, kind: ToolErrorKind, message: str, **extra: Any) -> ToolOutcome:
    return ToolOutcome(
        call_id=call_id, ok=False, error=ToolError(kind=kind, message=message), **extra
    )


async def run_tool(
    tool: Tool[..., Any],
    arguments: Mapping[str, Any],
    *,
    call_id: str,
    deadline_s: float,
    executed_by: str,
) -> ToolOutcome:
    """Validate, run within the deadline, and describe what happened. Never raises."""
    start = time.perf_counter()

    def took() -> float:
        return round((time.perf_counter() - start) * 1000, 3)

    try:
        async with asyncio.timeout(deadline_s):
            result = await tool.invoke(arguments)
    except ToolArgumentsError as exc:
        return error_outcome(
            call_id,
            ToolErrorKind.INVALID_ARGUMENTS,
            str(exc),
            duration_ms=took(),
            executed_by=executed_by,
        )
    except TimeoutError:
        limit = min(deadline_s, tool.timeout or deadline_s)
        return error_outcome(
            call_id,
            ToolErrorKind.TIMEOUT,
            f"{tool.name} did not finish within {limit:g} s",
            duration_ms=took(),
            executed_by=executed_by,
        )
    except Exception as exc:  # the tool's own failure goes back to the LLM, not up the stack
        return error_outcome(
            call_id,
            ToolErrorKind.EXCEPTION,
            f"{type(exc).__name__}: {exc}",
            duration_ms=took(),
            executed_by=executed_by,
        )
    return ToolOutcome(
        call_id=call_id,
        ok=True,
        result=to_jsonable_python(result, fallback=str),
        duration_ms=took(),
        executed_by=executed_by,
    )


def as_llm_result(outcome: ToolOutcome) -> Any:
    """What ``execute_tool`` hands back: the result, or an error object the LLM can read."""
    if outcome.ok:
        return outcome.result
    assert outcome.error is not None
    return {"error": {"kind": outcome.error.kind.value, "message": outcome.error.message}}
