"""Load YAML safely while remembering the line of every key path.

Errors must name file, line and key path; PyYAML's node graph carries the
marks, so we build plain data from the nodes ourselves (safe constructor only:
scenario files are data, never code).
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from chaos.errors import ScenarioError

Path = tuple[str | int, ...]


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _quoted(key: str) -> str:
    """JSON-quoted, with every character that could break the line escaped (U+0085, U+2028...)."""
    text = json.dumps(key, ensure_ascii=False)
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in text)


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(str(part)):
            out += ("." if out else "") + str(part)
        else:  # empty, spaces, dots, newlines: quoted so the path stays one readable token
            out += "[" + _quoted(str(part)) + "]"
    return out


class MarkedDocument:
    """Plain data plus a map from key path to 1-based line number."""

    def __init__(self, data: Any, lines: dict[Path, int], file: str) -> None:
        self.data = data
        self.lines = lines
        self.file = file
        self.overrides: dict[Path, str] = {}  # key path set by --set -> the --set text

    def override_for(self, path: Path) -> str | None:
        """The --set that put a value at (or above) path, if any."""
        for cut in range(len(path), 0, -1):
            item = self.overrides.get(tuple(path[:cut]))
            if item is not None:
                return item
        return None

    def line_of(self, path: Path) -> int | None:
        """Line of the deepest prefix of path that exists in the file."""
        for cut in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:cut]))
            if line is not None:
                return line
        return None

    def error(self, path: Path, message: str) -> ScenarioError:
        item = self.override_for(path)
        if item is not None:
            # the key only: the value may be a secret, or span lines
            key = item.partition("=")[0].strip()
            return ScenarioError(f"{message} (value given by --set {key})", "--set", None,
                                 format_path(path))
        return ScenarioError(message, self.file, self.line_of(path), format_path(path))


def load_marked(text: str, file: str) -> MarkedDocument:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        position = getattr(exc, "position", None)  # ReaderError: a character YAML refuses
        if line is None and isinstance(position, int):
            line = text.count("\n", 0, position) + 1
        if line is None:
            line = 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"not valid YAML: {problem}", file, line) from None
    if node is None:
        raise ScenarioError("the file is empty; expected a mapping with name, services, ...", file, 1)
    lines: dict[Path, int] = {}
    data = _build(node, (), lines, file, SafeConstructor(), depth=0)
    return MarkedDocument(data, lines, file)


MAX_VALUES = 100_000  # a billion-laughs alias bomb stops here, long before memory runs out
_DATA_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")
)


def _build(node: Node, path: Path, lines: dict[Path, int], file: str,
           ctor: SafeConstructor, depth: int) -> Any:
    if depth > 50:
        raise ScenarioError("nesting is too deep (more than 50 levels)", file,
                            node.start_mark.line + 1, format_path(path))
    lines.setdefault(path, node.start_mark.line + 1)
    if len(lines) > MAX_VALUES:
        raise ScenarioError(f"the file expands to more than {MAX_VALUES} values (YAML aliases?)",
                            file, node.start_mark.line + 1, format_path(path))
    if node.tag not in _DATA_TAGS:
        raise ScenarioError(f"the YAML tag {node.tag!r} is not allowed: scenario files are data",
                            file, node.start_mark.line + 1, format_path(path))
    if isinstance(node, MappingNode):
        try:
            ctor.flatten_mapping(node)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "cannot merge this mapping"
            raise ScenarioError(f"not valid YAML: {problem}", file, node.start_mark.line + 1,
                                format_path(path)) from None
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
    if node.tag == "tag:yaml.org,2002:timestamp":
        return node.value  # a date stays text: scenario values end up in JSON and env vars
    try:
        return ctor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError):
        return node.value
