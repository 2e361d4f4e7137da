"""Fixtures that give tests the real components (see docs/testing.md)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from stella_services.runtime.bus import Bus
from stella_services.runtime.nats_server import LocalNats, answers_with_jetstream, free_port
from stella_services.runtime.settings import ServiceSettings
from tests.support.history import TEST_SECRET
from tests.support.processes import ServiceProcess


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """NATS_URL if it is set and answers with JetStream; else our own nats-server on loopback."""
    given = os.environ.get("NATS_URL")
    if given and asyncio.run(answers_with_jetstream(given)):
        yield given
        return
    store = tmp_path_factory.mktemp("nats")
    server = LocalNats(store_dir=store, log_file=store / "nats.log")
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def uid() -> str:
    """A short unique token for names that must not collide between tests."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    b = await Bus.connect(ServiceSettings(nats_url=nats_url, instance="test"), "test")
    await b.ensure_streams()
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
def recorder_env(nats_url: str, tmp_path: Path, uid: str) -> dict[str, str]:
    """Environment of a recorder with its own embedded ClickHouse, consumer and gRPC port."""
    return {
        "NATS_URL": nats_url,
        "STELLA_DATA_DIR": str(tmp_path / "data"),
        "STELLA_HISTORY_ADDR": f"127.0.0.1:{free_port()}",
        "STELLA_CONSUMER": f"recorder-{uid}",
        "STELLA_ACK_WAIT_S": "3",
        "CLICKHOUSE_URL": "",
        "STELLA_SECRET": TEST_SECRET,
        # tests end what they need ended; a service stopped at teardown need not wait long
        "STELLA_DRAIN_TIMEOUT_S": "2",
    }


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[[str, dict[str, str]], ServiceProcess]]:
    started: list[ServiceProcess] = []

    def start(name: str, env: dict[str, str]) -> ServiceProcess:
        proc = ServiceProcess(name, env, tmp_path / "logs").start()
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """``tests/netns`` runs only inside a private network namespace (docs/testing.md: WebRTC and
    the browser see nothing but loopback); ``test_private_network.py`` starts it there."""
    if collection_path.name == "netns" and os.environ.get("STELLA_NETNS") != "1":
        return True
    return None
