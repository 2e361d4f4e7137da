"""Running a service as a process: logging, telemetry, signals, clean shutdown."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import signal
import sys
from typing import Protocol

from stella_sdk.signals import start_unless_stopped, stop_on_signals
from stella_services.runtime import telemetry
from stella_services.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)

READY_LINE = "STELLA-READY"  # printed once a service is serving; `stella up` and tests wait for it


class Service(Protocol):
    name: str
    settings: ServiceSettings

    async def start(self) -> None:
        """Connect and begin serving; return once ready."""

    async def stop(self) -> None:
        """Finish in-flight work and release everything; called once."""


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


async def serve(service: Service) -> None:
    """Start ``service``, wait for SIGTERM/SIGINT, then stop it cleanly."""
    stop = stop_on_signals()
    telemetry.setup_telemetry(service.name, service.settings.instance)
    ready_file = service.settings.ready_file
    if ready_file is not None:  # a restarted container keeps its files: never look ready early
        ready_file.unlink(missing_ok=True)
    if not await start_unless_stopped(service.start(), stop):
        log.info("%s stopped before it was ready", service.name)
        telemetry.shutdown_telemetry()
        return
    bus = getattr(service, "bus", None)
    if bus is not None:  # subscriptions reach the server before anyone is told we are ready
        await bus.nc.flush()
    if ready_file is not None:  # before the line, so whoever reads the line finds the file
        ready_file.write_text(f"{service.name} {service.settings.instance}\n")
    print(f"{READY_LINE} {service.name} {service.settings.instance}", flush=True)
    try:
        await stop.wait()
        log.info("%s stopping", service.name)
    finally:
        if ready_file is not None:  # draining: probes see it at once
            ready_file.unlink(missing_ok=True)
        await service.stop()
        telemetry.shutdown_telemetry()
        log.info("%s stopped", service.name)


class ConfigurationError(Exception):
    """Raised at start for a setting that cannot work; the process exits 2 with the message."""


def run(service: Service) -> None:
    configure_logging(service.settings.log_level)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` dumps every thread's stack
    try:
        asyncio.run(serve(service))
    except ConfigurationError as exc:
        log.error("%s cannot start: %s", service.name, exc)
        raise SystemExit(2) from None
