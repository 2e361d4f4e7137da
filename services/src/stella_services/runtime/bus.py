"""The services' bus: the SDK's :class:`stella_sdk.bus.Bus` plus stream management."""

from __future__ import annotations

from stella_sdk.bus import MSG_ID
from stella_sdk.bus import Bus as _SdkBus
from stella_services.runtime.settings import ServiceSettings
from stella_services.runtime.streams import deadletter_stream, ensure_stream, events_stream

__all__ = ["MSG_ID", "Bus"]


class Bus(_SdkBus):
    @classmethod
    async def connect(
        cls, settings: ServiceSettings, service: str, *, connect_timeout: float = 5.0
    ) -> Bus:
        bus = await cls.open(
            settings.nats_servers(),
            service=service,
            instance=settings.instance,
            connect_timeout=connect_timeout,
        )
        assert isinstance(bus, Bus)
        return bus

    async def ensure_streams(self, events_max_age_days: float = 30.0, replicas: int = 1) -> None:
        await ensure_stream(self.js, events_stream(events_max_age_days, replicas))
        await ensure_stream(self.js, deadletter_stream(replicas))
