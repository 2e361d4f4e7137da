"""Agents used only by tests (imported by runner processes from the repository root)."""

from __future__ import annotations

import json

from src.agent import MyCustomAgent  # examples/my-agent on STELLA_AGENT_PATH


class HistoryProbeAgent(MyCustomAgent):
    """The guide's agent, plus "/history": it says its own get_chat_history() as JSON."""

    async def on_transcript(self, text: str, is_final: bool) -> None:
        if is_final and text == "/history":
            messages = await self.get_chat_history(include_debug=True)
            await self.speak(json.dumps([m.model_dump() for m in messages]))
            return
        await super().on_transcript(text, is_final)
