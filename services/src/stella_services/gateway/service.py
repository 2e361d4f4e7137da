"""The gateway service: the FastAPI app on uvicorn, in the same event loop as the bus."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import uvicorn
from nats.aio.subscription import Subscription

from stella_contracts import ServiceStatus, subjects
from stella_sdk.runtime.leases import Leases, open_bucket
from stella_sdk.runtime.status import answer_status, status_of
from stella_services.gateway import URL_LINE
from stella_services.gateway.app import Gateway, create_app
from stella_services.gateway.expiry import Limits
from stella_services.gateway.keys import load_keyring
from stella_services.gateway.live_sessions import LiveSessions
from stella_services.gateway.livekit_bridge import LiveKitBridge, LiveKitConfig
from stella_services.gateway.records import Records
from stella_services.gateway.settings import GatewaySettings
from stella_services.gateway.webrtc import WebRtcPeers
from stella_services.runtime.bus import Bus
from stella_services.runtime.lifecycle import ConfigurationError
from stella_services.runtime.secret import platform_secret

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the service's lifecycle owns SIGTERM/SIGINT and stops uvicorn itself


class GatewayService:
    name = "gateway"

    def __init__(self, settings: GatewaySettings | None = None) -> None:
        self.settings = settings or GatewaySettings()
        self.bus: Bus | None = None
        self.gateway: Gateway | None = None
        self._server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self.url = ""
        self._status_subs: list[Subscription] = []

    async def start(self) -> None:
        s = self.settings
        keyring = load_keyring(s.api_keys, s.data_dir)
        if not len(keyring):
            raise ConfigurationError(
                "no API key: set STELLA_API_KEYS, or run `stella up`, which makes one"
            )
        secret = platform_secret(s.data_dir)
        self.bus = await Bus.connect(s, self.name)
        await self.bus.ensure_streams(s.events_max_age_days, s.stream_replicas)
        calls = Leases(
            self.bus.js,
            await open_bucket(self.bus.js, s.lease_ttl_s, s.stream_replicas),
            subjects.GATEWAY_ROLE,
            s.instance,
            s.lease_ttl_s,
        )
        sessions = LiveSessions(
            self.bus, Limits(s.idle_timeout_s, s.max_duration_s, s.disconnect_grace_s), calls
        )
        sessions.start()
        livekit = None
        if s.livekit_enabled:
            livekit = LiveKitBridge(
                self.bus,
                sessions,
                LiveKitConfig(s.livekit_url, s.livekit_api_key, s.livekit_api_secret),
            )
        self.gateway = Gateway(
            bus=self.bus,
            secret=secret,
            keyring=keyring,
            sessions=sessions,
            records=Records(s.history_addr, secret),
            peers=WebRtcPeers(self.bus, sessions, s.webrtc_host_list()),
            livekit=livekit,
            media_token_ttl_s=s.media_token_ttl_s,
            public_url=s.public_url,
            max_body_bytes=s.max_body_bytes,
        )
        config = uvicorn.Config(
            create_app(self.gateway),
            host=s.host,
            port=s.port,
            lifespan="off",
            log_level=s.log_level.lower(),
            access_log=False,
            timeout_graceful_shutdown=3,
            ws_max_size=1 << 20,
        )
        self._status_subs = await answer_status(self.bus.nc, self.name, self.status)
        self._server = _Server(config)
        self._serving = asyncio.create_task(self._server.serve(), name="uvicorn")
        while not self._server.started:
            if self._serving.done():
                exc = self._serving.exception()
                raise ConfigurationError(f"cannot serve on {s.host}:{s.port}: {exc or 'exited'}")
            await asyncio.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = s.public_url or f"http://{s.host}:{port}"
        print(f"{URL_LINE} {self.url}", flush=True)
        log.info("gateway at %s (playground at %s/)", self.url, self.url)

    def status(self) -> ServiceStatus:
        """Running sessions, their clients (as tasks) and their two subscriptions each."""
        assert self.bus is not None and self.gateway is not None
        live = self.gateway.sessions.sessions.values()
        return status_of(
            self.bus.nc,
            self.name,
            self.settings.instance,
            sessions=[s.session_id for s in live],
            tasks=sum(len(s.sinks) for s in live) + len(self.gateway.peers.peers),
            subscriptions=sum(len(s.subscriptions) for s in live),
        )

    async def stop(self) -> None:
        for sub in self._status_subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if self.gateway is not None:
            await self.gateway.sessions.close()
            await self.gateway.peers.close()
            if self.gateway.livekit is not None:
                await self.gateway.livekit.close()
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await asyncio.gather(self._serving, return_exceptions=True)
        if self.gateway is not None:
            await self.gateway.records.close()
        if self.bus is not None:
            await self.bus.close()
