"""The recorder as a process: consumer loop + gRPC server around one event store."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from nats.aio.subscription import Subscription

from stella_contracts import ServiceStatus
from stella_sdk.runtime.status import answer_status, status_of
from stella_services.recorder.consumer import EventRecorder
from stella_services.recorder.grpc_api import HistoryService, start_server
from stella_services.recorder.settings import RecorderSettings
from stella_services.recorder.store import EventStore
from stella_services.runtime.bus import Bus
from stella_services.runtime.secret import platform_secret

log = logging.getLogger(__name__)


class RecorderService:
    name = "recorder"

    def __init__(self, settings: RecorderSettings | None = None) -> None:
        self.settings = settings or RecorderSettings()
        self.store = EventStore(self.settings.clickhouse_dsn())
        self.bus: Bus | None = None
        self.recorder: EventRecorder | None = None
        self.grpc: grpc.aio.Server | None = None
        self.grpc_port = 0
        self._loop: asyncio.Task[None] | None = None
        self._status_subs: list[Subscription] = []

    async def start(self) -> None:
        s = self.settings
        applied = await self.store.open()
        if applied:
            log.info("ClickHouse schema now at %s", applied[-1])
        self.bus = await Bus.connect(s, self.name)
        await self.bus.ensure_streams(s.events_max_age_days, s.stream_replicas)
        self.recorder = EventRecorder(
            self.bus,
            self.store,
            consumer=s.consumer,
            batch_size=s.batch_size,
            batch_wait_s=s.batch_wait_ms / 1000,
            ack_wait_s=s.ack_wait_s,
        )
        await self.recorder.start()
        self._loop = asyncio.create_task(self.recorder.run(), name="recorder-loop")
        self._status_subs = await answer_status(self.bus.nc, self.name, self.status)
        self.grpc, self.grpc_port = await start_server(
            s.history_addr,
            HistoryService(self.store, s.query_max_rows, platform_secret(s.data_dir)),
        )
        log.info(
            "recording %s into %s; history gRPC on port %d",
            "stella.session.>",
            _redact(self.store.dsn),
            self.grpc_port,
        )

    def status(self) -> ServiceStatus:
        """The recorder holds nothing per session: it answers so `stella status` lists it."""
        assert self.bus is not None
        return status_of(self.bus.nc, self.name, self.settings.instance)

    async def stop(self) -> None:
        if self.recorder is not None:
            self.recorder.stop()
        if self._loop is not None:
            try:
                await asyncio.wait_for(self._loop, timeout=10)
            except TimeoutError:
                self._loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._loop
        if self.grpc is not None:
            await self.grpc.stop(grace=2)
        if self.bus is not None:
            await self.bus.close()
        await self.store.close()


def _redact(dsn: str) -> str:
    """Hide a password in a server DSN before logging it."""
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return dsn
