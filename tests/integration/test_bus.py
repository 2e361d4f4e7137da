"""The runtime's bus against real NATS JetStream."""

from __future__ import annotations

from opentelemetry import trace

from stella_contracts import Envelope, UserText, subjects
from stella_services.runtime import telemetry
from stella_services.runtime.bus import Bus


async def test_streams_are_created_idempotently(bus: Bus) -> None:
    await bus.ensure_streams()
    await bus.ensure_streams(events_max_age_days=7)
    info = await bus.js.stream_info(subjects.EVENTS_STREAM)
    assert info.config.subjects == ["stella.session.>"]
    assert info.config.max_age == 7 * 86_400
    dl = await bus.js.stream_info(subjects.DEADLETTER_STREAM)
    assert dl.config.subjects == ["stella.deadletter.>"]
    await bus.ensure_streams()  # back to the default


async def test_republishing_an_envelope_is_stored_once(bus: Bus, uid: str) -> None:
    env = bus.wrap(f"dup-{uid}", UserText(text="once"))
    first = await bus.publish(env)
    again = await bus.publish(env)
    assert not first.duplicate and again.duplicate
    assert first.seq == again.seq
    sub = await bus.js.pull_subscribe(subjects.session_events(f"dup-{uid}"), stream="STELLA_EVENTS")
    msgs = await sub.fetch(10, timeout=1)
    assert len(msgs) == 1
    assert msgs[0].headers is not None and msgs[0].headers["Nats-Msg-Id"] == str(env.id)
    assert Envelope.from_json(msgs[0].data) == env
    await sub.unsubscribe()


async def test_envelopes_carry_the_active_trace(bus: Bus, uid: str) -> None:
    telemetry.setup_telemetry("test", "1")
    tracer = telemetry.tracer("test")
    with tracer.start_as_current_span("handle turn") as span:
        env = bus.wrap(f"tr-{uid}", UserText(text="hi"))
        trace_id = format(span.get_span_context().trace_id, "032x")
    assert env.trace is not None and env.trace.split("-")[1] == trace_id
    # a consumer continues the same trace from the envelope
    with telemetry.continue_trace(env.trace), tracer.start_as_current_span("consume") as child:
        assert format(child.get_span_context().trace_id, "032x") == trace_id
    # outside any span a new trace is started, never none
    lone = bus.wrap(f"tr-{uid}", UserText(text="alone"))
    assert lone.trace is not None and lone.trace.split("-")[1] != trace_id
    assert trace.get_current_span().get_span_context().is_valid is False
