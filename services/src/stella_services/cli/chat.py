"""``stella chat AGENT``: a text session with an agent, from the terminal."""

from __future__ import annotations

import asyncio
import contextlib

import typer
from nats.aio.msg import Msg
from rich.console import Console

from stella_contracts import (
    AgentText,
    AgentTurnDone,
    EndReason,
    Envelope,
    InvalidEnvelope,
    ToolCall,
    ToolResult,
    UserText,
    chat_view,
    subjects,
)
from stella_services.cli.settings import CliSettings
from stella_services.runtime.bus import Bus
from stella_services.runtime.secret import SecretError, platform_secret
from stella_services.runtime.sessions import (
    DispatchFailed,
    end_session,
    new_session_id,
    open_session,
)

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class Transcript:
    """Prints the session's conversation as it happens and tells when a turn is done."""

    def __init__(self, show_tools: bool) -> None:
        self.show_tools = show_tools
        self.turns_done: asyncio.Queue[AgentTurnDone] = asyncio.Queue()

    async def on_message(self, msg: Msg) -> None:
        try:
            env = Envelope.from_json(msg.data)
        except InvalidEnvelope:
            return
        p = env.payload
        if isinstance(p, AgentText) and p.is_final:
            console.print(f"[green]agent:[/] {p.text}")
        elif isinstance(p, (ToolCall, ToolResult)) and self.show_tools:
            console.print(f"  [dim]↳ {chat_view(env).content}[/]")
        elif isinstance(p, AgentTurnDone):
            if p.error:
                err.print(f"[red]the agent failed this turn: {p.error}[/]")
            self.turns_done.put_nowait(p)

    async def wait_turn(self, timeout: float) -> AgentTurnDone:
        try:
            return await asyncio.wait_for(self.turns_done.get(), timeout)
        except TimeoutError:
            err.print(f"[red]no answer from the agent within {timeout:g} s[/]")
            raise typer.Exit(1) from None


def chat(
    agent: str = typer.Argument(..., help="the agent's name, e.g. my-custom-agent"),
    message: list[str] | None = typer.Option(
        None,
        "--message",
        "-m",
        help="say this and wait for the answer (repeatable); without it, chat interactively",
    ),
    room: str = typer.Option("", "--room", help="a named room (for a runner with ROOM_NAME)"),
    timeout: float = typer.Option(120.0, help="seconds to wait for each answer"),
    tools: bool = typer.Option(True, "--tools/--no-tools", help="show tool calls"),
) -> None:
    """Talk to an agent by text (a session without audio)."""
    asyncio.run(_chat(agent, message or [], room, timeout, tools))


async def _chat(agent: str, messages: list[str], room: str, timeout: float, tools: bool) -> None:
    settings = CliSettings()
    try:
        secret = platform_secret(settings.data_dir, create=False)
        bus = await Bus.connect(settings, "cli", connect_timeout=3)
    except SecretError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    except Exception as exc:
        err.print(f"[red]cannot reach NATS at {settings.nats_url}: {exc}[/]")
        raise typer.Exit(1) from None
    transcript = Transcript(tools)
    session_id = new_session_id()
    sub = await bus.nc.subscribe(subjects.session_events(session_id), cb=transcript.on_message)
    try:
        try:
            opened = await open_session(bus, agent, secret, room_name=room, session_id=session_id)
        except DispatchFailed as exc:
            err.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
        err.print(f"[dim]session {opened.session_id} · agent {agent} · {opened.runner}[/]")
        await transcript.wait_turn(timeout)  # the greeting (on_connect)
        if messages:
            for text in messages:
                console.print(f"[cyan]you:[/] {text}")
                await bus.emit(session_id, UserText(text=text))
                await transcript.wait_turn(timeout)
        else:
            await _interactive(bus, session_id, transcript, timeout)
    finally:
        with contextlib.suppress(Exception):
            await end_session(bus, session_id, EndReason.CLIENT)
        await sub.unsubscribe()
        await bus.close()
        err.print(f"[dim]history: stella history {session_id}[/]")


async def _interactive(bus: Bus, session_id: str, transcript: Transcript, timeout: float) -> None:
    err.print("[dim]type a message; an empty line or Ctrl-D ends the session[/]")
    while True:
        try:
            text = await asyncio.to_thread(input, "you: ")
        except (EOFError, KeyboardInterrupt):
            return
        if not text.strip():
            return
        await bus.emit(session_id, UserText(text=text))
        await transcript.wait_turn(timeout)
