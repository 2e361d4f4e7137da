"""An agent whose tools fail in every way a tool can, for demos and tests of tool errors.

It uses BaseAgent's default process(): the LLM, the system prompt and the tools.
"""

import asyncio

from stella_sdk import BaseAgent, tool


@tool
async def add(a: int, b: int) -> dict:
    """Add two whole numbers.

    Args:
        a: First number
        b: Second number
    """
    return {"sum": a + b}


@tool(timeout=0.5)
async def slow_lookup(key: str) -> str:
    """Look a key up in a very slow system.

    Args:
        key: What to look up
    """
    await asyncio.sleep(5)
    return f"value of {key}"


@tool
def broken_report(month: str) -> str:
    """Build the monthly report.

    Args:
        month: Month name
    """
    raise RuntimeError(f"report service is down for {month}")


class ToolLabAgent(BaseAgent):
    system_prompt = "You are a test assistant. Use the tools."

    def __init__(self) -> None:
        super().__init__()
        for t in (add, slow_lookup, broken_report):
            self.register_tool(t)

    async def on_connect(self) -> None:
        await self.speak("Tool lab ready.")
