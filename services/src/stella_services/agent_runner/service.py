"""The agent-runner as a STELLA service: the SDK's host for the class in ``STELLA_AGENT``."""

from __future__ import annotations

from pydantic import Field

from stella_sdk import AgentSettings, BaseAgent
from stella_sdk.host import AgentHost
from stella_services.runtime.loading import LoadError, extend_path, load_object
from stella_services.runtime.settings import ServiceSettings


class AgentRunnerSettings(ServiceSettings):
    agent: str = Field(default="", description="the agent class, 'module:Class'")
    agent_path: str = Field(default="", description="folders to import the agent from")


def load_agent_class(spec: str, agent_path: str) -> type[BaseAgent]:
    if not spec:
        raise LoadError("set STELLA_AGENT to the agent class, e.g. src.agent:MyCustomAgent")
    extend_path(agent_path)
    cls = load_object(spec)
    if not (isinstance(cls, type) and issubclass(cls, BaseAgent)):
        raise LoadError(f"{spec!r} is not a BaseAgent subclass")
    return cls


class AgentRunnerService:
    name = "agent-runner"

    def __init__(self, settings: AgentRunnerSettings | None = None) -> None:
        self.settings = settings or AgentRunnerSettings()
        self.host: AgentHost | None = None

    async def start(self) -> None:
        agent_class = load_agent_class(self.settings.agent, self.settings.agent_path)
        self.host = AgentHost(agent_class, AgentSettings(instance=self.settings.instance))
        await self.host.start()

    async def stop(self) -> None:
        if self.host is not None:
            await self.host.stop()  # drains first
