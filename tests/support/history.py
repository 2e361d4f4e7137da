"""A gRPC client for the recorder, as tests use it."""

from __future__ import annotations

import time

import grpc

from stella_contracts.proto import history_pb2, history_pb2_grpc
from stella_services.runtime import tokens

TEST_SECRET = "test-secret-for-stella-integration-tests-0123456789"


class HistoryClient:
    """Calls carry ``token`` (an admin token by default, minted with the test secret)."""

    def __init__(self, addr: str, token: str | None = None) -> None:
        self.channel = grpc.insecure_channel(addr)
        self.stub = history_pb2_grpc.HistoryServiceStub(self.channel)
        self.token = token or tokens.mint(TEST_SECRET, "tests", tokens.Scope.ADMIN, 3600)

    @property
    def auth(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    def query(self, sql: str, max_rows: int | None = None) -> history_pb2.QueryResponse:
        request = history_pb2.QueryRequest(sql=sql)
        if max_rows is not None:
            request.max_rows = max_rows
        return self.stub.Query(request, timeout=30, metadata=self.auth)

    def history(
        self, session_id: str, limit: int | None = None, include_debug: bool = False
    ) -> list[history_pb2.ChatMessage]:
        request = history_pb2.GetChatHistoryRequest(
            session_id=session_id, include_debug=include_debug
        )
        if limit is not None:
            request.limit = limit
        return list(self.stub.GetChatHistory(request, timeout=10, metadata=self.auth).messages)

    def scalar(self, sql: str) -> object:
        row = self.query(sql).rows[0].values[0]
        kind = row.WhichOneof("kind")
        return getattr(row, kind)

    def wait_for(self, sql: str, expected: object, timeout: float = 30.0) -> object:
        """Poll ``sql`` until it returns ``expected`` (recording is asynchronous)."""
        deadline = time.monotonic() + timeout
        value: object = None
        while time.monotonic() < deadline:
            try:
                value = self.scalar(sql)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
            if value == expected:
                return value
            time.sleep(0.1)
        return value

    def close(self) -> None:
        self.channel.close()
