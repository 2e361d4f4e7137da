from __future__ import annotations

from pathlib import Path

import nats
import typer
from nats.aio.client import Client as NATS
from pydantic import AliasChoices, Field
from rich.console import Console

from stella_services.runtime.settings import ServiceSettings


class CliSettings(ServiceSettings):
    history_addr: str = Field(default="127.0.0.1:50051", description="the recorder's gRPC address")
    # what `stella up` reads to plan and report the platform it starts
    llm_port: int = Field(default=0, ge=0, description="the local LLM's port (0: 8090 if free)")
    api_keys: str = Field(default="", description="accepted API keys (none: one is made)")
    secret: str = Field(default="", description="the platform secret, if set (else a file)")
    example_agent_dir: Path | None = Field(
        default=None, description="the example project `stella up` starts"
    )
    clickhouse_url: str = Field(
        default="",
        validation_alias=AliasChoices("CLICKHOUSE_URL", "STELLA_CLICKHOUSE_URL"),
        description="a ClickHouse server (empty: the embedded one)",
    )
    openai_base_url: str = Field(
        default="", validation_alias="OPENAI_BASE_URL", description="where agents ask their LLM"
    )


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
