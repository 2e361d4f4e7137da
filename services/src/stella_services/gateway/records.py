"""What the recorder knows about sessions, asked over its gRPC API with an admin token."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
from google.protobuf import json_format

from stella_contracts import EndReason
from stella_contracts.proto import history_pb2, history_pb2_grpc
from stella_services.gateway import queries
from stella_services.runtime import tokens

ADMIN_TOKEN_TTL_S = 3600


class RecordsUnavailable(RuntimeError):
    """The recorder could not answer; the message says why."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    created_at: datetime
    agent: str
    room_name: str
    metadata: dict[str, str]
    ended_at: datetime | None
    end_reason: EndReason | None


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def parse_row(row: list[object]) -> SessionRecord:
    sid, created, agent, room, metadata, ended, reason = (str(v) for v in row)
    try:
        meta = {str(k): str(v) for k, v in json.loads(metadata or "{}").items()}
    except (ValueError, AttributeError):
        meta = {}
    return SessionRecord(
        session_id=sid,
        created_at=_utc(created),
        agent=agent,
        room_name=room,
        metadata=meta,
        ended_at=_utc(ended) if reason else None,
        end_reason=EndReason(reason) if reason in {r.value for r in EndReason} else None,
    )


class Records:
    def __init__(self, addr: str, secret: str) -> None:
        self.addr = addr
        self._secret = secret
        self._channel = grpc.aio.insecure_channel(addr)
        self._stub = history_pb2_grpc.HistoryServiceStub(self._channel)

    def _auth(self) -> tuple[tuple[str, str], ...]:
        token = tokens.mint(self._secret, "gateway", tokens.Scope.ADMIN, ADMIN_TOKEN_TTL_S)
        return (("authorization", f"Bearer {token}"),)

    def _unavailable(self, exc: grpc.aio.AioRpcError) -> RecordsUnavailable:
        return RecordsUnavailable(
            f"the recorder at {self.addr} did not answer: {exc.code().name}: {exc.details()}"
        )

    async def _rows(self, sql: str) -> list[list[object]]:
        try:
            reply = await self._stub.Query(
                history_pb2.QueryRequest(sql=sql), timeout=10, metadata=self._auth()
            )
        except grpc.aio.AioRpcError as exc:
            raise self._unavailable(exc) from exc
        return [list(json_format.MessageToDict(r)) for r in reply.rows]

    async def page(
        self, limit: int, after: queries.Cursor | None
    ) -> tuple[list[SessionRecord], queries.Cursor | None]:
        rows = [parse_row(r) for r in await self._rows(queries.list_sessions_sql(limit, after))]
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, queries.Cursor(rows[-1].created_at, rows[-1].session_id)

    async def get(self, session_id: str) -> SessionRecord | None:
        rows = await self._rows(queries.session_sql(session_id))
        return parse_row(rows[0]) if rows else None

    async def agents(self) -> list[str]:
        return [str(r[0]) for r in await self._rows(queries.agents_sql()) if r and r[0]]

    async def transcript(self, session_id: str, limit: int) -> list[history_pb2.ChatMessage]:
        request = history_pb2.GetChatHistoryRequest(session_id=session_id, limit=limit)
        try:
            reply = await self._stub.GetChatHistory(request, timeout=10, metadata=self._auth())
        except grpc.aio.AioRpcError as exc:
            raise self._unavailable(exc) from exc
        return list(reply.messages)

    async def close(self) -> None:
        await self._channel.close()
