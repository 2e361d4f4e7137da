"""Who may call: API keys for the REST API, media tokens for one session's audio."""

from __future__ import annotations

from fastapi import Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from stella_services.gateway.errors import ApiError, unauthorized
from stella_services.gateway.keys import KeyRing
from stella_services.runtime import tokens

bearer_scheme = HTTPBearer(auto_error=False, description="an API key, or a media token")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")


def check_api_key(
    keyring: KeyRing, bearer: HTTPAuthorizationCredentials | None, header_key: str | None
) -> None:
    presented = header_key or (bearer.credentials if bearer else None)
    if not presented:
        raise unauthorized("send an API key as 'Authorization: Bearer <key>' or 'X-API-Key'")
    if not keyring.accepts(presented):
        raise unauthorized("the API key is not valid")


def media_token(request: Request, bearer: HTTPAuthorizationCredentials | None) -> str | None:
    return (bearer.credentials if bearer else None) or request.query_params.get("token")


def check_media_token(secret: str, token: str | None, session_id: str) -> tokens.Claims:
    """A valid, unexpired media token of exactly this session (401, or 403 for another)."""
    if not token:
        raise unauthorized("a media token is required (?token= or Authorization: Bearer)")
    try:
        claims = tokens.verify(secret, token)
    except tokens.TokenError as exc:
        raise unauthorized(f"media token refused: {exc}") from None
    if claims.scope is not tokens.Scope.MEDIA or claims.subject != session_id:
        raise ApiError(403, "forbidden", "this token is not for this session")
    return claims
