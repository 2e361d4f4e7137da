"""Running a session-holding process (a service, an agent host): start unless stopped,
say when ready (a line and a ready file), serve until SIGTERM/SIGINT, then stop cleanly."""

from __future__ import annotations

import logging
from typing import Protocol

from stella_sdk.runtime.settings import RuntimeSettings
from stella_sdk.runtime.signals import (
    dump_tasks_on_sigusr2,
    start_unless_stopped,
    stop_on_signals,
)

log = logging.getLogger(__name__)

READY_LINE = "STELLA-READY"  # printed once serving; `stella up` and tests wait for it


class Servable(Protocol):
    name: str

    @property
    def settings(self) -> RuntimeSettings: ...

    async def start(self) -> None:
        """Connect and begin serving; return once ready."""

    async def stop(self) -> None:
        """Drain, finish in-flight work and release everything; called once."""


async def serve(process: Servable, label: str = "") -> None:
    """Start ``process`` (a SIGTERM while it waits for NATS ends it at once), print
    ``STELLA-READY <label>``, wait for SIGTERM/SIGINT, then stop it.

    ``label`` defaults to ``<name> <instance>``."""
    stop = stop_on_signals()
    dump_tasks_on_sigusr2()
    label = label or f"{process.name} {process.settings.instance}"
    ready_file = process.settings.ready_file
    if ready_file is not None:  # a restarted container keeps its files: never look ready early
        ready_file.unlink(missing_ok=True)
    if not await start_unless_stopped(process.start(), stop):
        log.info("%s stopped before it was ready", process.name)
        return
    bus = getattr(process, "bus", None)
    if bus is not None:  # subscriptions reach the server before anyone is told we are ready
        await bus.nc.flush()
    if ready_file is not None:  # before the line, so whoever reads the line finds the file
        ready_file.write_text(f"{label}\n")
    print(f"{READY_LINE} {label}", flush=True)
    try:
        await stop.wait()
        log.info("%s stopping", process.name)
    finally:
        if ready_file is not None:  # draining takes nothing new: probes see it at once
            ready_file.unlink(missing_ok=True)
        await process.stop()
        log.info("%s stopped", process.name)
