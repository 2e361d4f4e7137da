"""Look inside a running platform: live events, a session's history, analytics SQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal

import grpc
import typer
from google.protobuf import json_format
from nats.aio.msg import Msg
from rich.console import Console
from rich.table import Table
from rich.text import Text

from stella_contracts import Envelope, InvalidEnvelope, chat_view, subjects
from stella_contracts.proto import history_pb2, history_pb2_grpc
from stella_services.cli.settings import CliSettings, connect_or_exit
from stella_services.runtime import tokens
from stella_services.runtime.secret import SecretError, platform_secret

console = Console(highlight=False)
err = Console(stderr=True)

_TYPE_STYLE = {"user": "cyan", "assistant": "green", "system": "dim"}


def render_envelope(env: Envelope) -> Text:
    """One readable line per envelope: time, session, type, source, what it says."""
    view = chat_view(env)
    line = Text()
    line.append(env.ts.strftime("%H:%M:%S.%f")[:-3], style="dim")
    line.append(f"  {env.session_id}  ", style="bold")
    line.append(f"{env.type:<18}", style=_TYPE_STYLE.get(view.role.value, ""))
    line.append(f" {env.source}#{env.seq}  ", style="dim")
    line.append(view.content)
    return line


def events(
    session: str | None = typer.Option(None, "--session", "-s", help="only this session"),
    replay: bool = typer.Option(False, "--replay", help="start from the oldest stored event"),
    raw: bool = typer.Option(False, "--json", help="print each envelope as JSON"),
    count: int = typer.Option(
        0, "--count", "-n", help="stop after this many (0: run until Ctrl-C)"
    ),
) -> None:
    """Live tail of session envelopes on the bus."""
    settings = CliSettings()
    subject = subjects.session_events(session) if session else subjects.all_session_events()
    asyncio.run(_tail(settings, subject, replay, raw, count))


async def _tail(settings: CliSettings, subject: str, replay: bool, raw: bool, count: int) -> None:
    nc = await connect_or_exit(settings)
    done = asyncio.Event()
    seen = 0

    async def show(msg: Msg) -> None:
        nonlocal seen
        try:
            env = Envelope.from_json(msg.data)
        except InvalidEnvelope as exc:
            console.print(Text(f"invalid message on {msg.subject}: {exc.reason}", style="red"))
        else:
            console.print(env.model_dump_json() if raw else render_envelope(env), soft_wrap=True)
        seen += 1
        if count and seen >= count:
            done.set()

    if replay:
        await nc.jetstream().subscribe(subject, cb=show, ordered_consumer=True)
    else:
        await nc.subscribe(subject, cb=show)
    await nc.flush()  # the server has the subscription before anyone is told we listen
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before the line: Ctrl-C after it stops cleanly
        loop.add_signal_handler(sig, done.set)
    err.print(f"[dim]listening on {subject} at {settings.nats_url}; Ctrl-C to stop[/]")
    await done.wait()
    with contextlib.suppress(Exception):
        await nc.drain()


Metadata = tuple[tuple[str, str], ...]


def _stub(
    settings: CliSettings,
) -> tuple[grpc.Channel, history_pb2_grpc.HistoryServiceStub, Metadata]:
    """A channel, and the metadata carrying an admin token signed with the platform secret."""
    try:
        secret = platform_secret(settings.data_dir, create=False)
    except SecretError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    token = tokens.mint(secret, "stella-cli", tokens.Scope.ADMIN, ttl_s=300)
    channel = grpc.insecure_channel(settings.history_addr)
    return (
        channel,
        history_pb2_grpc.HistoryServiceStub(channel),
        (("authorization", f"Bearer {token}"),),
    )


def _fail(exc: grpc.RpcError, settings: CliSettings) -> typer.Exit:
    code = exc.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        err.print(
            f"[red]the recorder at {settings.history_addr} is not reachable[/]"
            " (is `stella up` running? set STELLA_HISTORY_ADDR)"
        )
    else:
        err.print(f"[red]{code.name}: {exc.details()}[/]")
    return typer.Exit(1)


def history(
    session_id: str = typer.Argument(..., help="the session id"),
    limit: int = typer.Option(100, "--limit", "-l", help="newest N messages (1..500)"),
    debug: bool = typer.Option(False, "--debug", help="include processing events"),
    raw: bool = typer.Option(False, "--json", help="print messages as JSON lines"),
) -> None:
    """A session's chat history from the recorder, oldest first."""
    settings = CliSettings()
    channel, stub, auth = _stub(settings)
    with channel:
        try:
            reply = stub.GetChatHistory(
                history_pb2.GetChatHistoryRequest(
                    session_id=session_id, limit=limit, include_debug=debug
                ),
                timeout=10,
                metadata=auth,
            )
        except grpc.RpcError as exc:
            raise _fail(exc, settings) from None
    if raw:
        for m in reply.messages:
            console.print(json_format.MessageToJson(m, indent=None), soft_wrap=True)
        return
    table = Table(title=f"session {session_id}", show_lines=False)
    for col in ("time", "role", "type", "content"):
        table.add_column(col, overflow="fold")
    for m in reply.messages:
        table.add_row(
            m.timestamp, m.role, m.message_type, m.content, style=_TYPE_STYLE.get(m.role, "")
        )
    console.print(table)
    if not reply.messages:
        err.print("[dim]no messages for this session[/]")


def _is_integer_type(clickhouse_type: str) -> bool:
    """Protobuf numbers are doubles; integer columns print without the '.0'."""
    bare = clickhouse_type.removeprefix("Nullable(").removeprefix("LowCardinality(")
    return bare.startswith(("Int", "UInt"))


def query(
    sql: str = typer.Argument(
        ..., help="one read-only statement, e.g. SELECT count() FROM stella.events"
    ),
    max_rows: int = typer.Option(1000, "--max-rows", help="at most this many rows"),
    raw: bool = typer.Option(False, "--json", help="print rows as JSON lines"),
) -> None:
    """Run read-only SQL on the recorded events and print a table."""
    settings = CliSettings()
    channel, stub, auth = _stub(settings)
    with channel:
        try:
            reply = stub.Query(
                history_pb2.QueryRequest(sql=sql, max_rows=max_rows), timeout=60, metadata=auth
            )
        except grpc.RpcError as exc:
            raise _fail(exc, settings) from None
    names = [c.name for c in reply.columns]
    integral = [_is_integer_type(c.type) for c in reply.columns]
    rows = [
        [int(v) if i and isinstance(v, float) else v for v, i in zip(row, integral, strict=True)]
        for row in (json_format.MessageToDict(r) for r in reply.rows)
    ]
    if raw:
        for row in rows:
            console.print(
                json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False), soft_wrap=True
            )
    else:
        table = Table(*names)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
    if reply.truncated:
        err.print(f"[yellow]showing the first {len(rows)} rows (--max-rows)[/]")
