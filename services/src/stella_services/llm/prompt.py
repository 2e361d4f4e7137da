"""From an OpenAI request to what llama.cpp is asked: which tools the model may call, the
messages it reads (tools described in the system prompt, earlier tool calls and results
written in a form it understands) and the generation parameters. Pure: no I/O.

The system prompt with the tool descriptions depends only on the request's system messages
and tools, never on ``tool_choice``: an agent that sends the same system prompt and tools on
every turn gets them from llama.cpp's prompt cache instead of evaluating them again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stella_services.llm.decision import (
    COMPACT,
    decision_schema,
    render_decision,
    reply_action,
)
from stella_services.llm.wire import ChatRequest, Message, NamedToolChoice, Tool

Json = dict[str, Any]

DEFAULT_SYSTEM = "You are a helpful assistant."
# The schema goes to llguidance (llama.cpp's grammar engine in xllamacpp's build) directly:
# through ``response_format`` llama.cpp ignores the schema's whitespace option.
LLGUIDANCE_JSON = "%llguidance {}\nstart: %json "


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """What the model may do this turn. ``tools`` are described to it; it may call those in
    ``allowed``, and answer the user if ``allow_reply``. No tools: plain text generation."""

    tools: tuple[Tool, ...] = ()
    allowed: tuple[str, ...] = ()
    allow_reply: bool = True
    reply: str = "reply"

    @property
    def constrained(self) -> bool:
        return bool(self.tools)

    def schema(self) -> Json:
        params = {t.function.name: t.function.parameters for t in self.tools}
        return decision_schema(
            [(name, params[name]) for name in self.allowed], self.allow_reply, self.reply
        )


def plan_tools(request: ChatRequest) -> ToolPlan:
    """OpenAI's ``tool_choice``: ``auto`` (default) call any tool or reply; ``none`` reply
    only; ``required`` call some tool; a named function: call exactly that one."""
    tools = tuple(request.tools or ())
    if not tools:
        return ToolPlan()
    names = tuple(t.function.name for t in tools)
    reply = reply_action(names)
    choice = request.tool_choice
    if choice == "none":
        return ToolPlan(tools, (), True, reply)
    if choice == "required":
        return ToolPlan(tools, names, False, reply)
    if isinstance(choice, NamedToolChoice):
        return ToolPlan(tools, (choice.function.name,), False, reply)
    return ToolPlan(tools, names, True, reply)


def tools_section(tools: Sequence[Tool], reply: str) -> str:
    """The functions, a rule for choosing, and the answer format the schema enforces (so the
    model is not surprised by it). The wording was chosen by measuring tool choice of the
    1.5B and 0.5B models on a fixed set of requests (``python -m bench llm``): asking it to
    decide first, and saying that it cannot know current facts, keeps it from answering
    "It is raining in Tokyo" instead of calling the weather function; Qwen's own "# Tools"
    layout with ``<tools>`` JSON lines chose worse (5 of 9)."""
    lines = "\n".join(
        f"- {t.function.name}: {t.function.description} Arguments: "
        + json.dumps(t.function.parameters, ensure_ascii=False)
        for t in tools
    )
    call = render_decision("<function name>", {"<argument>": "<value>"})
    answer = render_decision(reply, reply="<text>")
    return (
        "# Functions\n\n"
        "These functions look up facts you cannot know (anything current, personal or "
        f"stored) and take actions for the user:\n{lines}\n\n"
        "# How to answer\n\n"
        "First decide whether one of the functions does what the user's latest request "
        "asks. If one does, call it; never guess what it would return. If none does "
        "(greetings, thanks, general knowledge such as capitals or definitions), reply "
        "directly. After a <tool_response>, reply to the user with its result.\n"
        f"Answer with one JSON object. To call a function: {call}. "
        f"To speak to the user: {answer}."
    )


def render_messages(messages: Sequence[Message], plan: ToolPlan) -> list[Json]:
    """The conversation as plain system/user/assistant messages: leading system (and
    developer) messages merged, the tools section appended to them; assistant tool calls
    written as decisions; tool results as a user turn of ``<tool_response>`` blocks (as
    Qwen's own chat template renders them)."""
    systems: list[str] = []
    rest = list(messages)
    while rest and rest[0].role in ("system", "developer"):
        systems.append(rest.pop(0).text())
    if plan.constrained:
        systems = [*(systems or [DEFAULT_SYSTEM]), tools_section(plan.tools, plan.reply)]
    out: list[Json] = [{"role": "system", "content": "\n\n".join(systems)}] if systems else []
    call_names: dict[str, str] = {}
    results_at: int | None = None  # the user turn that collects consecutive tool results
    for message in rest:
        if message.role in ("tool", "function"):
            name = message.name or call_names.get(message.tool_call_id or "", "")
            block = _tool_response(name, message.text())
            if results_at is None:
                results_at = len(out)
                out.append({"role": "user", "content": block})
            else:
                out[results_at]["content"] += "\n" + block
            continue
        results_at = None
        if message.role == "assistant":
            out.append({"role": "assistant", "content": _assistant_text(message, plan)})
            for call in message.tool_calls or ():
                call_names[call.id] = call.function.name
        elif message.role in ("system", "developer"):
            out.append({"role": "system", "content": message.text()})
        else:
            out.append({"role": "user", "content": message.text()})
    return out


def _tool_response(name: str, content: str) -> str:
    try:
        result: Any = json.loads(content)
    except json.JSONDecodeError:
        result = content
    body = json.dumps({"name": name, "result": result}, separators=COMPACT, ensure_ascii=False)
    return f"<tool_response>\n{body}\n</tool_response>"


def _assistant_text(message: Message, plan: ToolPlan) -> str:
    if message.tool_calls:
        return "\n".join(
            render_decision(call.function.name, call.function.arguments)
            for call in message.tool_calls
        )
    if plan.constrained:  # earlier answers in the form the model must keep using
        return render_decision(plan.reply, reply=message.text())
    return message.text()


@dataclass(frozen=True, slots=True)
class Defaults:
    """What the service fills in when a request leaves it out."""

    max_tokens: int = 1024
    temperature: float = 0.2
    seed: int | None = None


def llama_payload(request: ChatRequest, plan: ToolPlan, defaults: Defaults) -> Json:
    """The body for llama.cpp's chat completion: always streamed (so a request can be stopped
    and so both kinds of answer come out of one path), prompt cache on, usage reported."""
    payload: Json = {
        "messages": render_messages(request.messages, plan),
        "stream": True,
        "stream_options": {"include_usage": True},
        "cache_prompt": True,
        "max_tokens": request.max_completion_tokens or request.max_tokens or defaults.max_tokens,
        "temperature": defaults.temperature if request.temperature is None else request.temperature,
    }
    seed = defaults.seed if request.seed is None else request.seed
    if seed is not None:
        payload["seed"] = seed
    for key in ("top_p", "presence_penalty", "frequency_penalty"):
        value = getattr(request, key)
        if value is not None:
            payload[key] = value
    if plan.constrained:
        payload["grammar"] = LLGUIDANCE_JSON + json.dumps(plan.schema(), ensure_ascii=False)
    else:
        if request.stop is not None:
            payload["stop"] = [request.stop] if isinstance(request.stop, str) else request.stop
        if request.response_format is not None:
            payload["response_format"] = request.response_format
    return payload
