"""Toxic types as the API sees them: their attributes, validation, create and update.

The real server decodes attributes into Go structs without checking them, so a
negative rate or a zero slicer size stalls or crashes it. Here every attribute
is declared once (default, minimum, unit) and checked on create and update, so
that a value that would crash the real server fails at the API with a message
naming the attribute. Everything else the real server accepts is accepted:
``null`` means absent, unknown attributes are ignored, ``stream`` is matched
without regard to case, and a missing bandwidth ``rate`` means unlimited.

A ``Toxic`` is shared, immutable, and replaced wholesale on update; what it does
to a connection is in ``chaos/proxy/embedded/behaviours.py``.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any

from chaos.proxy.embedded.errors import bad_request, check_name
from chaos.proxy.embedded.http_spec import HTTP_TYPES, validate_http

log = logging.getLogger("chaos.proxy.embedded")

STREAMS = ("upstream", "downstream")
MAX_VALUE = 10**12  # far beyond any sane duration or size; stops int overflow games


@dataclass(frozen=True)
class Attr:
    default: int
    minimum: int  # for a value the request gives; the default may lie below it
    unit: str


SPECS: dict[str, dict[str, Attr]] = {
    "noop": {},
    "latency": {"latency": Attr(0, 0, "ms"), "jitter": Attr(0, 0, "ms")},
    "bandwidth": {"rate": Attr(0, 0, "KB/s")},  # 0: unlimited
    "slow_close": {"delay": Attr(0, 0, "ms")},
    "timeout": {"timeout": Attr(0, 0, "ms")},
    "reset_peer": {"timeout": Attr(0, 0, "ms")},
    "slicer": {
        "average_size": Attr(0, 1, "bytes"),  # absent (0): chunks pass whole
        "size_variation": Attr(0, 0, "bytes"),
        "delay": Attr(0, 0, "µs"),
    },
    "limit_data": {"bytes": Attr(0, 0, "bytes")},
}

_uids = itertools.count(1)


@dataclass(frozen=True)
class Toxic:
    """One toxic as the API shows it; ``uid`` changes on every update so that
    connections re-draw toxicity and restart timers, as the real server does."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, Any]
    uid: int = field(default_factory=lambda: next(_uids))

    @property
    def direction(self) -> str:
        """``stream`` as given may be any case ("Downstream"), as upstream allows."""
        return self.stream.lower()

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": dict(self.attributes),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
        }


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string",
             list: "array", dict: "object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _whole(kind: str, key: str, value: object, spec: Attr) -> int:
    where = f"{kind}: attribute {key!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{where} must be a number ({spec.unit}), got {_json_type(value)}")
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise bad_request(f"{where} must be a whole number of {spec.unit}, got {value}")
    number = int(value)
    if number < spec.minimum:
        raise bad_request(f"{where} must be >= {spec.minimum} ({spec.unit}), got {number}")
    if number > MAX_VALUE:
        raise bad_request(f"{where} is too large ({number} {spec.unit})")
    return number


def validate_attributes(kind: str, raw: object, base: dict[str, Any] | None = None
                        ) -> dict[str, Any]:
    """Merge ``raw`` over ``base`` (or the defaults) and check what it gives.

    As Go's JSON decoder does, a ``null`` value or an unknown key changes nothing.
    The HTTP- and stream-aware types are checked by ``http_spec.py``."""
    if kind in HTTP_TYPES:
        return validate_http(kind, raw, base)
    spec = SPECS[kind]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise bad_request(f"{kind}: attributes must be an object, got {_json_type(raw)}")
    unknown = sorted(set(raw) - set(spec))
    if unknown:
        log.warning("%s: ignoring unknown attribute(s) %s", kind, ", ".join(unknown))
    result = dict(base) if base is not None else {k: a.default for k, a in spec.items()}
    for key, value in raw.items():
        if key in spec and value is not None:
            result[key] = _whole(kind, key, value, spec[key])
    if kind == "slicer" and result["size_variation"] and (
            result["size_variation"] >= result["average_size"]):
        raise bad_request("slicer: attribute 'size_variation' must be less than 'average_size'")
    return result


def _toxicity(value: object, default: float = 1.0) -> float:
    """Any number, as upstream takes it (above 1: always; below 0: never); null: ``default``."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"toxicity must be a number between 0 and 1, got {_json_type(value)}")
    if not math.isfinite(value):
        raise bad_request(f"toxicity must be a number between 0 and 1, got {value}")
    return float(value)


def parse_toxic(body: object) -> Toxic:
    """Build a new toxic from a create request, with the real server's defaults."""
    if not isinstance(body, dict):
        raise bad_request(f"bad request body: expected a JSON object, got {_json_type(body)}")
    stream = body.get("stream")
    if stream is None:
        stream = "downstream"
    if not isinstance(stream, str) or stream.lower() not in STREAMS:
        raise bad_request("stream was invalid, can be either upstream or downstream")
    kind = body.get("type")
    if not isinstance(kind, str) or (kind not in SPECS and kind not in HTTP_TYPES):
        known = ", ".join(sorted(SPECS) + sorted(HTTP_TYPES))
        raise bad_request(f"invalid toxic type: {kind!r} (known: {known})")
    name = body.get("name") or f"{kind}_{stream}"
    if not isinstance(name, str):
        raise bad_request(f"toxic name must be a string, got {_json_type(name)}")
    return Toxic(name=check_name(name, "toxic"), type=kind, stream=stream,
                 toxicity=_toxicity(body.get("toxicity")),
                 attributes=validate_attributes(kind, body.get("attributes")))


def update_toxic(old: Toxic, body: object) -> Toxic:
    """Apply an update request: attributes merge, toxicity replaces; as upstream, any
    ``type``, ``stream`` or ``name`` in the body is ignored and ``null`` keeps a value."""
    if not isinstance(body, dict):
        raise bad_request(f"bad request body: expected a JSON object, got {_json_type(body)}")
    toxicity = _toxicity(body.get("toxicity"), old.toxicity)
    attributes = validate_attributes(old.type, body.get("attributes"), old.attributes)
    return replace(old, toxicity=toxicity, attributes=attributes, uid=next(_uids))
