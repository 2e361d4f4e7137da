"""A chatty agent with no LLM: a long spoken greeting (to talk over), then it echoes."""

from collections.abc import AsyncIterator

from stella_sdk import AgentInput, AgentOutput, BaseAgent

GREETING = (
    "Welcome to the demo line. I will tell you about everything we offer today, "
    "starting with our opening hours, which are nine to five on weekdays, and then our "
    "delivery options, which include same day delivery in the city center, next day "
    "delivery everywhere else, and pickup from any of our twelve stores."
)


class TalkerAgent(BaseAgent):
    async def on_connect(self) -> None:
        await self.speak(GREETING)

    async def process(self, input: AgentInput) -> AsyncIterator[AgentOutput]:
        yield AgentOutput.text_final(input.session_id, f"You said: {input.text}")
