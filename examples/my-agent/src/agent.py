import json

from openai import AsyncOpenAI
from stella_sdk import BaseAgent, AudioPipeline

from .config import settings
from .tools import search_database, create_task


class MyCustomAgent(BaseAgent):
    """A custom conversational AI agent."""

    def __init__(self):
        super().__init__()
        self.pipeline = AudioPipeline(
            stt_provider=settings.stt_provider,
            tts_provider=settings.tts_provider
        )
        self.openai = AsyncOpenAI()
        self.history = []

        # Register tools
        self.register_tool(search_database)
        self.register_tool(create_task)

    async def on_connect(self):
        """Called when the agent connects to the LiveKit room."""
        print(f"Connected to room: {self.room_name}")

        # Send a greeting
        greeting = "Hello! How can I help you today?"
        await self.speak(greeting)

    async def on_transcript(self, text: str, is_final: bool):
        """Handle transcribed user speech."""
        if not is_final:
            return

        # Add to history
        self.history.append({"role": "user", "content": text})

        # Generate response
        response = await self.generate_response(text)

        # Speak the response
        await self.speak(response)

        # Add to history
        self.history.append({"role": "assistant", "content": response})

    async def generate_response(self, user_input: str) -> str:
        messages = [
            {"role": "system", "content": self.system_prompt},
            *self.history
        ]

        response = await self.openai.chat.completions.create(
            model=settings.openai_model,
            messages=messages,
            tools=self.get_tool_definitions()
        )

        # Handle tool calls
        while response.choices[0].message.tool_calls:
            tool_calls = response.choices[0].message.tool_calls
            messages.append(response.choices[0].message)

            for tool_call in tool_calls:
                # Execute the tool
                result = await self.execute_tool(
                    tool_call.function.name,
                    json.loads(tool_call.function.arguments)
                )

                messages.append({
                    "role": "tool",
                    "tool_call_id": tool_call.id,
                    "content": json.dumps(result)
                })

            # Get next response
            response = await self.openai.chat.completions.create(
                model=settings.openai_model,
                messages=messages,
                tools=self.get_tool_definitions()
            )

        return response.choices[0].message.content

    async def speak(self, text: str):
        """Convert text to speech and publish to the room."""
        async for audio_chunk in self.pipeline.text_to_speech_stream(text):
            await self.publish_audio(audio_chunk)


def main():
    agent = MyCustomAgent()
    agent.run()


if __name__ == "__main__":
    main()
