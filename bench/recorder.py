"""Recorder throughput (published → queryable) and GetChatHistory latency."""

from __future__ import annotations

import asyncio
import time

import grpc

from bench.figures import Figure, percentile
from bench.platform import BenchPlatform
from stella_contracts import AgentText, UserText
from stella_contracts.proto import history_pb2, history_pb2_grpc
from stella_services.runtime import tokens
from stella_services.runtime.bus import Bus
from stella_services.runtime.settings import ServiceSettings

EVENTS = 50_000
SESSIONS = 100
WINDOW = 2_000
HISTORY_CALLS = 1_000
AUTH: list[tuple[str, str]] = []  # admin token metadata, set by run()


def _count(stub: history_pb2_grpc.HistoryServiceStub, where: str) -> int:
    reply = stub.Query(
        history_pb2.QueryRequest(sql=f"SELECT count() FROM stella.events WHERE {where}"),
        timeout=30,
        metadata=AUTH,
    )
    return int(reply.rows[0].values[0].number_value)


async def _publish(bus: Bus, prefix: str) -> tuple[int, float]:
    """Publish EVENTS pre-serialised envelopes; returns (count, seconds until the last ack)."""
    bodies = [
        (e.subject, e.to_json(), {"Nats-Msg-Id": str(e.id)})
        for e in (
            bus.wrap(f"{prefix}-{i % SESSIONS}", UserText(text=f"event {i} " + "x" * 80))
            for i in range(EVENTS)
        )
    ]
    start = time.perf_counter()
    for i in range(0, EVENTS, WINDOW):
        futures = [
            await bus.js.publish_async(s, b, headers=h) for s, b, h in bodies[i : i + WINDOW]
        ]
        await asyncio.gather(*futures)
    return len(bodies), time.perf_counter() - start


async def _wait_stored(
    stub: history_pb2_grpc.HistoryServiceStub, prefix: str, start: float
) -> float:
    while _count(stub, f"startsWith(session_id, '{prefix}-')") < EVENTS:
        if time.perf_counter() - start > 300:
            break
        await asyncio.sleep(0.02)
    return time.perf_counter() - start


def _distinct(stub: history_pb2_grpc.HistoryServiceStub, prefix: str) -> float:
    sql = f"SELECT uniqExact(id) FROM stella.events WHERE startsWith(session_id, '{prefix}-')"
    reply = stub.Query(history_pb2.QueryRequest(sql=sql), timeout=30, metadata=AUTH)
    return reply.rows[0].values[0].number_value


async def _backlog(
    platform: BenchPlatform,
) -> tuple[list[Figure], history_pb2_grpc.HistoryServiceStub]:
    bus = await Bus.connect(ServiceSettings(nats_url=platform.nats_url), "bench")
    await bus.ensure_streams()
    await _publish(bus, "backlog")
    await bus.close()
    platform.start("recorder")
    start = time.perf_counter()
    channel = grpc.insecure_channel(platform.env["STELLA_HISTORY_ADDR"])
    stub = history_pb2_grpc.HistoryServiceStub(channel)
    took = await _wait_stored(stub, "backlog", start)
    method = (
        f"{EVENTS:,} envelopes ({SESSIONS} sessions) waiting in JetStream; the recorder "
        "process starts and drains them into embedded ClickHouse; clock from its ready "
        "line to count() = all"
    )
    return [
        Figure(
            "recorder ingest, stream → queryable", EVENTS / took, "events/s", method, "≥ 20,000"
        ),
        Figure(
            "  stored exactly once (backlog)",
            _distinct(stub, "backlog"),
            f"of {EVENTS:,}",
            "uniqExact(id) after the run",
            f"{EVENTS:,}",
        ),
    ], stub


async def _live(platform: BenchPlatform, stub: history_pb2_grpc.HistoryServiceStub) -> list[Figure]:
    bus = await Bus.connect(ServiceSettings(nats_url=platform.nats_url), "bench")
    start = time.perf_counter()
    _, published = await _publish(bus, "live")
    took = await _wait_stored(stub, "live", start)
    await bus.close()
    method = (
        f"{EVENTS:,} pre-serialised envelopes published (async, windows of {WINDOW:,}) "
        "by one client process while the recorder ingests, all on the same 2 cores; clock "
        "from the first publish to count() = all"
    )
    return [
        Figure(
            "recorder end to end, published → queryable",
            EVENTS / took,
            "events/s",
            method,
            "≥ 20,000",
        ),
        Figure(
            "  stored exactly once (live)",
            _distinct(stub, "live"),
            f"of {EVENTS:,}",
            "uniqExact(id) after the run",
            f"{EVENTS:,}",
        ),
        Figure(
            "  publisher alone, into JetStream (acked)",
            EVENTS / published,
            "events/s",
            "same run, first publish to last JetStream ack",
        ),
    ]


async def _history_latency(
    platform: BenchPlatform, stub: history_pb2_grpc.HistoryServiceStub
) -> list[Figure]:
    bus = await Bus.connect(ServiceSettings(nats_url=platform.nats_url), "bench")
    sid = "hist-500"
    futures = []
    for i in range(500):
        event = UserText(text=f"question {i}") if i % 2 == 0 else AgentText(text=f"answer {i}")
        futures.append(await bus.publish_nowait(bus.wrap(sid, event)))
    await asyncio.gather(*futures)
    await bus.close()
    while _count(stub, f"session_id = '{sid}'") < 500:
        await asyncio.sleep(0.05)
    request = history_pb2.GetChatHistoryRequest(session_id=sid, limit=500)
    for _ in range(50):  # warm up
        stub.GetChatHistory(request, timeout=10, metadata=AUTH)
    samples = []
    for _ in range(HISTORY_CALLS):
        t = time.perf_counter()
        reply = stub.GetChatHistory(request, timeout=10, metadata=AUTH)
        samples.append((time.perf_counter() - t) * 1000)
        assert len(reply.messages) == 500
    method = (
        f"{HISTORY_CALLS:,} sequential GetChatHistory(limit=500) calls over gRPC on "
        "loopback for a 500-message session, client-measured"
    )
    return [
        Figure("GetChatHistory p50, 500 messages", percentile(samples, 50), "ms", method),
        Figure("GetChatHistory p99, 500 messages", percentile(samples, 99), "ms", method, "≤ 20"),
    ]


def run(platform: BenchPlatform) -> list[Figure]:
    token = tokens.mint(platform.env["STELLA_SECRET"], "bench", tokens.Scope.ADMIN, 3600)
    AUTH[:] = [("authorization", f"Bearer {token}")]
    figures, stub = asyncio.run(_backlog(platform))
    figures += asyncio.run(_live(platform, stub))
    figures += asyncio.run(_history_latency(platform, stub))
    return figures
