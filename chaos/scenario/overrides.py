"""``--set KEY.PATH=VALUE``: one value changed before validation, through the file's guards.

The value is parsed by the same loader as the file (tag allow-list, nesting limit counted
from where the value lands, dates kept as text, one expansion budget for file and
overrides), so a value is never more trusted than a line of the file.
"""

from __future__ import annotations

import re
from typing import Any

from chaos.errors import ScenarioError
from chaos.scenario.units import shown
from chaos.scenario.yaml_marks import MAX_DEPTH, MarkedDocument, Path, load_value, override_key

_NAMED_COLLECTIONS = ("services", "proxies")
_INDEX = re.compile(r"[0-9]{1,9}")  # ASCII digits only: '²'.isdigit() is True
def apply_override(doc: MarkedDocument, item: str) -> None:
    """Set one value: ``services.gateway.env.GATEWAY_RETRIES=off`` (value parsed as YAML)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ScenarioError(f"--set expects KEY.PATH=VALUE, got {shown(item)}", "--set")
    parts = key.split(".")
    if len(parts) > MAX_DEPTH:
        raise ScenarioError(f"the key path is too deep (more than {MAX_DEPTH} levels)",
                            "--set", None, override_key(key))
    parent, step, path = _walk(doc.data, parts, override_key(key))
    value = load_value(raw, key, path, doc.budget) if raw.strip() else ""
    parent[step] = value
    doc.overrides[path] = item


def _walk(data: Any, parts: list[str], key: str) -> tuple[Any, Any, Path]:
    """The container that receives the value, the step into it, and the full key path."""
    path: Path = ()
    node = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = override_key(".".join(parts[:i])) if i else "the file"
        if isinstance(node, list):
            if not _INDEX.fullmatch(part) or int(part) >= len(node):
                raise ScenarioError(f"no list item {shown(part)} in {where}", "--set", None, key)
            step: str | int = int(part)
        elif isinstance(node, dict):
            if part not in node and len(path) == 1 and path[0] in _NAMED_COLLECTIONS:
                known = ", ".join(sorted(node)) or "none"
                raise ScenarioError(f"no {path[0]} named {shown(part)} (known: {known})",
                                    "--set", None, key)
            step = part
            if not last and part not in node:
                node[part] = {}
        else:
            raise ScenarioError(f"cannot set below a plain value ({where})", "--set", None, key)
        path = (*path, step)
        if last:
            return node, step, path
        node = node[step]
    raise AssertionError("unreachable: parts is never empty")
