"""Load YAML safely while remembering the line of every key path.

Errors must name file, line and key path; PyYAML's node graph carries the
marks, so we build plain data from the nodes ourselves (safe constructor only:
scenario files are data, never code). Files and ``--set`` values take this one
path, with the same guards: a tag allow-list, a nesting limit (checked while
composing, before PyYAML's recursion can overflow), and a budget on how much
data aliases and merges may expand to.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from chaos.errors import ScenarioError, SyntaxProblem

Path = tuple[str | int, ...]

MAX_DEPTH = 50  # levels of nesting below the top of the document
MAX_VALUES = 20_000  # a billion-laughs alias bomb stops here, long before memory runs out
MAX_TEXT = 8 << 20  # characters of scalar text after aliases are expanded
MAX_FILE_BYTES = 2 << 20  # scenario files above this are refused before parsing
TOO_BIG = (f"the document holds more than {MAX_VALUES} values or {MAX_TEXT >> 20} MB of text "
           "once YAML aliases and merges are expanded")

_KEY_TAGS = frozenset(f"tag:yaml.org,2002:{name}"
                      for name in ("str", "int", "float", "bool", "timestamp"))
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_MERGE = "tag:yaml.org,2002:merge"
_DATA_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")
)


def _quoted(key: str) -> str:
    """JSON-quoted, with every character that could break the line escaped (U+0085, U+2028...)."""
    text = json.dumps(key, ensure_ascii=False)
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in text)


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, str) and len(part) > 80:  # a 5000-character key stays readable
            part = part[:80] + "..."
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(str(part)):  # match(): "$" would let a last "\n" through
            out += ("." if out else "") + str(part)
        else:  # empty, spaces, dots, newlines: quoted so the path stays one readable token
            out += "[" + _quoted(str(part)) + "]"
    return out


def override_key(key: str) -> str:
    """The KEY of a --set as one short printable token (never the value: it may be secret)."""
    text = format_path(tuple(key.strip().split(".")))
    return text if len(text) <= 120 else text[:120] + "..."


@dataclass(frozen=True)
class Source:
    """Where YAML text came from: a file, or the value of one ``--set KEY=...``."""

    file: str
    override: str | None = None  # the KEY of the --set, never its value (it may be a secret)

    def error(self, message: str, line: int | None, path: Path) -> ScenarioError:
        if self.override is not None:
            return ScenarioError(f"{message} (value given by --set {override_key(self.override)})",
                                 "--set",
                                 None, format_path(path))
        return ScenarioError(message, self.file, line, format_path(path))


class MarkedDocument:
    """Plain data plus a map from key path to 1-based line number."""

    def __init__(self, data: Any, lines: dict[Path, int], file: str) -> None:
        self.data = data
        self.lines = lines
        self.file = file
        self.overrides: dict[Path, str] = {}  # key path set by --set -> the --set text
        self.budget = Budget()

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
            return Source("--set", item.partition("=")[0]).error(message, None, path)
        return ScenarioError(message, self.file, self.line_of(path), format_path(path))


class Budget:
    """Values built and scalar characters produced, over a file and all its overrides."""

    def __init__(self) -> None:
        self.values = 0
        self.text = 0

    def spend(self, node: Node, source: Source, path: Path) -> None:
        self.values += 1
        if isinstance(node, ScalarNode):
            self.text += len(node.value)
        if self.values > MAX_VALUES or self.text > MAX_TEXT:
            raise source.error(TOO_BIG, _line(node), path)


def _short(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:60] + "...")


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _Loader(yaml.SafeLoader):
    """PyYAML's composer recurses once per level: count the levels and stop at the limit,
    so that ``[[[[...]]]]`` a thousand deep is a clear error, not a RecursionError."""

    def __init__(self, text: str, source: Source, start: Path) -> None:
        super().__init__(text)
        self.source = source
        self.path: list[str | int] = list(start)
        self.nodes = 0  # nodes in the text (aliases add none): PyYAML holds them all at once

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        step: str | int | None = None
        if isinstance(index, ScalarNode):
            step = index.value
        elif isinstance(index, int) and not isinstance(index, bool):
            step = index
        if step is not None:
            self.path.append(step)
        try:
            self.nodes += 1
            if len(self.path) > MAX_DEPTH or self.nodes > MAX_VALUES:
                line = int(self.peek_event().start_mark.line) + 1
                problem = (f"nesting is too deep (more than {MAX_DEPTH} levels)"
                           if len(self.path) > MAX_DEPTH else TOO_BIG)
                raise self.source.error(problem, line, tuple(self.path))
            return super().compose_node(parent, index)
        finally:
            if step is not None:
                self.path.pop()


def compose(text: str, source: Source, start: Path = ()) -> Node | None:
    """Text -> one YAML node graph, or a ScenarioError naming the line."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text, source, start)  # the reader checks characters here already
        return loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        position = getattr(exc, "position", None)  # ReaderError: a character YAML refuses
        if line is None and isinstance(position, int):
            line = text.count("\n", 0, position) + 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SyntaxProblem(f"not valid YAML: {problem}", source.file, line or 1) from None
    finally:
        if loader is not None:
            loader.dispose()


