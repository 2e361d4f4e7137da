"""The recorder survives SIGKILL mid-stream: every event lands in ClickHouse exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from stella_contracts import AgentText, Envelope, UserText
from stella_services.runtime.bus import Bus
from tests.support.history import HistoryClient
from tests.support.processes import ServiceProcess
from tests.support.waiting import until

TOTAL = 10_000
SESSIONS = 100


def make_envelopes(bus: Bus, prefix: str) -> list[Envelope]:
    out = []
    for i in range(TOTAL):
        sid = f"{prefix}-{i % SESSIONS}"
        event = UserText(text=f"user says {i}") if i % 2 == 0 else AgentText(text=f"agent says {i}")
        out.append(bus.envelopes.wrap(sid, event))
    return out


async def publish_all(bus: Bus, envelopes: list[Envelope], progress: list[int]) -> None:
    for start in range(0, len(envelopes), 250):
        futures = [await bus.publish_nowait(e) for e in envelopes[start : start + 250]]
        await asyncio.gather(*futures)
        progress[0] = start + 250
        await asyncio.sleep(0.02)  # spread publishing so the crash lands mid-stream


async def test_sigkill_mid_stream_keeps_each_event_exactly_once(
    bus: Bus,
    recorder_env: dict[str, str],
    start_service: Callable[[str, dict[str, str]], ServiceProcess],
    uid: str,
) -> None:
    prefix = f"crash-{uid}"
    envelopes = make_envelopes(bus, prefix)
    recorder = start_service("recorder", recorder_env)
    history = HistoryClient(recorder_env["STELLA_HISTORY_ADDR"])
    count_sql = f"SELECT count() FROM stella.events WHERE startsWith(session_id, '{prefix}-')"

    progress = [0]
    publisher = asyncio.create_task(publish_all(bus, envelopes, progress))
    await until(lambda: progress[0] >= 3_000 or publisher.done(), "3,000 events published")
    recorded_before_kill = history.scalar(count_sql)
    recorder.kill()
    assert recorder.process is not None and recorder.process.returncode == -9
    await asyncio.sleep(0.3)  # publishing goes on while the recorder is down
    recorder.start()
    await publisher

    assert history.wait_for(count_sql, TOTAL, timeout=60) == TOTAL
    distinct = history.scalar(
        f"SELECT uniqExact(id) FROM stella.events WHERE startsWith(session_id, '{prefix}-')"
    )
    assert distinct == TOTAL
    # every published id is there (not just the right number of rows)
    expected = {str(e.id) for e in envelopes}
    reply = history.query(
        f"SELECT toString(id) FROM stella.events WHERE startsWith(session_id, '{prefix}-')",
        max_rows=TOTAL,
    )
    assert {r.values[0].string_value for r in reply.rows} == expected
    # 0 < recorded before the kill < TOTAL shows the crash really was mid-stream
    assert isinstance(recorded_before_kill, float) and 0 < recorded_before_kill < TOTAL
    # and each session's messages come back in publish order
    msgs = history.history(f"{prefix}-7", limit=500)
    assert [m.content for m in msgs] == [
        e.payload.text
        for e in envelopes
        if e.session_id == f"{prefix}-7"  # type: ignore[attr-defined]
    ]
    history.close()
