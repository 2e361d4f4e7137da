"""Request bodies are bounded: over ``STELLA_GATEWAY_MAX_BODY_BYTES`` is a 413, never read whole.

Without a bound a client could make the gateway buffer any amount (a 5 MB body was read whole
and then answered 422). A declared ``Content-Length`` over the limit is refused before a byte
is read; a chunked body is counted as it arrives and refused when it passes the limit.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stella_services.gateway.errors import error_json

__all__ = ["BodyLimit"]


class BodyLimit:
    """ASGI middleware bounding every HTTP request body to ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return f"request body over the gateway's limit of {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await error_json(413, "too_large", self._message())(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # an HTTPException passes FastAPI's body reading unchanged (any other
                    # error there becomes a 400) and the app's handler answers it as JSON
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)
