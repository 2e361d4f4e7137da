"""OpenAI chat-completion requests as they arrive, checked; and OpenAI's error body.

Unknown fields are ignored (clients send more than a local model needs, e.g. ``refusal`` or
``annotations`` on an assistant message they got from us). What a local model cannot honour
(``n`` > 1, non-text content, a ``tool_choice`` naming no offered tool) is refused with a
400 that says which parameter, as OpenAI does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Json = dict[str, Any]


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RequestProblem(ValueError):
    """A request OpenAI would refuse with 400; ``param`` names the field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class FunctionCall(Lenient):
    name: str
    arguments: str = ""  # JSON text, as OpenAI sends it


class ToolCall(Lenient):
    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCall


class ContentPart(Lenient):
    type: str
    text: str | None = None


class Message(Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The content as one string; only text parts are understood."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        texts = []
        for part in self.content:
            if part.type != "text" or part.text is None:
                raise RequestProblem(
                    f"content parts of type {part.type!r} are not supported (text only)",
                    "messages",
                )
            texts.append(part.text)
        return "".join(texts)


class FunctionDefinition(Lenient):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str = ""
    parameters: Json = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Tool(Lenient):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class ChosenFunction(Lenient):
    name: str


class NamedToolChoice(Lenient):
    type: Literal["function"] = "function"
    function: ChosenFunction


class StreamOptions(Lenient):
    include_usage: bool = False


class ChatRequest(Lenient):
    model: str
    messages: list[Message] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None  # one call per turn is what a small model manages
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1)
    response_format: Json | None = None
    user: str | None = None

    def tool_names(self) -> list[str]:
        return [t.function.name for t in self.tools or []]

    def check(self) -> None:
        """Refuse what a local model cannot honour, naming the parameter (OpenAI's 400s)."""
        if self.n not in (None, 1):
            raise RequestProblem("only n=1 is supported", "n")
        names = self.tool_names()
        if len(set(names)) != len(names):
            raise RequestProblem("tool names must be unique", "tools")
        choice = self.tool_choice
        if not names and choice not in (None, "none", "auto"):
            raise RequestProblem(
                "tool_choice is only allowed when tools are specified", "tool_choice"
            )
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise RequestProblem(
                f"tool_choice names {choice.function.name!r}, which is not among the tools",
                "tool_choice",
            )
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise RequestProblem("at most 4 stop sequences", "stop")
        for message in self.messages:
            message.text()  # raises for non-text parts


def error_body(
    message: str,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> Json:
    """OpenAI's error shape, which the ``openai`` client turns into its exceptions."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
