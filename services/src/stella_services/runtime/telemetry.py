"""OpenTelemetry set-up and the W3C trace context carried in every envelope.

The exporter is chosen by the standard ``OTEL_TRACES_EXPORTER`` variable (``none`` by
default, ``console``, or ``otlp`` with the ``otlp`` extra). A tracer provider is always
installed so every envelope gets a real ``traceparent`` even when nothing is exported.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from stella_sdk.bus import current_traceparent

__all__ = [
    "continue_trace",
    "current_traceparent",
    "setup_telemetry",
    "shutdown_telemetry",
    "tracer",
]

_propagator = TraceContextTextMapPropagator()
_configured = False


class TelemetryConfigError(RuntimeError):
    pass


def _exporter(name: str) -> SpanExporter | None:
    if name in ("", "none"):
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise TelemetryConfigError(
                "OTEL_TRACES_EXPORTER=otlp needs the 'otlp' extra: "
                "pip install 'stella-services[otlp]'"
            ) from exc
        return OTLPSpanExporter()
    raise TelemetryConfigError(
        f"OTEL_TRACES_EXPORTER={name!r} is not supported (none|console|otlp)"
    )


class TelemetrySettings(BaseSettings):
    """The standard OpenTelemetry variables STELLA reads itself (no STELLA_ prefix)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    otel_service_name: str = Field(
        default="", validation_alias="OTEL_SERVICE_NAME", description="default stella-<service>"
    )
    otel_traces_exporter: str = Field(
        default="none", validation_alias="OTEL_TRACES_EXPORTER", description="none, console, otlp"
    )


def setup_telemetry(service: str, instance: str) -> None:
    global _configured
    if _configured:
        return
    settings = TelemetrySettings()
    resource = Resource.create(
        {
            "service.name": settings.otel_service_name or f"stella-{service}",
            "service.instance.id": instance,
        }
    )
    provider = TracerProvider(resource=resource)
    exporter = _exporter(settings.otel_traces_exporter.strip().lower())
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True


def shutdown_telemetry() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


@contextmanager
def continue_trace(traceparent: str | None) -> Iterator[None]:
    """Make ``traceparent`` (from a received envelope) the parent of spans in this block."""
    if not traceparent:
        yield
        return
    ctx = _propagator.extract({"traceparent": traceparent})
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)
