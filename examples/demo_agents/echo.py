"""An agent with no LLM: greets with its runner's name and echoes each turn (streamed)."""

from collections.abc import AsyncIterator

from stella_sdk import AgentInput, AgentOutput, BaseAgent


class EchoAgent(BaseAgent):
    """No LLM: greets with its runner's name and echoes each turn."""

    async def on_connect(self) -> None:
        await self.speak(f"hello from {self.settings.instance}")

    async def process(self, input: AgentInput) -> AsyncIterator[AgentOutput]:
        yield AgentOutput.text_delta(input.session_id, "echo: ")
        yield AgentOutput.text_delta(input.session_id, input.text)
