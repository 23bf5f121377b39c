"""The id every client request carries (load.request_id), so that the upstream witness
(the proxy tap, the backend journal) can join its attempts to the client's record.

Runs inside Locust's gevent process (imported by chaos/load/locustfile.py), so it imports
the standard library alone. Per request: one uuid4 hex, one header, and, with a body field,
a copy of the JSON body along that path only (the shared request spec is never mutated).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any


class RequestIds:
    """What load.request_id asks of each request, read once from the load config."""

    def __init__(self, config: Mapping[str, Any] | None) -> None:
        spec = dict(config or {})
        self.enabled = bool(spec.get("enabled", False))
        self.header = str(spec.get("header") or "X-Chaos-Request-Id")
        field = spec.get("body_field")
        self.keys: list[str] = str(field).split(".") if field else []

    def stamp(self, headers: dict[str, str], body: Any) -> tuple[str | None, Any]:
        """A fresh id set into `headers` (changed in place: the caller's own copy) and, with
        a body field, into a copy of `body`. Returns (id or None, the body to send)."""
        if not self.enabled:
            return None, body
        rid = uuid.uuid4().hex
        headers[self.header] = rid
        if self.keys and isinstance(body, dict):
            body = with_field(body, self.keys, rid)
        return rid, body


def with_field(body: dict[str, Any], keys: list[str], value: str) -> dict[str, Any]:
    """`body` with `value` at the dot path `keys`: the objects on the path are copied (or
    created), everything else is shared with the original, which stays as it was."""
    top = dict(body)
    node = top
    for key in keys[:-1]:
        child = node.get(key)
        node[key] = dict(child) if isinstance(child, dict) else {}
        node = node[key]
    node[keys[-1]] = value
    return top


def header_int(headers: Mapping[str, str] | None, name: str) -> int | None:
    """The integer a response header holds (the gateway's own retry count), else None."""
    if not headers:
        return None
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None
