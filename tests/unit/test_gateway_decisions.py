"""The gateway's pure decisions: session expiry, API keys, page cursors and SQL, ICE
candidates, frame cutting and the outgoing queue."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stella_contracts import EndReason
from stella_contracts.audio import FRAME_BYTES
from stella_services.gateway import keys, queries
from stella_services.gateway.candidates import host_addresses, keep_candidates
from stella_services.gateway.errors import validation_message
from stella_services.gateway.expiry import Clock, Limits, end_reason
from stella_services.gateway.outbox import MAX_QUEUED_AUDIO, Outbox
from stella_services.gateway.uplink import FrameCutter

LIMITS = Limits(idle_timeout_s=60, max_duration_s=600, disconnect_grace_s=5)


@pytest.mark.parametrize(
    ("clock", "now", "expected"),
    [
        (Clock(0, 0, None), 59.9, None),
        (Clock(0, 0, None), 60, EndReason.IDLE_TIMEOUT),
        (Clock(0, 50, None), 100, None),
        (Clock(0, 599, None), 600, EndReason.MAX_DURATION),
        (Clock(0, 10, 10), 14.9, None),
        (Clock(0, 10, 10), 15, EndReason.CLIENT),
        (Clock(0, 0, 1), 700, EndReason.MAX_DURATION),  # the bound for good wins
    ],
)
def test_end_reason(clock: Clock, now: float, expected: EndReason | None) -> None:
    assert end_reason(clock, now, LIMITS) == expected


def test_keys_are_stored_hashed_and_checked(tmp_path: Path) -> None:
    key = keys.create_local_key(tmp_path)
    assert key is not None and key.startswith(keys.PREFIX) and len(key) > 40
    stored = (tmp_path / keys.KEY_FILE).read_text()
    assert key not in stored and keys.digest(key) in stored
    assert (tmp_path / keys.KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert keys.create_local_key(tmp_path) is None  # made once
    ring = keys.load_keyring("sk-env-one, sk-env-two", tmp_path)
    assert len(ring) == 3
    assert ring.accepts(key) and ring.accepts("sk-env-two")
    assert not ring.accepts("sk-env-three") and not ring.accepts("") and not ring.accepts(None)


def test_cursor_round_trip_and_garbage() -> None:
    cursor = queries.Cursor(datetime(2026, 11, 27, 7, 1, 2, 345678, tzinfo=UTC), "abc-123")
    assert queries.Cursor.decode(cursor.encode()) == cursor
    for bad in ("!!", "Zm9v", queries.Cursor.encode(cursor)[:-3] + "x'y"):
        with pytest.raises(queries.BadCursor):
            queries.Cursor.decode(bad)


def test_session_sql_only_embeds_validated_values() -> None:
    sql = queries.list_sessions_sql(
        10, queries.Cursor(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "s-1")
    )
    assert "LIMIT 11" in sql  # one more than asked: is there a next page?
    assert "toDateTime64('2026-01-02 03:04:05.000000', 6, 'UTC')" in sql
    assert "session_id < 's-1'" in sql
    with pytest.raises(ValueError):
        queries.session_sql("x' OR 1=1 --")
    with pytest.raises(ValueError):
        queries.list_sessions_sql(0, None)


SDP = "\r\n".join(
    [
        "v=0",
        "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
        "a=candidate:2 1 udp 2122260223 192.168.1.7 50001 typ host",
        "a=candidate:3 1 udp 2122260223 abcd-1234.local 50002 typ host",
        "a=candidate:4 1 udp 1686052607 203.0.113.9 50003 typ srflx raddr 0.0.0.0 rport 0",
        "a=candidate:5 1 udp 2122260223 ::1 50004 typ host",
        "a=end-of-candidates",
    ]
)


def test_only_allowed_candidates_stay() -> None:
    kept, dropped = keep_candidates(SDP, {"127.0.0.1"})
    assert dropped == 3
    assert "127.0.0.1 50000" in kept and "::1 50004" in kept  # loopback is loopback
    assert "192.168" not in kept and ".local" not in kept and "203.0.113.9" not in kept
    assert "a=end-of-candidates" in kept
    public, _ = keep_candidates(SDP, {"203.0.113.9"})
    assert "203.0.113.9" in public and "127.0.0.1" not in public


def test_host_addresses_follow_the_ip_versions_asked() -> None:
    allowed = ["127.0.0.1", "::1", "not-an-ip"]
    assert host_addresses(allowed, True, False) == ["127.0.0.1"]
    assert host_addresses(allowed, True, True) == ["127.0.0.1", "::1"]


def test_frame_cutter_makes_20ms_frames_on_the_audio_clock() -> None:
    cutter = FrameCutter(start_us=1_000_000)
    assert cutter.push(b"\x01" * 100) == []
    frames = cutter.push(b"\x02" * (FRAME_BYTES * 2))
    assert [f.seq for f in frames] == [0, 1]
    assert [f.ts_us for f in frames] == [1_000_000, 1_020_000]
    assert frames[0].pcm == b"\x01" * 100 + b"\x02" * (FRAME_BYTES - 100)
    assert cutter.pending_bytes == 100


async def test_outbox_drops_queued_audio_on_interrupt_and_keeps_text() -> None:
    box = Outbox()
    box.text("a")
    for _ in range(3):
        box.audio(b"x" * 4)
    box.text("b")
    assert box.flush_audio() == 3
    box.close()
    got = []
    while (item := await box.next()) is not None:
        got.append(item.text)
    assert got == ["a", "b"]


async def test_outbox_bounds_audio_for_a_slow_client() -> None:
    box = Outbox()
    for n in range(MAX_QUEUED_AUDIO + 10):
        box.audio(n.to_bytes(2, "big"))
    box.close()
    first = await asyncio.wait_for(box.next(), 1)
    assert first is not None and first.audio == (10).to_bytes(2, "big")  # the oldest went


def test_validation_message_names_the_field() -> None:
    message = validation_message(
        [
            {"loc": ["body", "agent"], "msg": "Field required"},
            {"loc": ["query", "limit"], "msg": "x"},
        ]
    )
    assert message == "body.agent: Field required; query.limit: x"


async def test_agent_voice_track_plays_queued_frames_then_silence_and_flushes() -> None:
    from stella_services.gateway.webrtc import AgentVoiceTrack

    track = AgentVoiceTrack()
    for n in range(1, 4):
        track.push(bytes([n, 0]) * 320)
    first = await track.recv()
    assert bytes(first.planes[0])[:2] == b"\x01\x00" and first.sample_rate == 16_000
    assert first.samples == 320 and first.pts == 0
    assert track.flush() == 2  # barge-in: what was queued goes
    after = await track.recv()
    assert bytes(after.planes[0])[:640] == b"\x00" * 640 and after.pts == 320
    track.stop()
