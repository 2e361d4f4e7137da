"""When `stella up` restarts a crashed service, and when it gives up: a pure decision.

A service that exits on its own is restarted after a delay that doubles with each crash in
the recent window (a service that crashes at once must not spin the CPU); one that crashes
more than ``max_crashes`` times within ``window_s`` is broken, not unlucky, and stops the
platform with a message naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["RestartPolicy", "restart_delay"]


@dataclass(frozen=True)
class RestartPolicy:
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_crashes: int = 5  # within window_s; one more and the platform stops
    window_s: float = 60.0


def restart_delay(crashes: Sequence[float], now: float, policy: RestartPolicy) -> float | None:
    """Seconds to wait before restarting a service whose crash times (monotonic, the latest
    included) are ``crashes``; ``None`` when it crashed too often to try again."""
    recent = sum(1 for t in crashes if now - t <= policy.window_s)
    if recent > policy.max_crashes:
        return None
    return min(policy.max_delay_s, policy.first_delay_s * 2.0 ** max(0, recent - 1))
