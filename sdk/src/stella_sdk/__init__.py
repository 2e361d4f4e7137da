"""Write STELLA voice agents: subclass ``BaseAgent``, decorate tools with ``@tool``."""

from stella_sdk.tool import Tool, ToolArgumentsError, ToolDefinitionError, tool

__version__ = "1.0.0"

__all__ = ["Tool", "ToolArgumentsError", "ToolDefinitionError", "__version__", "tool"]
