"""The event store in ClickHouse, reached through clickhouse-connect only.

chdb (the embedded engine) lets one process own a data directory and has no async client,
so every call runs on one dedicated thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit
from uuid import UUID

import clickhouse_connect

from stella_contracts import Envelope
from stella_contracts.chat import chat_view
from stella_services.recorder import migrations, sql

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

EventRow = tuple[Any, ...]


def client_interface(dsn: str) -> str | None:
    """``get_client``'s interface for a DSN. clickhouse-connect reads TLS from the port alone
    (``https://host/`` would speak plain HTTP to 8123), so an http(s) scheme is passed on."""
    scheme = urlsplit(dsn).scheme
    return scheme if scheme in ("http", "https") else None


def event_row(envelope: Envelope, raw: str) -> EventRow:
    """One ``stella.events`` row, columns in :data:`sql.EVENT_COLUMNS` order."""
    view = chat_view(envelope)
    return (
        envelope.id,
        envelope.session_id,
        envelope.type,
        envelope.ts,
        envelope.source.service,
        envelope.source.instance,
        envelope.seq,
        envelope.trace or "",
        envelope.v,
        view.role.value,
        view.content,
        str(view.message_type),
        1 if view.is_chat else 0,
        raw,
    )


@dataclass(frozen=True, slots=True)
class HistoryRow:
    id: str
    ts: datetime
    role: str
    content: str
    message_type: str
    envelope: str


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[Sequence[Any]]
    truncated: bool


class EventStore:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._client: Any = None

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self, migrations_dir: Path | None = None) -> list[str]:
        """Connect and apply pending migrations; returns the versions applied now."""
        return await self._run(self._open, migrations_dir or migrations.migrations_dir())

    def _open(self, directory: Path) -> list[str]:
        if self.dsn.startswith("chdb://"):
            Path(self.dsn.removeprefix("chdb://")).mkdir(parents=True, exist_ok=True)
        self._client = clickhouse_connect.get_client(
            dsn=self.dsn, interface=client_interface(self.dsn)
        )
        self._client.command(sql.create_database_sql())
        self._client.command(sql.create_migrations_table_sql())
        done = {
            r[0] for r in self._client.query(f"SELECT version FROM {sql.MIGRATIONS}").result_rows
        }
        applied = []
        for migration in migrations.discover(directory):
            if migration.version in done:
                continue
            for statement in sql.split_statements(migration.read()):
                self._client.command(statement)
            self._client.insert(sql.MIGRATIONS, [(migration.version,)], column_names=["version"])
            applied.append(migration.version)
            log.info("applied ClickHouse migration %s", migration.version)
        return applied

    async def close(self) -> None:
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- writes ------------------------------------------------------------------------

    async def insert(self, rows: list[EventRow]) -> None:
        if rows:
            await self._run(self._client.insert, sql.EVENTS, rows, column_names=sql.EVENT_COLUMNS)

    async def existing_ids(self, ids: Sequence[UUID]) -> set[str]:
        if not ids:
            return set()
        result = await self._run(
            self._client.query, sql.existing_ids_sql(), parameters={"ids": list(ids)}
        )
        return {row[0] for row in result.result_rows}

    # -- reads -------------------------------------------------------------------------

    async def history(self, session_id: str, limit: int, include_debug: bool) -> list[HistoryRow]:
        sql.check_history_limit(limit)
        result = await self._run(
            self._client.query,
            sql.history_sql(include_debug),
            parameters={"session_id": session_id, "limit": limit},
        )
        newest_first = result.result_rows
        return [HistoryRow(str(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in reversed(newest_first)]

    async def query(self, statement: str, max_rows: int) -> QueryResult:
        checked = sql.ensure_read_only(statement)
        return await self._run(self._query, checked, max_rows)

    def _query(self, statement: str, max_rows: int) -> QueryResult:
        result = self._client.query(statement, settings={"readonly": 1})
        rows = result.result_rows
        return QueryResult(
            columns=list(result.column_names),
            types=[t.name for t in result.column_types],
            rows=rows[:max_rows],
            truncated=len(rows) > max_rows,
        )
