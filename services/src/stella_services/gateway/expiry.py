"""When a live session must end: a pure decision over its clock readings."""

from __future__ import annotations

from dataclasses import dataclass

from stella_contracts import EndReason


@dataclass(frozen=True, slots=True)
class Limits:
    idle_timeout_s: float
    max_duration_s: float
    disconnect_grace_s: float


@dataclass(frozen=True, slots=True)
class Clock:
    """Monotonic readings (seconds) of one session."""

    created: float
    last_activity: float
    disconnected_at: float | None  # a transport had connected and every one has left


def end_reason(clock: Clock, now: float, limits: Limits) -> EndReason | None:
    """The reason to end the session at ``now``, or None while it may go on.

    The maximum duration wins over the other two, so a session that is both too old and
    idle is reported as what bounds it for good.
    """
    if now - clock.created >= limits.max_duration_s:
        return EndReason.MAX_DURATION
    if (
        clock.disconnected_at is not None
        and now - clock.disconnected_at >= limits.disconnect_grace_s
    ):
        return EndReason.CLIENT
    if now - clock.last_activity >= limits.idle_timeout_s:
        return EndReason.IDLE_TIMEOUT
    return None
