"""``stella.history.v1.HistoryService`` over the event store."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeAlias
from uuid import UUID

import grpc
from google.protobuf import struct_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from stella_contracts import HISTORY_DEFAULT_LIMIT
from stella_contracts.proto import history_pb2, history_pb2_grpc
from stella_services.recorder.sql import NotReadOnly, check_history_limit
from stella_services.recorder.store import EventStore
from stella_services.runtime import tokens

log = logging.getLogger(__name__)

SERVICE_NAME = history_pb2.DESCRIPTOR.services_by_name["HistoryService"].full_name
_MAX_SAFE_INT = 2**53


def iso(ts: datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_value(value: Any) -> struct_pb2.Value:
    """A ClickHouse result cell as a protobuf ``Value`` (JSON-like)."""
    out = struct_pb2.Value()
    if value is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        out.bool_value = value
    elif (isinstance(value, int) and abs(value) < _MAX_SAFE_INT) or (
        isinstance(value, float) and math.isfinite(value)
    ):
        out.number_value = value
    elif isinstance(value, datetime):
        out.string_value = iso(value)
    elif isinstance(value, bytes):
        out.string_value = value.decode("utf-8", errors="replace")
    elif isinstance(value, Mapping):
        out.struct_value.update({str(k): _plain(v) for k, v in value.items()})
    elif isinstance(value, (list, tuple)):
        out.list_value.values.extend(to_value(v) for v in value)
    else:  # big ints, Decimal, UUID, date, IP addresses, non-finite floats: their text
        out.string_value = str(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date, UUID, Decimal, bytes)):
        return str(value) if not isinstance(value, datetime) else iso(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def row_value(row: Sequence[Any]) -> struct_pb2.ListValue:
    out = struct_pb2.ListValue()
    out.values.extend(to_value(v) for v in row)
    return out


Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class HistoryService(history_pb2_grpc.HistoryServiceServicer):
    """History is private to its session: every call carries a token signed by the platform."""

    def __init__(self, store: EventStore, query_max_rows: int, secret: str) -> None:
        self.store = store
        self.query_max_rows = query_max_rows
        self.secret = secret

    async def _claims(self, context: Context) -> tokens.Claims:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        token = tokens.bearer(metadata)
        if token is None:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "missing 'authorization: Bearer <token>'"
            )
        try:
            return tokens.verify(self.secret, token)  # type: ignore[arg-type]
        except tokens.TokenError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            raise  # abort raises; this keeps type checkers sure

    async def GetChatHistory(
        self,
        request: history_pb2.GetChatHistoryRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> history_pb2.GetChatHistoryResponse:
        limit = request.limit if request.HasField("limit") else HISTORY_DEFAULT_LIMIT
        claims = await self._claims(context)
        if not request.session_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "session_id is required")
        if not claims.allows_session(request.session_id):
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"this token reads session {claims.subject!r}, not {request.session_id!r}",
            )
        try:
            check_history_limit(limit)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        rows = await self.store.history(request.session_id, limit, request.include_debug)
        return history_pb2.GetChatHistoryResponse(
            messages=[
                history_pb2.ChatMessage(
                    id=r.id,
                    timestamp=iso(r.ts),
                    role=r.role,
                    content=r.content,
                    message_type=r.message_type,
                    envelope=r.envelope,
                )
                for r in rows
            ]
        )

    async def Query(
        self, request: history_pb2.QueryRequest, context: Context
    ) -> history_pb2.QueryResponse:
        max_rows = request.max_rows if request.HasField("max_rows") else self.query_max_rows
        claims = await self._claims(context)
        if claims.scope is not tokens.Scope.ADMIN:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, "analytics queries need an admin token"
            )
        if not 1 <= max_rows <= self.query_max_rows:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"max_rows must be between 1 and {self.query_max_rows}, got {max_rows}",
            )
        try:
            result = await self.store.query(request.sql, max_rows)
        except NotReadOnly as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"refused: {exc}")
        except Exception as exc:  # the engine's own message (syntax, unknown table, readonly)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _first_line(str(exc)))
        return history_pb2.QueryResponse(
            columns=[
                history_pb2.Column(name=n, type=t)
                for n, t in zip(result.columns, result.types, strict=True)
            ],
            rows=[row_value(r) for r in result.rows],
            truncated=result.truncated,
        )


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "query failed"
    return line[:1000]


async def start_server(addr: str, service: HistoryService) -> tuple[grpc.aio.Server, int]:
    """Serve history with reflection and the standard health service; returns the bound port."""
    server = grpc.aio.server()
    history_pb2_grpc.add_HistoryServiceServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(addr)
    if port == 0:
        raise OSError(f"cannot listen on {addr}")
    await server.start()
    await health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return server, port
