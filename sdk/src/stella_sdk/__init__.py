"""Write STELLA voice agents: subclass ``BaseAgent``, decorate tools with ``@tool``."""

from stella_contracts import ChatMessage
from stella_sdk.agent import BaseAgent, NotInSession
from stella_sdk.history import HistoryUnavailable
from stella_sdk.messages import AgentInput, AgentOutput, InputKind, OutputKind
from stella_sdk.pipeline import AudioPipeline, SpeechUnavailable
from stella_sdk.settings import AgentSettings
from stella_sdk.tool import Tool, ToolArgumentsError, ToolDefinitionError, tool

__version__ = "1.0.0"

__all__ = [
    "AgentInput",
    "AgentOutput",
    "AgentSettings",
    "AudioPipeline",
    "BaseAgent",
    "ChatMessage",
    "HistoryUnavailable",
    "InputKind",
    "NotInSession",
    "OutputKind",
    "SpeechUnavailable",
    "Tool",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "__version__",
    "tool",
]
