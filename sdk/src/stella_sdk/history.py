"""Reading a session's chat history from the recorder (gRPC), with the session's token."""

from __future__ import annotations

import json

import grpc

from stella_contracts import HISTORY_MAX_LIMIT, ChatMessage
from stella_contracts.proto import history_pb2, history_pb2_grpc


class HistoryUnavailable(RuntimeError):
    """The recorder could not be asked (not configured, unreachable, or refused)."""


def clamp_limit(limit: int) -> int:
    """``limit`` is capped at 500; below 1 is a mistake worth a clear error."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    return min(limit, HISTORY_MAX_LIMIT)


class HistoryClient:
    def __init__(self, addr: str, token: str) -> None:
        self.addr = addr
        self._token = token
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> history_pb2_grpc.HistoryServiceStub:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.addr)
        return history_pb2_grpc.HistoryServiceStub(self._channel)

    async def get(self, session_id: str, limit: int, include_debug: bool) -> list[ChatMessage]:
        request = history_pb2.GetChatHistoryRequest(
            session_id=session_id, limit=clamp_limit(limit), include_debug=include_debug
        )
        try:
            reply = await self._stub().GetChatHistory(
                request, timeout=10, metadata=(("authorization", f"Bearer {self._token}"),)
            )
        except grpc.aio.AioRpcError as exc:
            raise HistoryUnavailable(
                f"chat history from {self.addr}: {exc.code().name}: {exc.details()}"
            ) from exc
        return [
            ChatMessage(
                id=m.id,
                timestamp=m.timestamp,
                role=m.role,
                content=m.content,
                message_type=m.message_type,
                envelope=json.loads(m.envelope),
            )
            for m in reply.messages
        ]

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
