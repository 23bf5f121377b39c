"""Load YAML safely while remembering the line of every key path.

Errors must name file, line and key path; PyYAML's node graph carries the
marks, so we build plain data from the nodes ourselves (safe constructor only:
scenario files are data, never code).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from chaos.errors import ScenarioError

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class MarkedDocument:
    """Plain data plus a map from key path to 1-based line number."""

    def __init__(self, data: Any, lines: dict[Path, int], file: str) -> None:
        self.data = data
        self.lines = lines
        self.file = file

    def line_of(self, path: Path) -> int | None:
        """Line of the deepest prefix of path that exists in the file."""
        for cut in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:cut]))
            if line is not None:
                return line
        return None

    def error(self, path: Path, message: str) -> ScenarioError:
        return ScenarioError(message, self.file, self.line_of(path), format_path(path))


def load_marked(text: str, file: str) -> MarkedDocument:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"not valid YAML: {problem}", file, line) from None
    if node is None:
        raise ScenarioError("the file is empty; expected a mapping with name, services, ...", file, 1)
    lines: dict[Path, int] = {}
    data = _build(node, (), lines, file, SafeConstructor(), depth=0)
    return MarkedDocument(data, lines, file)


def _build(node: Node, path: Path, lines: dict[Path, int], file: str,
           ctor: SafeConstructor, depth: int) -> Any:
    if depth > 50:
        raise ScenarioError("nesting is too deep (more than 50 levels)", file,
                            node.start_mark.line + 1, format_path(path))
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, MappingNode):
        ctor.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, ctor)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise ScenarioError("mapping keys must be plain names", file,
                                    key_node.start_mark.line + 1, format_path(path))
            key = str(key)
            child = (*path, key)
            if key in result:
                raise ScenarioError(f"duplicate key {key!r}", file,
                                    key_node.start_mark.line + 1, format_path(child))
            lines[child] = key_node.start_mark.line + 1
            result[key] = _build(value_node, child, lines, file, ctor, depth + 1)
        return result
    if isinstance(node, SequenceNode):
        return [_build(item, (*path, i), lines, file, ctor, depth + 1)
                for i, item in enumerate(node.value)]
    return _scalar(node, ctor)


def _scalar(node: Node, ctor: SafeConstructor) -> Any:
    if not isinstance(node, ScalarNode):
        return None
    try:
        return ctor.construct_object(node, deep=True)
    except yaml.YAMLError:
        return node.value
