"""Reading a YAML file while keeping where each value was written, for errors by line.

PyYAML's composer gives the node tree with marks; values are built from it here so that
every path (``agents[0].resources``) maps to its line, and a key written twice is an error
instead of the silent last-one-wins of ``yaml.safe_load``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

PathPart = str | int
Path = tuple[PathPart, ...]

MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the file: where, which field, what."""

    line: int  # 1-based; 0 when the file itself is the problem
    path: Path
    message: str

    def render(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        field_name = format_path(self.path)
        return (
            f"{where}: {field_name}: {self.message}" if field_name else f"{where}: {self.message}"
        )


class ConfigError(ValueError):
    """Everything wrong with one file, each problem with its line and field."""

    def __init__(self, filename: str, problems: list[Problem]) -> None:
        self.filename = filename
        self.problems = sorted(problems, key=lambda p: (p.line, format_path(p.path)))
        super().__init__("\n".join(p.render(filename) for p in self.problems))


def format_path(path: Path) -> str:
    """``("agents", 0, "resources")`` → ``agents[0].resources``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass
class Located:
    """The file's data, and the line each path was written on (its key's line)."""

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int:
        """The line of ``path``, or of its nearest written parent (a missing field's owner)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1


def load_located(text: str, filename: str) -> Located:
    """Parse one YAML document; a syntax error or a repeated key raises :class:`ConfigError`."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        reason = "; ".join(p for p in (exc.context, exc.problem) if p) or "not valid YAML"
        raise ConfigError(filename, [Problem(line, (), f"YAML syntax error: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(filename, [Problem(0, (), f"YAML syntax error: {exc}")]) from None
    if root is None:
        raise ConfigError(filename, [Problem(0, (), "the file is empty")])
    located = Located(data=None)
    problems: list[Problem] = []
    located.data = _build(root, (), located.lines, problems, SafeConstructor())
    if problems:
        raise ConfigError(filename, problems)
    return located


def _build(
    node: Node,
    path: Path,
    lines: dict[Path, int],
    problems: list[Problem],
    scalars: SafeConstructor,
) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, MappingNode):
        return _build_mapping(node, path, lines, problems, scalars)
    if isinstance(node, SequenceNode):
        return [
            _build(item, (*path, i), lines, problems, scalars) for i, item in enumerate(node.value)
        ]
    assert isinstance(node, ScalarNode)
    return scalars.construct_object(node, deep=True)


def _build_mapping(
    node: MappingNode,
    path: Path,
    lines: dict[Path, int],
    problems: list[Problem],
    scalars: SafeConstructor,
) -> dict[str, Any]:
    first_seen: dict[str, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG:
            continue
        line = key_node.start_mark.line + 1
        key = key_node.value if isinstance(key_node, ScalarNode) else None
        if not isinstance(key, str) or not key:
            problems.append(Problem(line, path, "a key must be a plain name"))
            continue
        if key in first_seen:
            problems.append(
                Problem(line, (*path, key), f"written twice (first on line {first_seen[key]})")
            )
        first_seen.setdefault(key, line)
    scalars.flatten_mapping(node)  # `<<: *anchor` merges, the mapping's own keys win
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        child = (*path, key)
        lines[child] = key_node.start_mark.line + 1  # a nested mapping starts below its key
        out[key] = _build(value_node, child, lines, problems, scalars)
    return out
