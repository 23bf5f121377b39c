"""The JSON Schema of result.json, generated from the Result dataclasses.

The committed copy is schemas/result.schema.json; a unit test fails when it drifts from
what this module generates. Regenerate with:

    .venv/bin/python -m chaos.report.schema > schemas/result.schema.json
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

from chaos.outcomes import OUTCOMES
from chaos.report import schema_parts as parts
from chaos.verdict import result as result_module
from chaos.verdict.baseline import BaselineCheck
from chaos.verdict.result import SCHEMA_VERSION, Result

SCHEMA_ID = "https://gateway-chaos.invalid/schemas/result.schema.json"
TIMELINE_ROW: dict[str, Any] = {
    "type": "object",
    "description": "One second of the run: requests finished in it by outcome, latency percentiles.",
    "required": ["t", "total"],
    "properties": {
        "t": {"type": "integer", "minimum": 0, "maximum": parts.MAX_SECONDS},
        "total": parts.COUNT,
        **{o: parts.COUNT for o in OUTCOMES},
        **{f"p{q}_ms": {**parts.NUMBER, "type": ["number", "null"]} for q in (50, 95, 99)},
    },
    "additionalProperties": {**parts.NUMBER, "type": ["number", "null"]},
}
_SECONDS_OR_NULL = {**parts.SECONDS, "type": ["number", "null"]}
OVERRIDES: dict[str, dict[str, Any]] = {
    "Result.timeline": {"type": "array", "items": TIMELINE_ROW},
    "Result.breaker": {**parts.SAMPLES, "description": "(seconds, breaker state value) probe samples"},
    "Result.upstream": {**parts.SAMPLES,
                        "description": "(seconds, upstream requests counter) samples"},
    "Result.evidence": parts.EVIDENCE,
    "Result.witness": parts.WITNESS,
    "Result.mechanisms": parts.MECHANISMS,
    "Result.breaker_inferred": parts.BREAKER_INFERRED,
    "Result.attempt_timeline": parts.ATTEMPT_TIMELINE,
    "Result.drilldown": parts.DRILLDOWN,
    "Result.drilldown_omitted": parts.COUNT,
    "Result.llm_timeline": {"type": "array", "items": {
        "type": "object", "required": ["t", "tokens_per_s"],
        "description": "One second of LLM traffic (chaos.verdict.llm_figures): tokens per "
                       "second received, TTFT p50/p95 and inter-token p99 of its streams (ms).",
        "properties": {"t": {"type": "integer", "minimum": 0, "maximum": parts.MAX_SECONDS},
                       "tokens_per_s": {**parts.NUMBER, "minimum": 0},
                       **{k: {**parts.NUMBER, "type": ["number", "null"]}
                          for k in ("ttft_p50_ms", "ttft_p95_ms", "itl_p99_ms")}}}},
    "Result.tls": parts.TLS,
    "Result.tls_timeline": parts.TLS_TIMELINE,
    "Result.duration_s": parts.SECONDS,
    "Result.recovery_s": _SECONDS_OR_NULL,
    "PhaseWindow.start": parts.SECONDS,
    "PhaseWindow.end": parts.SECONDS,
    "FaultRecord.start": parts.SECONDS,
    "FaultRecord.end": _SECONDS_OR_NULL,
    "FaultRecord.completed": _SECONDS_OR_NULL,
    "FaultRecord.removed": _SECONDS_OR_NULL,
    "FaultRecord.kind": {"enum": ["fault", "restore"],
                         "description": "restore: start/unpause, an instant (end null)"},
    "Recovery.span_start": parts.SECONDS,
    "Recovery.span_end": parts.SECONDS,
    "Recovery.reference": parts.SECONDS,
    "Recovery.healthy_at": _SECONDS_OR_NULL,
    "Recovery.seconds": _SECONDS_OR_NULL,
    "Recovery.threshold": {"type": "number", "minimum": 0, "maximum": 1},
    "BreakerTransition.t": parts.SECONDS,
    "PhaseStats.total": parts.COUNT,
    "PhaseStats.counts": {"type": "object", "additionalProperties": parts.COUNT},
    "Result.schema_version": {"const": SCHEMA_VERSION},
    "Result.verdict": {"enum": ["pass", "fail", "inconclusive", "error", "interrupted"]},
    "Result.score": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
    "AssertionResult.status": {"enum": ["pass", "fail", "inconclusive"]},
    "ScoreTerm.name": {"enum": ["A", "G", "T"]},
    "ScoreTerm.value": {"type": "number", "minimum": 0, "maximum": 1},
    "ScoreTerm.weight": {"type": "number", "minimum": 0, "maximum": 100},
    "ScoreTerm.points": {"type": "number", "minimum": 0, "maximum": 100},
}


def _type(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return {}
    if hint is type(None):
        return {"type": "null"}
    if hint is str:
        return {"type": "string"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return dict(parts.INTEGER)
    if hint is float:
        return dict(parts.NUMBER)
    if origin in (typing.Union, types.UnionType):
        options = [_type(a, defs) for a in args]
        if len(options) == 2 and {"type": "null"} in options:
            other = options[1 - options.index({"type": "null"})]
            if isinstance(other.get("type"), str):  # X | None: one schema, null allowed
                return {**other, "type": [other["type"], "null"]}
        simple = [o["type"] for o in options if set(o) == {"type"} and isinstance(o["type"], str)]
        if len(simple) == len(options):
            return {"type": simple}
        return {"anyOf": options}
    if origin is list:
        return {"type": "array", "items": _type(args[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type(args[1], defs)}
    if origin is tuple:
        return {"type": "array", "prefixItems": [_type(a, defs) for a in args],
                "minItems": len(args), "maxItems": len(args)}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        _define(hint, defs)
        return {"$ref": f"#/$defs/{hint.__name__}"}
    raise TypeError(f"no JSON Schema mapping for {hint!r}")


def _object(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, vars(result_module))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        properties[f.name] = OVERRIDES.get(f"{cls.__name__}.{f.name}") or _type(hints[f.name], defs)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "required": required, "additionalProperties": False}
    if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
        schema["description"] = cls.__doc__.strip()
    return schema


def _define(cls: type, defs: dict[str, Any]) -> None:
    if cls.__name__ not in defs:
        defs[cls.__name__] = {}  # placeholder: stops recursion
        defs[cls.__name__] = _object(cls, defs)


def result_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    OVERRIDES["Result.regression"] = parts.regression(_type(BaselineCheck, defs))
    root = _object(Result, defs)
    # Fields are required in result.json as written (to_dict writes them all), so a consumer
    # can rely on every key being present; only the new optional ones may be missing in older files.
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "gateway-chaos result.json",
        **root,
        "description": f"One run of one scenario (schema_version {SCHEMA_VERSION}). Times are "
                       "seconds since the first phase started unless named otherwise; "
                       "latencies are milliseconds.",
        "$defs": dict(sorted(defs.items())),
    }


def main() -> None:
    print(json.dumps(result_schema(), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
