"""Reading a result.json someone hands us (`chaos report`, `chaos run --baseline`).

Such a file may be hand-edited, truncated, from another tool or hostile. Before any of it
is used it must be: at most MAX_BYTES, JSON without NaN/Infinity, nested at most MAX_DEPTH
deep, and valid against the result schema (chaos.report.schema), whose bounds are chosen so
that whatever passes, the renderers can draw. The first problem is named with its JSON path:
``reports/x/result.json: phases[0].start: expected number, got "x"``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from chaos.errors import ReportInputError

MAX_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 32  # result.json as written is at most 7 deep; evidence may grow a little


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    from chaos.report.schema import result_schema

    return jsonschema.Draft202012Validator(result_schema())


def _constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _parse(path: Path) -> Any:
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise ReportInputError(f"{path}: no such file") from exc
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if size > MAX_BYTES:
        raise ReportInputError(f"{path}: {size / 1e6:.0f} MB is larger than a result.json can be "
                               f"({MAX_BYTES // (1024 * 1024)} MiB)")
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=_constant)
    except RecursionError as exc:
        raise ReportInputError(f"{path}: nested deeper than a result.json can be") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ReportInputError(f"{path}: not a readable result.json: {exc}") from exc


def _too_deep(data: Any) -> bool:
    level: list[Any] = [data]
    for _ in range(MAX_DEPTH):
        level = [v for item in level if isinstance(item, (dict, list))
                 for v in (item.values() if isinstance(item, dict) else item)]
        if not level:
            return False
    return any(isinstance(item, (dict, list)) for item in level)


def json_path(parts: Any) -> str:
    """['phases', 0, 'start'] -> phases[0].start"""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(error: jsonschema.ValidationError) -> str:
    schema, kind = error.schema if isinstance(error.schema, dict) else {}, error.validator
    if kind == "type":
        expected = schema.get("type")
        names = " or ".join(expected) if isinstance(expected, list) else str(expected)
        return f"expected {names}, got {_shown(error.instance)}"
    if kind == "required":
        return error.message.replace("is a required property", "is missing")
    if kind == "additionalProperties":
        return f"unknown key: {error.message.split('(')[-1].rstrip(')')}"
    if kind in ("enum", "const"):
        allowed = schema.get("enum", [schema.get("const")])
        return f"expected one of {', '.join(map(_shown, allowed))}, got {_shown(error.instance)}"
    if kind in ("minimum", "maximum"):
        return f"{_shown(error.instance)} is out of range ({kind} {schema.get(kind):g})"
    return error.message if len(error.message) <= 200 else error.message[:197] + "..."


def read_result_data(path: Path) -> dict[str, Any]:
    """The parsed, schema-valid content of a result.json; ReportInputError otherwise."""
    from chaos.verdict.result import SCHEMA_VERSION

    data = _parse(path)
    if not isinstance(data, dict) or "scenario" not in data or "verdict" not in data:
        raise ReportInputError(f"{path}: not a gateway-chaos result.json")
    version = data.get("schema_version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ReportInputError(f"{path}: schema_version {version} is newer than this gateway-chaos "
                               f"understands ({SCHEMA_VERSION}); upgrade to render it")
    if _too_deep(data):
        raise ReportInputError(f"{path}: nested deeper than {MAX_DEPTH} levels; not a result.json")
    error = _first_error(data)
    if error is not None:
        raise ReportInputError(f"{path}: {json_path(error.absolute_path)}: {_describe(error)}")
    return data


def _first_error(data: dict[str, Any]) -> jsonschema.ValidationError | None:
    errors = sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return None
    best = jsonschema.exceptions.best_match(errors)
    return best if best is not None else errors[0]
