"""The guide's process()-style agent ("Accessing Chat History"), as the guide writes it."""

from collections.abc import AsyncIterator

from stella_sdk import AgentInput, AgentOutput, BaseAgent


class MyAgent(BaseAgent):
    async def process(self, input: AgentInput) -> AsyncIterator[AgentOutput]:
        # Get recent conversation history
        history = await self.get_chat_history(limit=20)

        # Build context for LLM
        context = "\n".join([f"{msg.role}: {msg.content}" for msg in history])

        # Use in your prompt
        response = await self.llm.chat(
            [
                {"role": "system", "content": f"Previous conversation:\n{context}"},
                {"role": "user", "content": input.text},
            ]
        )

        yield AgentOutput.text_final(input.session_id, response)

    async def on_connect(self) -> None:
        if self.has_history:
            history = await self.get_chat_history()
            await self.speak(f"Hi! This session has {len(history)} messages so far.")
