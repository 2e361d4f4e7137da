"""Local llm figures, for each prepared model: time to first token (a new prompt, and the
same system prompt again, served from the prompt cache), generation speed, and how often
the model picks the right tool (or none) on a fixed set of requests. The service runs as
``stella serve llm`` and is driven by the real ``openai`` client, as an agent would."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

from openai import OpenAI

from bench import speech
from bench.figures import Figure
from bench.platform import BenchPlatform
from stella_services.llm.settings import LlmSettings
from stella_services.models import catalog
from stella_services.runtime.nats_server import free_port

SYSTEM = (
    "You are Nova, the voice assistant of Bella's Bistro in Lisbon. You take table "
    "reservations, answer questions about the menu, opening hours (Tuesday to Sunday, noon "
    "to 11 pm) and directions, and you keep every answer to one or two short sentences "
    "because they are spoken aloud. Never use lists or markdown. If a guest asks for "
    "something you cannot do, say so politely and offer to take a message. Prices are in "
    "euros. The bistro has a terrace, a vegetarian menu, and free parking behind the building."
)
# Questions the system prompt answers, and words a right answer contains (lower case).
QUESTIONS: list[tuple[str, tuple[str, ...]]] = [
    ("Are you open on Monday?", ("no", "not", "closed")),
    ("Do you have vegetarian dishes?", ("yes", "vegetarian menu")),
    ("Where can I park?", ("behind",)),
    ("Can I sit outside?", ("terrace",)),
    ("What currency are your prices in?", ("euro",)),
]
LONG_ANSWER = "Describe the water cycle in about five sentences."
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {p: {"type": kind} for p, kind in params.items()},
                "required": [next(iter(params))],
            },
        },
    }
    for name, description, params in (
        ("get_weather", "Current weather for a city.", {"city": "string"}),
        (
            "create_task",
            "Create a new task in the task management system.",
            {"title": "string", "description": "string"},
        ),
        (
            "search_database",
            "Search the database for relevant information.",
            {"query": "string", "limit": "integer"},
        ),
    )
]
TOOL_CASES: list[tuple[str, str | None]] = [
    ("What's the weather like in Lisbon right now?", "get_weather"),
    ("Create a task to call mom tomorrow.", "create_task"),
    ("Search the database for invoices from March.", "search_database"),
    ("Hi there! How are you?", None),
    ("Remind me to buy milk: add it as a task.", "create_task"),
    ("Is it raining in Tokyo?", "get_weather"),
    ("What is the capital of France?", None),
    ("Find any orders from customer Smith in our records.", "search_database"),
    ("Thanks, that's all for today.", None),
]
ROUNDS = 5


@dataclass
class Timed:
    first_token_s: float
    total_s: float
    tokens: int
    text: str = ""

    @property
    def tokens_per_s(self) -> float:
        # tokens after the first over the time after the first: generation alone
        span = self.total_s - self.first_token_s
        return (self.tokens - 1) / span if span > 0 and self.tokens > 1 else 0.0


def timed_stream(client: OpenAI, messages: Any, **options: Any) -> Timed:
    start = time.perf_counter()
    first = None
    tokens = 0
    pieces: list[str] = []
    stream = client.chat.completions.create(
        model="bench",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        **options,
    )
    for item in stream:
        if item.choices and item.choices[0].delta.content:
            first = first if first is not None else time.perf_counter() - start
            pieces.append(item.choices[0].delta.content)
        if item.usage is not None:
            tokens = item.usage.completion_tokens
    total = time.perf_counter() - start
    return Timed(first if first is not None else total, total, tokens, "".join(pieces))


def after_result(question: str, name: str, arguments: str, result: str) -> list[Any]:
    """A conversation where ``name`` was called and answered: now the model should reply."""
    call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": result},
    ]


FOLLOW_UPS = [
    after_result(
        "Is it raining in Tokyo?", "get_weather", '{"city":"Tokyo"}', '{"rain": true, "temp_c": 14}'
    ),
    after_result(
        "Create a task to call mom.",
        "create_task",
        '{"title":"Call mom","description":"Call mom"}',
        '{"task_id": "T-7", "status": "created"}',
    ),
    after_result(
        "Search the database for invoices from March.",
        "search_database",
        '{"query":"invoices March"}',
        '{"found": true, "results": [{"title": "Invoice 311", "content": "120 EUR"}]}',
    ),
]
ROUNDS_OF_TOOL_CHOICE = 3
ASSISTANT = "You are a helpful voice assistant."


def tool_choice(client: OpenAI) -> tuple[int, int, list[str]]:
    """(right, asked, what went wrong): each case in a few rounds (sampling varies)."""
    cases: list[tuple[list[Any], str | None]] = [
        ([{"role": "user", "content": text}], expected) for text, expected in TOOL_CASES
    ]
    cases += [(messages, None) for messages in FOLLOW_UPS]  # a result came: now reply
    right, wrong = 0, []
    for _ in range(ROUNDS_OF_TOOL_CHOICE):
        for messages, expected in cases:
            answer = client.chat.completions.create(
                model="bench",
                messages=[{"role": "system", "content": ASSISTANT}, *messages],
                tools=TOOLS,
            )
            calls = answer.choices[0].message.tool_calls or []
            chosen = calls[0].function.name if calls and calls[0].type == "function" else None
            if chosen == expected:
                right += 1
            else:
                after = " (after the result)" if len(messages) > 1 else ""
                wrong.append(f"{messages[0]['content']!r}{after} → {chosen}")
    return right, len(cases) * ROUNDS_OF_TOOL_CHOICE, wrong


def measure(url: str, short: str, load_s: float) -> list[Figure]:
    client = OpenAI(base_url=url, api_key="bench", max_retries=0, timeout=300)
    timed_stream(client, [{"role": "user", "content": "Hi"}], max_tokens=4)  # warm
    cold, warm = [], []
    for question, _ in QUESTIONS:
        fresh = f"Conversation {uuid.uuid4().hex[:8]}. {SYSTEM}"  # defeats the prompt cache
        ask = {"role": "user", "content": question}
        cold.append(
            timed_stream(client, [{"role": "system", "content": fresh}, ask], max_tokens=32)
        )
        warm.append(
            timed_stream(client, [{"role": "system", "content": SYSTEM}, ask], max_tokens=32)
        )
    speed = [
        timed_stream(client, [{"role": "user", "content": LONG_ANSWER}], max_tokens=128)
        for _ in range(2)
    ]
    with_tools = []
    for question, _ in QUESTIONS[:3]:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        with_tools.append(timed_stream(client, messages, tools=TOOLS, max_tokens=48))
    right, asked, wrong = tool_choice(client)
    grounded = [
        any(word in answer.text.lower() for word in words)
        for answer, (_, words) in zip(warm, QUESTIONS, strict=True)
    ]
    ungrounded = [
        f"{q!r} → {a.text!r}"
        for a, (q, _), ok in zip(warm, QUESTIONS, grounded, strict=True)
        if not ok
    ]
    ms = 1000.0
    prompt_note = f"a ~{len(SYSTEM) // 4}-token system prompt and a short question"
    return [
        Figure(f"{short}: load", load_s, "s", "stella serve llm start until ready (mmap, warm-up)"),
        Figure(
            f"{short}: time to first token, new prompt",
            statistics.median(t.first_token_s for t in cold) * ms,
            "ms",
            f"median of {len(cold)}, streamed, {prompt_note}, system prompt never seen before",
        ),
        Figure(
            f"{short}: time to first token, system prompt reused",
            statistics.median(t.first_token_s for t in warm) * ms,
            "ms",
            f"median of {len(warm)}, the same system prompt as the previous request "
            "(llama.cpp's prompt cache), a new question",
        ),
        Figure(
            f"{short}: generation speed",
            statistics.median(t.tokens_per_s for t in speed),
            "tokens/s",
            "median of 2 answers of 128 tokens, after the first token",
        ),
        Figure(
            f"{short}: time to first reply token with 3 tools",
            statistics.median(t.first_token_s for t in with_tools) * ms,
            "ms",
            "median of 3, streamed; the reply text starts after the constrained "
            '{"action":"reply","reply":" prefix; tools and system prompt cached',
        ),
        Figure(
            f"{short}: answers grounded in the system prompt",
            sum(grounded),
            f"of {len(QUESTIONS)}",
            "the reused-prompt answers above, checked for a word of the right answer "
            "(e.g. Monday: no/closed)"
            + (f"; wrong: {'; '.join(ungrounded)}" if ungrounded else ""),
        ),
        Figure(
            f"{short}: tool choice correct",
            100.0 * right / asked,
            "%",
            f"{right} of {asked}: {len(TOOL_CASES)} requests (right tool, or a direct reply) "
            f"and {len(FOLLOW_UPS)} after a tool result (reply), {ROUNDS_OF_TOOL_CHOICE} rounds, "
            "temperature 0.2" + (f"; wrong: {'; '.join(sorted(set(wrong)))}" if wrong else ""),
        ),
    ]


VOICE_TURNS = 8
DEFAULT_NAME = LlmSettings.model_fields["llm_model"].default


def voice_with_local_llm(platform: BenchPlatform, short: str) -> list[Figure]:
    """The guide's agent in voice, its ``AsyncOpenAI()`` pointed at the local llm."""
    port = free_port()
    llm = platform.start("llm", {"STELLA_LLM_MODEL": short, "STELLA_LLM_PORT": str(port)})
    local = {"OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1", "OPENAI_API_KEY": "local"}
    procs = [
        llm,
        platform.start("recorder"),
        platform.start("stt"),
        platform.start("tts"),
        platform.start("agent-runner", platform.example_agent_env(local)),
    ]
    pids = [p.pid for p in procs] + platform.nats_pids
    try:
        return asyncio.run(
            speech.voice_to_voice(
                platform,
                pids,
                turns=VOICE_TURNS,
                llm_label=f"the local llm ({short}, tools offered)",
                prefix=f"{short}: ",
            )
        )
    finally:
        for process in reversed(procs):
            process.stop()


def run(platform: BenchPlatform) -> list[Figure]:
    figures: list[Figure] = []
    for short, weights in catalog.LLMS.items():
        if not catalog.verified(catalog.models_dir() / weights.spec.folder_name, weights.spec):
            continue  # `stella models prepare` makes both; a partial set is still measured
        port = free_port()
        started = time.perf_counter()
        process = platform.start("llm", {"STELLA_LLM_MODEL": short, "STELLA_LLM_PORT": str(port)})
        load_s = time.perf_counter() - started
        try:
            figures += measure(f"http://127.0.0.1:{port}/v1", short, load_s)
        finally:
            process.stop()  # one model at a time: both would share the same two cores
    default = catalog.LLMS[DEFAULT_NAME].spec
    if catalog.verified(catalog.models_dir() / default.folder_name, default):
        figures += voice_with_local_llm(platform, DEFAULT_NAME)
    return figures
