"""``self.llm``: a small helper over any OpenAI-compatible chat endpoint.

It uses the official ``openai`` client, so ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` point
it anywhere (OpenAI, STELLA's local llm service, a test server).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from openai import AsyncOpenAI

if TYPE_CHECKING:
    from stella_sdk.agent import BaseAgent

MAX_TOOL_ROUNDS = 8


class LLM:
    def __init__(self, agent: BaseAgent, model: str) -> None:
        self._agent = agent
        self.model = model
        self._client: AsyncOpenAI | None = None

    @property
    def client(self) -> AsyncOpenAI:
        if self._client is None:
            self._client = AsyncOpenAI()
        return self._client

    async def chat(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: bool = False,
        model: str | None = None,
        **options: Any,
    ) -> str:
        """The assistant's text reply. With ``tools=True`` the agent's registered tools are
        offered, and tool calls are executed (through ``execute_tool``) until it answers."""
        history: list[Any] = list(messages)
        definitions = self._agent.get_tool_definitions() if tools else []
        for _ in range(MAX_TOOL_ROUNDS):
            kwargs: dict[str, Any] = {"model": model or self.model, "messages": history, **options}
            if definitions:
                kwargs["tools"] = definitions
            response = await self.client.chat.completions.create(**kwargs)
            message = response.choices[0].message
            if not message.tool_calls:
                return message.content or ""
            history.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                if call.type != "function":
                    continue
                try:
                    arguments = json.loads(call.function.arguments or "{}")
                except json.JSONDecodeError as exc:
                    arguments = {"__invalid_json__": f"{exc}"}
                result = await self._agent.execute_tool(call.function.name, arguments)
                history.append(
                    {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}
                )
        raise RuntimeError(f"the model kept calling tools for {MAX_TOOL_ROUNDS} rounds")

    async def stream(
        self, messages: Sequence[dict[str, Any]], *, model: str | None = None, **options: Any
    ) -> AsyncIterator[str]:
        """The reply as text deltas, as the model produces them."""
        kwargs: dict[str, Any] = {"model": model or self.model, "messages": list(messages)}
        stream = await self.client.chat.completions.create(**kwargs, **options, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
