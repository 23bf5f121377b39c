"""HTTP- and stream-aware toxic types as the API sees them: attributes and validation.

These types (``http_abort``, ``http_reset``, ``http_latency``, ``sse_stall``,
``sse_cut``, ``sse_corrupt``, ``sse_error``) act on HTTP exchanges, not on byte
chunks, so their attributes are not all whole numbers: a status, a body, headers,
a ``match``. Each is checked on create and update with a message naming the
attribute (400), like the byte-level types in ``toxic_spec.py``; unknown
attributes are refused here (a typo in a fault must not silently become a no-op).
What they do is in ``http_toxics.py`` (the exchange gate) and ``sse_toxics.py``.
"""

from __future__ import annotations

import math
from typing import Any

from chaos.proxy.embedded.errors import bad_request

MAX_COUNT = 10**9
MAX_MS = 3_600_000
MAX_BODY = 1 << 20

COMMON = ("match", "first")
HTTP_ATTRS: dict[str, dict[str, Any]] = {
    "http_abort": {"status": 503, "body": "", "headers": {}},
    "http_reset": {"at": "request"},
    "http_latency": {"latency": 0, "jitter": 0, "at": "request"},
    "sse_stall": {"after": 0},
    "sse_cut": {"after": 0, "how": "close"},
    "sse_corrupt": {"after": 0, "payload": 'data: {"choices": [{"delta": {"content": "'},
    "sse_error": {"after": 0, "message": "The server had an error while processing your "
                  "request.", "error_type": "server_error", "code": "server_error"},
}
HTTP_TYPES = frozenset(HTTP_ATTRS)
CHOICES = {("http_reset", "at"): ("request", "response"),
           ("http_latency", "at"): ("request", "response"),
           ("sse_cut", "how"): ("close", "reset")}
MATCH_KEYS = ("method", "path", "header")


def _number(kind: str, key: str, value: object, lowest: int, highest: int) -> int:
    where = f"{kind}: attribute {key!r}"
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            isinstance(value, float) and (not math.isfinite(value) or not value.is_integer())):
        raise bad_request(f"{where} must be a whole number, got {value!r}")
    if not lowest <= value <= highest:
        raise bad_request(f"{where} must be between {lowest} and {highest}, got {value}")
    return int(value)


def _text(kind: str, key: str, value: object, limit: int = MAX_BODY) -> str:
    if not isinstance(value, str):
        raise bad_request(f"{kind}: attribute {key!r} must be a string, got {value!r}")
    if len(value) > limit:
        raise bad_request(f"{kind}: attribute {key!r} is too long ({len(value)} > {limit})")
    return value


def _header_map(kind: str, key: str, value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise bad_request(f"{kind}: attribute {key!r} must be an object of header names "
                          f"to values, got {value!r}")
    out: dict[str, str] = {}
    for name, text in value.items():
        if isinstance(text, int | float) and not isinstance(text, bool):
            text = str(int(text)) if float(text).is_integer() else str(text)
        if not isinstance(name, str) or not name or any(c in name for c in " \t\r\n:") \
                or not isinstance(text, str) or any(c in text for c in "\r\n"):
            raise bad_request(f"{kind}: attribute {key!r}: bad header {name!r}: {text!r}")
        out[name] = text
    return out


def _match(kind: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request(f"{kind}: attribute 'match' must be an object "
                          f"(method, path, header), got {value!r}")
    unknown = sorted(set(value) - set(MATCH_KEYS))
    if unknown:
        raise bad_request(f"{kind}: attribute 'match': unknown key(s) {', '.join(unknown)} "
                          f"(known: {', '.join(MATCH_KEYS)})")
    out: dict[str, Any] = {}
    if value.get("method") is not None:
        out["method"] = _text(kind, "match.method", value["method"], 32).upper()
    if value.get("path") is not None:
        path = _text(kind, "match.path", value["path"], 8192)
        if not path.startswith("/"):
            raise bad_request(f"{kind}: attribute 'match.path' must start with '/', got {path!r}")
        out["path"] = path
    if value.get("header") is not None:
        out["header"] = _header_map(kind, "match.header", value["header"])
    return out


def _one(kind: str, key: str, value: object) -> object:
    if key == "match":
        return _match(kind, value)
    if key == "first":
        return _number(kind, key, value, 0, MAX_COUNT)
    if (kind, key) in CHOICES:
        allowed = CHOICES[(kind, key)]
        if value not in allowed:
            raise bad_request(f"{kind}: attribute {key!r} must be one of "
                              f"{', '.join(allowed)}, got {value!r}")
        return value
    if key == "status":
        return _number(kind, key, value, 200, 599)
    if key in ("latency", "jitter"):
        return _number(kind, key, value, 0, MAX_MS)
    if key == "after":
        return _number(kind, key, value, 0, MAX_COUNT)
    if key == "headers":
        return _header_map(kind, key, value)
    return _text(kind, key, value)


def validate_http(kind: str, raw: object, base: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """Merge ``raw`` over ``base`` (or the defaults) and check every key it gives."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise bad_request(f"{kind}: attributes must be an object, got {raw!r}")
    known = set(HTTP_ATTRS[kind]) | set(COMMON)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise bad_request(f"{kind}: unknown attribute(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")
    result: dict[str, Any] = dict(base) if base is not None else {
        **HTTP_ATTRS[kind], "match": {}, "first": 0}
    for key, value in raw.items():
        if value is not None:
            result[key] = _one(kind, key, value)
    if kind == "http_latency" and result["jitter"] > result["latency"]:
        raise bad_request("http_latency: attribute 'jitter' must not exceed 'latency'")
    return result
