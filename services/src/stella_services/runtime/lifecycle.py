"""Running a service as a process: logging, telemetry, then the runtime's ``serve``."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import signal
import sys

from stella_sdk.runtime.serving import READY_LINE, Servable
from stella_sdk.runtime.serving import serve as serve_process
from stella_services.runtime import telemetry

__all__ = ["READY_LINE", "ConfigurationError", "Service", "run", "serve"]

log = logging.getLogger(__name__)

Service = Servable


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


async def serve(service: Service) -> None:
    telemetry.setup_telemetry(service.name, service.settings.instance)
    try:
        await serve_process(service)
    finally:
        telemetry.shutdown_telemetry()


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
