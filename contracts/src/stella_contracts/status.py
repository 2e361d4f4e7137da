"""What a replica holds: the answer to a request on ``stella.status[.<service>]``.

Every replica answers (no queue group), so a caller gathers replies for a short while.
``sessions``, ``tasks`` and ``subscriptions`` count only what is held *for sessions*: all
three are empty once every session a replica served has ended. The ``process_*`` figures
count everything in the process, for spotting a leak the service itself does not track.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServiceStatus(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str
    instance: str
    pid: int
    sessions: list[str] = Field(default_factory=list, description="session ids held now")
    tasks: int = Field(default=0, ge=0, description="asyncio tasks working for sessions or calls")
    subscriptions: int = Field(default=0, ge=0, description="NATS subscriptions of sessions")
    draining: bool = False
    capacity: int = Field(default=0, ge=0, description="sessions it takes at most; 0: no limit")
    served_total: int = Field(default=0, ge=0, description="sessions (or calls) since start")
    process_tasks: int = Field(default=0, ge=0, description="every asyncio task in the process")
    process_subscriptions: int = Field(
        default=0, ge=0, description="every subscription of the process's NATS connection"
    )

    @property
    def holds_anything(self) -> bool:
        return bool(self.sessions) or self.tasks > 0 or self.subscriptions > 0