def load_marked(text: str, file: str) -> MarkedDocument:
    source = Source(file)
    node = compose(text, source)
    if node is None:
        raise ScenarioError("the file is empty; expected a mapping with name, services, ...", file, 1)
    lines: dict[Path, int] = {}
    doc = MarkedDocument(None, lines, file)
    doc.data = Builder(source, lines, doc.budget).build(node, (), 0)
    return doc


def load_value(text: str, key: str, path: Path, budget: Budget) -> Any:
    """The value of ``--set KEY=TEXT``, placed at path: the file's guards, depth counted from
    path. Text that is not YAML at all stays text (``--set x=a: b: c``)."""
    source = Source("--set", key)
    try:
        node = compose(text, source, path)
    except SyntaxProblem:
        budget.text += len(text)
        return text
    if node is None:
        return None
    return Builder(source, {}, budget).build(node, path, len(path))


class Builder:
    """Node graph -> plain data, recording lines, enforcing tags, depth and the budget."""

    def __init__(self, source: Source, lines: dict[Path, int], budget: Budget) -> None:
        self.source = source
        self.lines = lines
        self.budget = budget
        self.ctor = SafeConstructor()

    def fail(self, message: str, node: Node, path: Path) -> ScenarioError:
        return self.source.error(message, _line(node), path)

    def build(self, node: Node, path: Path, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(f"nesting is too deep (more than {MAX_DEPTH} levels)", node, path)
        self.lines.setdefault(path, _line(node))
        self.budget.spend(node, self.source, path)
        if node.tag not in _DATA_TAGS:
            raise self.fail(f"the YAML tag {_short(node.tag)} is not allowed: scenario files are data",
                            node, path)
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: MappingNode, path: Path, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merges.append(value_node)
                continue
            key = self._key(key_node, path)
            child = (*path, key)
            if key in result:
                raise self.fail(f"duplicate key {_short(key)}", key_node, child)
            self.lines[child] = _line(key_node)
            result[key] = self.build(value_node, child, depth + 1)
        for merge in merges:  # `<<: *base`: keys written here win, then earlier merges
            for source in self._merge_sources(merge, path):
                built = self.build(source, path, depth + 1)
                for key, value in built.items():
                    result.setdefault(key, value)
        return result

    def _merge_sources(self, node: Node, path: Path) -> list[Node]:
        items = node.value if isinstance(node, SequenceNode) else [node]
        if not all(isinstance(item, MappingNode) for item in items):
            raise self.fail("a merge (<<) takes a mapping or a list of mappings", node, path)
        return list(items)

    def _key(self, node: Node, path: Path) -> str:
        """A key is the name as written: `on:` stays 'on' (YAML 1.1 would make it True)."""
        if not isinstance(node, ScalarNode) or node.tag not in _KEY_TAGS:
            raise self.fail("mapping keys must be plain names", node, path)
        return str(node.value)

    def _scalar(self, node: Node) -> Any:
        if node.tag == "tag:yaml.org,2002:timestamp":
            return node.value  # a date stays text: scenario values end up in JSON and env vars
        try:
            return self.ctor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            return node.value


def line_of_key(text: str, key: str) -> int | None:
    """The line of a key path such as ``witness.use`` or ``phases[1].faults[0]`` in YAML
    text, for errors found once the run knew its environment (None: not in the text)."""
    path: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", key):
        path.append(int(index) if index else name)
    try:
        doc = load_marked(text, "<scenario>")
    except ScenarioError:
        return None
    return doc.line_of(tuple(path)) if path else None
