"""The one place NATS subject names are built.

Every subject in STELLA comes from these functions so that services, the SDK and the
recorder can never disagree about spelling.
"""

from __future__ import annotations

import re

ROOT = "stella"
EVENTS_STREAM = "STELLA_EVENTS"
DEADLETTER_STREAM = "STELLA_DEADLETTER"

# A token may not contain the NATS separators or wildcards, nor whitespace.
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]+$")
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


class InvalidSubjectToken(ValueError):
    """A value cannot be used as one token of a NATS subject."""


def token(value: str, what: str = "token") -> str:
    """Return ``value`` if it is a single safe subject token, else raise."""
    if not _TOKEN.fullmatch(value):
        raise InvalidSubjectToken(
            f"{what} {value!r} cannot be a subject token: use letters, digits, '-' or '_'"
        )
    return value


def event_type(value: str) -> str:
    """Validate a dotted event type such as ``stt.transcript``."""
    if not _EVENT_TYPE.fullmatch(value):
        raise InvalidSubjectToken(f"event type {value!r} must be dotted lowercase words")
    return value


def session_event(session_id: str, type_: str) -> str:
    """``stella.session.<sid>.<event-type>``: one event of one session."""
    return f"{ROOT}.session.{token(session_id, 'session id')}.{event_type(type_)}"


def session_events(session_id: str) -> str:
    """Every event of one session."""
    return f"{ROOT}.session.{token(session_id, 'session id')}.>"


def all_session_events() -> str:
    """Every event of every session: what the recorder and ``stella events`` read."""
    return f"{ROOT}.session.>"


def any_session_event(type_: str) -> str:
    """One event type of every session (e.g. every ``lifecycle.ended``)."""
    return f"{ROOT}.session.*.{event_type(type_)}"


def audio_in(session_id: str) -> str:
    """Raw user audio for a session (client → stt)."""
    return f"{ROOT}.audio.{token(session_id, 'session id')}.in"


def audio_out(session_id: str) -> str:
    """Raw agent audio for a session (tts → client)."""
    return f"{ROOT}.audio.{token(session_id, 'session id')}.out"


def dispatch(agent_name: str) -> str:
    """Session assignment for one agent name (queue group request/reply)."""
    return f"{ROOT}.dispatch.{token(agent_name, 'agent name')}"


def dispatch_room(agent_name: str, room_name: str) -> str:
    """Assignment to the runner that serves one named room (tried before the pool)."""
    return f"{ROOT}.dispatch.{token(agent_name, 'agent name')}.{token(room_name, 'room name')}"


def tool(tool_name: str) -> str:
    """Execution requests for one tool (queue group request/reply)."""
    return f"{ROOT}.tools.{token(tool_name, 'tool name')}"


def claim(service: str) -> str:
    """Session claims for one per-session service such as ``stt`` or ``tts`` (queue group
    request/reply): the replica that accepts serves the session for its whole life."""
    return f"{ROOT}.claim.{token(service, 'service name')}"


LEASES_BUCKET = "stella_leases"  # JetStream key-value: who serves which session, per role


GATEWAY_ROLE = "gateway"  # the gateway's lease on each call it runs: the call is alive


def lease_role(service: str, agent_name: str = "") -> str:
    """A lease role: ``stt``, ``tts``, or ``agent.<name>`` (only runners of that agent)."""
    if agent_name:
        return f"agent.{token(agent_name, 'agent name')}"
    return token(service, "service name")


def lease_key(role: str, session_id: str) -> str:
    """The key of one session's lease for one role in :data:`LEASES_BUCKET`."""
    return f"{role}.{token(session_id, 'session id')}"


def status(service: str | None = None) -> str:
    """Status requests: every replica of ``service`` answers (scatter-gather); without a
    service, every replica of every service answers."""
    if service is None:
        return f"{ROOT}.status"
    return f"{ROOT}.status.{token(service, 'service name')}"


def tts_synthesize() -> str:
    """Streaming synthesis requests (queue group of tts workers); audio comes to the inbox."""
    return f"{ROOT}.tts.synthesize"


def deadletter(service: str) -> str:
    """Where a service puts messages it could not accept, with the reason."""
    return f"{ROOT}.deadletter.{token(service, 'service name')}"


def all_deadletters() -> str:
    return f"{ROOT}.deadletter.>"


def parse_session_subject(subject: str) -> tuple[str, str]:
    """Split ``stella.session.<sid>.<type>`` into ``(sid, type)``; raise if it is not one."""
    parts = subject.split(".", 3)
    if len(parts) != 4 or parts[0] != ROOT or parts[1] != "session" or not parts[3]:
        raise InvalidSubjectToken(f"{subject!r} is not a session event subject")
    return parts[2], parts[3]
