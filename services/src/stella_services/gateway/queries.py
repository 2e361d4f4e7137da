"""SQL the gateway asks the recorder, built from validated values only (pure functions)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

from stella_contracts import subjects

MAX_PAGE = 100


class BadCursor(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the previous page stopped: its last session's creation time and id."""

    created: datetime
    session_id: str

    def encode(self) -> str:
        raw = f"{self.created.isoformat()}|{self.session_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            ts, sid = raw.split("|", 1)
            created = datetime.fromisoformat(ts)
            subjects.token(sid, "session id")
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise BadCursor("cursor is not one this API returned") from exc
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return cls(created.astimezone(UTC), sid)


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ts_literal(value: datetime) -> str:
    text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return f"toDateTime64({_literal(text)}, 6, 'UTC')"


_COLUMNS = """
    c.session_id, toString(c.ts), c.agent, c.room_name, c.metadata,
    toString(e.ended_ts), e.reason"""


def _sessions_sql(where: str, limit: int) -> str:
    return f"""
WITH created AS (
    SELECT session_id, ts,
        JSONExtractString(envelope, 'payload', 'agent') AS agent,
        JSONExtractString(envelope, 'payload', 'room_name') AS room_name,
        JSONExtractRaw(envelope, 'payload', 'metadata') AS metadata
    FROM stella.events
    WHERE type = 'lifecycle.created' {where}
    ORDER BY ts DESC, session_id DESC
    LIMIT 1 BY session_id
    LIMIT {limit}
)
SELECT {_COLUMNS}
FROM created AS c
LEFT JOIN (
    SELECT session_id, min(ts) AS ended_ts,
        argMin(JSONExtractString(envelope, 'payload', 'reason'), ts) AS reason
    FROM stella.events
    WHERE type = 'lifecycle.ended' AND session_id IN (SELECT session_id FROM created)
    GROUP BY session_id
) AS e ON c.session_id = e.session_id
ORDER BY c.ts DESC, c.session_id DESC"""


def list_sessions_sql(limit: int, after: Cursor | None) -> str:
    """Newest first; one row more than asked so the caller knows whether a page follows."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}")
    where = ""
    if after is not None:
        ts = _ts_literal(after.created)
        sid = _literal(subjects.token(after.session_id, "session id"))
        where = f"AND (ts < {ts} OR (ts = {ts} AND session_id < {sid}))"
    return _sessions_sql(where, limit + 1)


def session_sql(session_id: str) -> str:
    sid = _literal(subjects.token(session_id, "session id"))
    return _sessions_sql(f"AND session_id = {sid}", 1)


def agents_sql(days: int = 30) -> str:
    """Agents that had sessions lately: what the playground offers to choose from."""
    return f"""
SELECT DISTINCT JSONExtractString(envelope, 'payload', 'agent') AS agent
FROM stella.events
WHERE type = 'lifecycle.created' AND ts > now64(6) - INTERVAL {int(days)} DAY
ORDER BY agent
LIMIT 100"""
