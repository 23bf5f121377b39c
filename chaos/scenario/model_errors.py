"""pydantic's validation errors as one ScenarioError naming file, line and key path.

Shared by scenario files (chaos/scenario/loader.py) and gateway profiles
(chaos/scenario/gateways.py): both are YAML read with line marks, validated by a model.
"""

from __future__ import annotations

import difflib
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from chaos.scenario.units import shown
from chaos.scenario.yaml_marks import MarkedDocument

M = TypeVar("M", bound=BaseModel)


def validate_model(doc: MarkedDocument, model: type[M]) -> M:
    """The document as ``model``, or the first problem (unknown keys first) at its line."""
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        path = _data_path(doc.data, first["loc"])
        message = _message(first)
        if first["type"] == "extra_forbidden":
            message += _suggestion(str(first["loc"][-1]), first["loc"][:-1], errors)
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise doc.error(path, message) from None


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """pydantic's loc contains union member names; keep only steps that exist in the data."""
    path: list[str | int] = []
    node = data
    for step in loc:
        if isinstance(node, dict) and isinstance(step, str) and (step in node or step == loc[-1]):
            path.append(step)
            node = node.get(step)
        elif isinstance(node, list) and isinstance(step, int):
            path.append(step)
            node = node[step] if step < len(node) else None
    return tuple(path)


def _suggestion(key: str, parent: tuple[Any, ...], errors: list[Any]) -> str:
    """'durration' next to a missing 'duration': say which key was probably meant."""
    missing = [str(e["loc"][-1]) for e in errors
               if e["type"] == "missing" and tuple(e["loc"][:-1]) == tuple(parent)]
    close = difflib.get_close_matches(key, missing, n=1, cutoff=0.6)
    return f" (did you mean {shown(close[0])}?)" if close else ""


def _message(error: Any) -> str:
    kind = error["type"]
    msg = str(error["msg"])
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return msg
