"""``stella status``: what every running replica holds right now."""

from __future__ import annotations

import asyncio
import contextlib

import typer
from rich.console import Console
from rich.table import Table

from stella_contracts import ServiceStatus
from stella_services.cli.settings import CliSettings, connect_or_exit
from stella_services.runtime.status import gather_status

console = Console(highlight=False)
err = Console(stderr=True)


def status(
    service: str | None = typer.Option(None, "--service", "-s", help="only this service"),
    timeout: float = typer.Option(0.5, help="seconds to wait for replicas to answer"),
    raw: bool = typer.Option(False, "--json", help="one JSON object per replica"),
    show_sessions: bool = typer.Option(False, "--sessions", help="list the session ids held"),
) -> None:
    """Every replica of every service: sessions, tasks and subscriptions held, draining."""
    settings = CliSettings()
    replies = asyncio.run(_gather(settings, service, timeout))
    if raw:
        for reply in replies:
            console.print(reply.model_dump_json(), soft_wrap=True)
        return
    if not replies:
        err.print(f"[yellow]no replica answered on {settings.nats_url} within {timeout:g} s[/]")
        raise typer.Exit(1)
    console.print(status_table(replies, show_sessions))


async def _gather(
    settings: CliSettings, service: str | None, timeout: float
) -> list[ServiceStatus]:
    nc = await connect_or_exit(settings)
    try:
        return await gather_status(nc, service, timeout=timeout)
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()


def status_table(replies: list[ServiceStatus], show_sessions: bool = False) -> Table:
    table = Table(title=f"{len(replies)} replica(s)")
    for col in ("service", "instance", "pid", "sessions", "tasks", "subs", "served", "state"):
        table.add_column(col, justify="right" if col in ("pid", "tasks", "subs") else "left")
    for r in replies:
        held = f"{len(r.sessions)}" + (f"/{r.capacity}" if r.capacity else "")
        if show_sessions and r.sessions:
            held += "\n" + "\n".join(r.sessions)
        table.add_row(
            r.service,
            r.instance,
            str(r.pid),
            held,
            str(r.tasks),
            str(r.subscriptions),
            str(r.served_total),
            "[yellow]draining[/]" if r.draining else "[green]serving[/]",
        )
    return table
