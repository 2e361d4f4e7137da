"""The gateway's HTTP surface (FastAPI): sessions REST, media endpoints, the playground."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request, Response, WebSocket
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.staticfiles import StaticFiles

from stella_contracts import EndReason
from stella_services.gateway import auth, errors
from stella_services.gateway.body_limit import BodyLimit
from stella_services.gateway.errors import ApiError, ErrorResponse, not_found
from stella_services.gateway.keys import KeyRing
from stella_services.gateway.live_sessions import LiveSession, LiveSessions
from stella_services.gateway.livekit_bridge import LiveKitBridge
from stella_services.gateway.queries import MAX_PAGE, BadCursor, Cursor
from stella_services.gateway.records import Records, RecordsUnavailable, SessionRecord
from stella_services.gateway.schemas import (
    AgentList,
    Connect,
    CreatedSession,
    CreateSession,
    LiveKitConnect,
    MediaToken,
    SessionDescription,
    SessionInfo,
    SessionPage,
    Transcript,
    TranscriptEntry,
)
from stella_services.gateway.webrtc import WebRtcPeers
from stella_services.gateway.ws import serve_websocket
from stella_services.runtime import tokens
from stella_services.runtime.bus import Bus
from stella_services.runtime.sessions import (
    DispatchFailed,
    NoRunner,
    SpeechClaimFailed,
    new_session_id,
    open_session,
)

PLAYGROUND = Path(__file__).parent / "playground"
SessionId = Annotated[
    str, PathParam(pattern=r"^[A-Za-z0-9_\-]+$", max_length=128, description="a session id")
]
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(auth.bearer_scheme)]
HeaderKey = Annotated[str | None, Depends(auth.api_key_scheme)]
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 413, 422, 503)
}


@dataclass
class Gateway:
    """Everything the routes need, made by the service at start."""

    bus: Bus
    secret: str
    keyring: KeyRing
    sessions: LiveSessions
    records: Records
    peers: WebRtcPeers
    livekit: LiveKitBridge | None
    media_token_ttl_s: float
    public_url: str = ""
    max_body_bytes: int = 1 << 20


def _info(live: LiveSession) -> SessionInfo:
    return SessionInfo(
        session_id=live.session_id,
        agent=live.agent,
        room_name=live.room_name,
        status="ended" if live.ended.is_set() else "active",
        created_at=live.created_at,
        expires_at=live.expires_at,
        ended_at=live.ended_at,
        end_reason=live.end_reason,
        metadata=live.metadata,
    )


def _from_record(rec: SessionRecord, live: LiveSession | None) -> SessionInfo:
    if live is not None:
        return _info(live)
    return SessionInfo(
        session_id=rec.session_id,
        agent=rec.agent,
        room_name=rec.room_name,
        status="ended" if rec.end_reason else "active",
        created_at=rec.created_at,
        ended_at=rec.ended_at,
        end_reason=rec.end_reason,
        metadata=rec.metadata,
    )


def create_app(gw: Gateway) -> FastAPI:
    app = FastAPI(
        title="STELLA gateway",
        version="1.0.0",
        description="Sessions with voice agents: REST, WebSocket and WebRTC audio, LiveKit.",
    )
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=gw.max_body_bytes)

    @app.exception_handler(RecordsUnavailable)
    async def recorder_down(request: Request, exc: RecordsUnavailable) -> Response:
        return errors.error_json(503, "recorder_unavailable", str(exc))

    def api_key(bearer: Bearer, header_key: HeaderKey) -> None:
        auth.check_api_key(gw.keyring, bearer, header_key)

    Authorized = Depends(api_key)

    def base_url(request: Request) -> str:
        return (gw.public_url or str(request.base_url)).rstrip("/")

    def media_grant(session_id: str) -> MediaToken:
        token = tokens.mint(gw.secret, session_id, tokens.Scope.MEDIA, gw.media_token_ttl_s)
        expires = datetime.now(UTC) + timedelta(seconds=gw.media_token_ttl_s)
        return MediaToken(token=token, expires_at=expires)

    @app.get("/healthz", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/agents", response_model=AgentList, responses=ERRORS, dependencies=[Authorized])
    async def agents() -> AgentList:
        """Agents that had sessions in the last 30 days (what the playground offers)."""
        return AgentList(agents=await gw.records.agents())

    @app.post(
        "/v1/sessions",
        status_code=201,
        response_model=CreatedSession,
        responses=ERRORS,
        dependencies=[Authorized],
    )
    async def create_session(body: CreateSession, request: Request) -> CreatedSession:
        """Open a session and hand it to one runner of ``agent``."""
        session_id = new_session_id()
        live = await gw.sessions.add(session_id, body.agent, f"room-{session_id}", body.metadata)
        try:
            await open_session(
                gw.bus,
                body.agent,
                gw.secret,
                audio=body.audio,
                metadata=body.metadata,
                session_id=session_id,
            )
        except NoRunner as exc:
            await gw.sessions.discard(session_id)
            raise ApiError(404, "agent_not_found", str(exc)) from None
        except SpeechClaimFailed as exc:
            await gw.sessions.discard(session_id)
            raise ApiError(503, "speech_unavailable", str(exc)) from None
        except DispatchFailed as exc:  # runners exist but none could take it now
            await gw.sessions.discard(session_id)
            raise ApiError(503, "agent_unavailable", str(exc)) from None
        grant = media_grant(session_id)
        base = base_url(request)
        ws_base = "ws" + base.removeprefix("http")
        livekit = None
        if gw.livekit is not None and body.audio:
            livekit = LiveKitConnect(
                url=gw.livekit.config.url,
                token=gw.livekit.participant_token(live, gw.media_token_ttl_s),
                room_name=live.room_name,
            )
            gw.livekit.join_soon(live)
        connect = Connect(
            token=grant.token,
            token_expires_at=grant.expires_at,
            websocket=f"{ws_base}/v1/sessions/{session_id}/ws",
            webrtc_offer=f"{base}/v1/sessions/{session_id}/webrtc",
            livekit=livekit,
        )
        return CreatedSession(**_info(live).model_dump(), connect=connect)

    @app.get(
        "/v1/sessions", response_model=SessionPage, responses=ERRORS, dependencies=[Authorized]
    )
    async def list_sessions(
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> SessionPage:
        """Sessions newest first, as recorded (the recorder lags by well under a second)."""
        try:
            after = Cursor.decode(cursor) if cursor else None
        except BadCursor as exc:
            raise ApiError(422, "invalid_request", f"query.cursor: {exc}") from None
        records, following = await gw.records.page(limit, after)
        return SessionPage(
            sessions=[_from_record(r, gw.sessions.known(r.session_id)) for r in records],
            next_cursor=following.encode() if following else None,
        )

    async def find(session_id: str) -> SessionInfo:
        live = gw.sessions.known(session_id)
        if live is not None:
            return _info(live)
        record = await gw.records.get(session_id)
        if record is None:
            raise not_found(session_id)
        return _from_record(record, None)

    @app.get(
        "/v1/sessions/{session_id}",
        response_model=SessionInfo,
        responses=ERRORS,
        dependencies=[Authorized],
    )
    async def get_session(session_id: SessionId) -> SessionInfo:
        return await find(session_id)

    @app.delete(
        "/v1/sessions/{session_id}",
        response_model=SessionInfo,
        responses=ERRORS,
        dependencies=[Authorized],
    )
    async def end(session_id: SessionId) -> SessionInfo:
        """End the session (``lifecycle.ended``, reason ``api``); ending it twice is fine."""
        live = gw.sessions.get(session_id)
        if live is not None:
            await gw.sessions.end(session_id, EndReason.API, "ended through the API")
            return _info(live)
        return await find(session_id)

    @app.get(
        "/v1/sessions/{session_id}/transcript",
        response_model=Transcript,
        responses=ERRORS,
        dependencies=[Authorized],
    )
    async def transcript(
        session_id: SessionId, limit: Annotated[int, Query(ge=1, le=500)] = 500
    ) -> Transcript:
        """The session's chat messages, oldest first."""
        await find(session_id)
        messages = await gw.records.transcript(session_id, limit)
        return Transcript(
            session_id=session_id,
            messages=[
                TranscriptEntry(
                    id=m.id,
                    timestamp=m.timestamp,
                    role=m.role,
                    content=m.content,
                    message_type=m.message_type,
                )
                for m in messages
            ],
        )

    @app.post(
        "/v1/sessions/{session_id}/token",
        response_model=MediaToken,
        responses=ERRORS,
        dependencies=[Authorized],
    )
    async def new_media_token(session_id: SessionId) -> MediaToken:
        """A fresh media token for a running session (the first comes with creation)."""
        if gw.sessions.get(session_id) is None:
            raise not_found(session_id)
        return media_grant(session_id)

    @app.post(
        "/v1/sessions/{session_id}/webrtc",
        response_model=SessionDescription,
        responses=ERRORS,
    )
    async def webrtc_offer(
        session_id: SessionId, offer: SessionDescription, request: Request, bearer: Bearer
    ) -> SessionDescription:
        """Send an SDP offer (all candidates gathered); get the answer. Media token required."""
        auth.check_media_token(gw.secret, auth.media_token(request, bearer), session_id)
        live = gw.sessions.get(session_id)
        if live is None:
            raise not_found(session_id)
        if offer.type != "offer":
            raise ApiError(422, "invalid_request", "body.type: expected 'offer'")
        try:
            sdp, kind = await gw.peers.answer(live, offer.sdp)
        except ValueError as exc:  # aiortc's word for an SDP it cannot use
            raise ApiError(422, "invalid_sdp", f"body.sdp: {exc}") from None
        return SessionDescription(sdp=sdp, type="answer" if kind == "answer" else "offer")

    @app.websocket("/v1/sessions/{session_id}/ws")
    async def websocket(ws: WebSocket, session_id: str, audio: bool = True) -> None:
        token = ws.query_params.get("token")
        try:
            auth.check_media_token(gw.secret, token, session_id)
        except ApiError as exc:
            await ws.close(code=1008, reason=exc.message[:120])
            return
        # not here: its gateway died and its client reconnected here (or it has ended)
        live = gw.sessions.get(session_id) or await gw.sessions.adopt(session_id)
        if live is None:
            await ws.close(code=1008, reason=f"session {session_id} is not running")
            return
        await ws.accept()
        await serve_websocket(ws, gw.bus, gw.sessions, live, audio)

    @app.get("/", include_in_schema=False)
    async def playground() -> Response:
        return FileResponse(PLAYGROUND / "index.html", media_type="text/html")

    app.mount("/playground", StaticFiles(directory=PLAYGROUND), name="playground")
    return app
