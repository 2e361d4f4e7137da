"""Per-session services (stt, tts): request/reply on ``stella.claim.<service>``, a queue group.

The replica that accepts subscribes to the session's own subjects *before* it answers, so
nothing the session sends after the claim is missed, and serves it until
``lifecycle.ended``. A draining replica hands its sessions on with ``handoff_from`` set.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# the one refusal not worth asking another replica about
REASON_ENDED = "session ended"


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    session_id: str = Field(min_length=1)
    service: str = Field(min_length=1, description="who is asked: stt, tts")
    handoff_from: str = Field(default="", description="the replica giving the session up")


class ClaimReply(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    accepted: bool
    instance: str = Field(default="", description="service/instance of the replica answering")
    reason: str = ""


class Lease(BaseModel):
    """A replica's hold on one session for one role, the value in the ``stella_leases``
    key-value bucket under ``<role>.<session_id>``. Renewed while held; when it lapses
    another replica of the role takes the session, resuming it from ``ticket``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance: str = Field(min_length=1, description="the replica holding the session")
    ticket: str = Field(
        default="", description="what a replica taking over needs (an agent's DispatchRequest)"
    )
    offered: bool = Field(
        default=False, description="its holder gives it up (draining): any replica may take it"
    )
