"""Masking a scenario's YAML text with its structure in mind.

Line rules see ``MULTI_TOKEN: >-`` and hide ``>-``, while the folded value's own lines
below it go out as they are. Here the text is composed (PyYAML nodes carry their marks,
nothing is constructed, aliases are not expanded) and every scalar under a secret name,
or any multi-line scalar that holds a secret-shaped part, is replaced over its whole
character range. Newlines inside the range are kept, so line numbers stay true.
"""

from __future__ import annotations

from collections.abc import Callable

import yaml

from chaos.report.shapes import MASK, has_shape

Span = tuple[int, int]


def _value_spans(root: yaml.Node, secret_name: Callable[[str], bool]) -> list[Span]:
    spans: list[Span] = []
    seen: set[int] = set()
    todo: list[yaml.Node] = [root]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and secret_name(str(key.value)):
                    spans.append((value.start_mark.index, value.end_mark.index))
                else:
                    todo.append(value)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
        elif (isinstance(node, yaml.ScalarNode) and node.start_mark.line != node.end_mark.line
              and has_shape(str(node.value))):
            spans.append((node.start_mark.index, node.end_mark.index))
    return spans


def mask_yaml(text: str, secret_name: Callable[[str], bool]) -> str:
    """text with the values of secret names (and multi-line secret-shaped scalars) masked;
    text as it is when it is not YAML (the caller's line rules still apply)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError, ValueError):
        return text
    if root is None:
        return text
    spans = sorted(_value_spans(root, secret_name))
    out: list[str] = []
    position = 0
    for start, end in spans:
        if start < position or end <= start:  # inside a range already masked
            continue
        original = text[start:end]
        out.append(text[position:start])
        out.append(original if original.strip() in ("", MASK) else MASK + "\n" * original.count("\n"))
        position = end
    out.append(text[position:])
    return "".join(out)
