"""Whether a replica takes one more session: the same rule for agent runners, stt and tts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Admission:
    accepted: bool
    reason: str = ""


def admit(*, already_held: bool, draining: bool, held: int, capacity: int) -> Admission:
    """A pure decision. A session already held is ours whatever else is true (a repeated
    request must not make a second replica serve it); a draining replica takes nothing new;
    ``capacity`` 0 means no limit."""
    if already_held:
        return Admission(True, "already serving")
    if draining:
        return Admission(False, "draining")
    if capacity and held >= capacity:
        return Admission(False, "at capacity")
    return Admission(True)
