"""The services ``stella serve`` and ``stella up`` know, imported only when started."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from stella_services.runtime.lifecycle import Service


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    target: str  # "module:Class"
    summary: str

    def create(self) -> Service:
        module_name, cls_name = self.target.split(":")
        cls = getattr(importlib.import_module(module_name), cls_name)
        service: Service = cls()
        return service


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec(
            "recorder",
            "stella_services.recorder.service:RecorderService",
            "every session event into ClickHouse; chat history and analytics over gRPC",
        ),
        ServiceSpec(
            "gateway",
            "stella_services.gateway.service:GatewayService",
            "REST sessions API, WebSocket/WebRTC audio, LiveKit bridge and the web playground",
        ),
        ServiceSpec(
            "stt",
            "stella_services.stt.service:SttService",
            "voice activity and speech recognition per session (audio.in → stt.* events)",
        ),
        ServiceSpec(
            "tts",
            "stella_services.tts.service:TtsService",
            "speech synthesis: tts.request → paced 16 kHz frames on audio.out",
        ),
        ServiceSpec(
            "tool-executor",
            "stella_services.tool_executor.service:ToolExecutorService",
            "runs the @tool functions of STELLA_TOOL_MODULES by name, with deadlines",
        ),
        ServiceSpec(
            "agent-runner",
            "stella_services.agent_runner.service:AgentRunnerService",
            "hosts the BaseAgent class of STELLA_AGENT, one instance per session",
        ),
        ServiceSpec(
            "llm",
            "stella_services.llm.service:LlmService",
            "OpenAI-compatible /v1/chat/completions (streaming, tools) over a local model",
        ),
    )
}


class UnknownService(KeyError):
    def __str__(self) -> str:
        return f"unknown service {self.args[0]!r}; known: {', '.join(sorted(SERVICES))}"


def get(name: str) -> ServiceSpec:
    try:
        return SERVICES[name]
    except KeyError:
        raise UnknownService(name) from None
