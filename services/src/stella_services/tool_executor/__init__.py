"""The tool-executor: runs an agent's ``@tool`` functions by name, with deadlines."""
