from __future__ import annotations

import nats
import typer
from nats.aio.client import Client as NATS
from pydantic import Field
from rich.console import Console

from stella_services.runtime.settings import ServiceSettings


class CliSettings(ServiceSettings):
    history_addr: str = Field(default="127.0.0.1:50051", description="the recorder's gRPC address")


async def connect_or_exit(settings: CliSettings) -> NATS:
    """A NATS connection for a command, or a readable error and exit status 1."""
    try:
        return await nats.connect(
            settings.nats_servers(), connect_timeout=3, max_reconnect_attempts=3
        )
    except Exception as exc:
        Console(stderr=True).print(
            f"[red]cannot reach NATS at {settings.nats_url}: {exc}[/] (is `stella up` running?)"
        )
        raise typer.Exit(1) from None
