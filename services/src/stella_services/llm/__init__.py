"""The local llm service: OpenAI's ``/v1/chat/completions`` (streaming, tools) over a model
run in-process by llama.cpp (``xllamacpp``), so agents run with no cloud key."""
