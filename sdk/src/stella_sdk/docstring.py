"""Minimal Google-style docstring parsing for tool descriptions.

Only what ``@tool`` needs is extracted: the summary (first paragraph) and the
per-parameter descriptions of the ``Args:`` section. Every other section
(``Returns:``, ``Raises:``, ``Examples:`` ...) is recognised only so that it ends the
previous section and is otherwise ignored.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

__all__ = ["ArgDoc", "ParsedDocstring", "parse_docstring"]

# Section headers that introduce parameter descriptions.
_ARG_SECTIONS = frozenset(
    {
        "args",
        "arguments",
        "parameters",
        "params",
        "keyword args",
        "keyword arguments",
        "kwargs",
        "other parameters",
    }
)
# Headers we do not use; they must still be recognised so they terminate ``Args:``
# and so that a summary never swallows them.
_OTHER_SECTIONS = frozenset(
    {
        "returns",
        "return",
        "yields",
        "yield",
        "raises",
        "raise",
        "except",
        "exceptions",
        "example",
        "examples",
        "note",
        "notes",
        "warning",
        "warnings",
        "warns",
        "see also",
        "todo",
        "attributes",
        "methods",
        "references",
    }
)
_SECTION_RE = re.compile(r"^(?P<title>[A-Za-z][A-Za-z ]*?)\s*:\s*$")
# ``name: desc``, ``name (type): desc``, ``*args: desc``; the description may be empty
# when it starts on the following (indented) line.
_ENTRY_RE = re.compile(
    r"^(?P<name>\*{0,2}[A-Za-z_]\w*)\s*(?:\((?P<type>[^)]*)\))?\s*:(?:\s+(?P<desc>.*))?$"
)


@dataclass(frozen=True, slots=True)
class ArgDoc:
    """One entry of an ``Args:`` section."""

    name: str
    description: str
    type: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedDocstring:
    """The parts of a Google-style docstring that ``@tool`` uses."""

    summary: str = ""
    args: dict[str, ArgDoc] = field(default_factory=dict)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _section_kind(line: str) -> str | None:
    """Return ``"args"``/``"other"`` if *line* is a known section header, else None."""
    match = _SECTION_RE.match(line.strip())
    if match is None:
        return None
    title = match.group("title").lower()
    if title in _ARG_SECTIONS:
        return "args"
    if title in _OTHER_SECTIONS:
        return "other"
    return None


def _join(lines: list[str]) -> str:
    """Join wrapped lines with spaces; blank lines become paragraph breaks."""
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        text = line.strip()
        if text:
            paragraphs[-1].append(text)
        elif paragraphs[-1]:
            paragraphs.append([])
    return "\n\n".join(" ".join(p) for p in paragraphs if p)


def _parse_args(lines: list[str]) -> dict[str, ArgDoc]:
    """Parse the body of an ``Args:`` section (the lines after its header)."""
    entries: dict[str, ArgDoc] = {}
    entry_indent: int | None = None
    name: str | None = None
    type_: str | None = None
    desc: list[str] = []

    def flush() -> None:
        if name is not None:
            entries[name] = ArgDoc(name=name, description=_join(desc), type=type_)

    for line in lines:
        if not line.strip():
            desc.append("")
            continue
        indent = _indent(line)
        if entry_indent is None:
            # The first entry fixes the indentation of all entries of the section.
            entry_indent = indent
        match = _ENTRY_RE.match(line.strip()) if indent <= entry_indent else None
        if match is not None:
            flush()
            name = match.group("name").lstrip("*")
            type_ = (match.group("type") or "").strip() or None
            desc = [match.group("desc") or ""]
        elif name is not None:
            # Deeper-indented (or unparseable) line: continuation of the current entry.
            desc.append(line)
    flush()
    return entries


def parse_docstring(doc: str | None) -> ParsedDocstring:
    """Parse a Google-style docstring into its summary and ``Args:`` descriptions.

    Args:
        doc: The raw docstring (as found in ``__doc__``); None or empty gives an
            empty result.

    Returns:
        The summary (first paragraph, wrapped lines joined with spaces) and one
        ``ArgDoc`` per ``Args:`` entry, keyed by parameter name (stars stripped).
    """
    if not doc or not doc.strip():
        return ParsedDocstring()
    lines = inspect.cleandoc(doc).splitlines()

    summary_lines: list[str] = []
    for line in lines:
        if not line.strip() or _section_kind(line) is not None:
            break
        summary_lines.append(line)

    args: dict[str, ArgDoc] = {}
    i = 0
    while i < len(lines):
        kind = _section_kind(lines[i])
        if kind is None:
            i += 1
            continue
        # A section's body is every following line indented deeper than its header.
        # cleandoc cannot know the indentation of the docstring's first line, so a
        # header there ("""Args:) has its body at the same indentation; such a body
        # runs until the next section header instead.
        header_indent = _indent(lines[i]) if i > 0 else -1
        body: list[str] = []
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > header_indent):
            if header_indent < 0 and _section_kind(lines[i]) is not None:
                break
            body.append(lines[i])
            i += 1
        if kind == "args":
            args.update(_parse_args(body))

    return ParsedDocstring(summary=_join(summary_lines), args=args)
