"""Short-lived signed tokens (JWT, HS256, signed with the platform secret).

Scopes: ``history`` reads one session's chat history (``sub`` is the session id), ``admin``
reads every session and runs analytics queries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import jwt

ISSUER = "stella"
ALGORITHM = "HS256"


class Scope(StrEnum):
    HISTORY = "history"
    ADMIN = "admin"
    MEDIA = "media"


class TokenError(ValueError):
    """The token is missing, malformed, expired, or not signed by this platform."""


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str
    scope: Scope
    expires_at: int

    def allows_session(self, session_id: str) -> bool:
        return self.scope is Scope.ADMIN or self.subject == session_id


def mint(secret: str, subject: str, scope: Scope, ttl_s: float) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "scope": scope.value,
        "iat": now,
        "exp": now + int(ttl_s),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(secret: str, token: str) -> Claims:
    try:
        data = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "sub", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token expired") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"invalid token: {exc}") from exc
    try:
        scope = Scope(str(data.get("scope")))
    except ValueError as exc:
        raise TokenError(f"unknown token scope {data.get('scope')!r}") from exc
    return Claims(subject=str(data["sub"]), scope=scope, expires_at=int(data["exp"]))


def bearer(metadata: dict[str, str]) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header, if any."""
    value = metadata.get("authorization", "")
    if value.lower().startswith("bearer "):
        return value[7:].strip() or None
    return None
