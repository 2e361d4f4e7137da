"""The agent-runner: hosts one ``BaseAgent`` class, one instance per session."""
