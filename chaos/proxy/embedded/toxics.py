"""Toxic types: every toxic the embedded server knows, in two halves.

``chaos/proxy/embedded/toxic_spec.py`` holds what the API sees: each type's attributes
(default, minimum, unit), their validation, and building or updating a ``Toxic`` from a
request. ``chaos/proxy/embedded/behaviours.py`` holds what each toxic does to a stream on
a live connection (latency, bandwidth, slicer shape it; reset_peer, timeout, slow_close,
limit_data end it). This module names both, as the rest of the server imports them.
"""

from __future__ import annotations

from chaos.proxy.embedded.behaviours import (
    BEHAVIOURS,
    Bandwidth,
    Behaviour,
    CloseFn,
    Emit,
    Latency,
    LimitData,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
)
from chaos.proxy.embedded.toxic_spec import (
    MAX_VALUE,
    SPECS,
    STREAMS,
    Attr,
    Toxic,
    parse_toxic,
    update_toxic,
    validate_attributes,
)

__all__ = [
    "BEHAVIOURS", "MAX_VALUE", "SPECS", "STREAMS", "Attr", "Bandwidth", "Behaviour", "CloseFn",
    "Emit", "Latency", "LimitData", "ResetPeer", "Slicer", "SlowClose", "Timeout", "Toxic",
    "parse_toxic", "update_toxic", "validate_attributes",
]
