"""Provider attempts: one request a gateway sent to an LLM provider, as its journal saw it.

``providers.ndjson`` (run folder) holds one journal record per line (docker/llm-provider's
``GET /journal``, the reference backend's fields plus provider, api, model, stream, rule,
behaviour, tokens, finish_reason, prompt_tokens) and ``provider`` (and ``source``) added by
the poller. Times are epoch seconds. A torn or foreign line is skipped.
"""

from __future__ import annotations

import email.utils
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from chaos.witness.records import COMPLETE, parsed_lines

PROVIDERS_FILE = "providers.ndjson"
CHAT_PATHS = ("/v1/chat/completions", "/v1/messages")
_MS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*ms\s*$")
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s?\s*$")


@dataclass(frozen=True, slots=True)
class ProviderAttempt:
    seq: int
    provider: str
    rid: str | None
    path: str | None
    t: float  # handler entry (epoch seconds)
    first_byte: float | None
    end: float | None
    status: int | None
    ended: str
    retry_after: str | None = None
    model: str | None = None
    stream: bool = False
    rule: str | None = None
    behaviour: str | None = None
    tokens: int = 0
    finish_reason: str | None = None

    @property
    def answered(self) -> float:
        """When the gateway had the answer (its end, else its first byte, else its start)."""
        return self.end if self.end is not None else (
            self.first_byte if self.first_byte is not None else self.t)

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def complete(self) -> bool:
        return self.ended == COMPLETE

    @property
    def chat(self) -> bool:
        return bool(self.path) and any(str(self.path).startswith(p) for p in CHAT_PATHS)


def _text(value: Any) -> str | None:
    return None if value is None else sys.intern(str(value))


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def provider_attempt(raw: dict[str, Any]) -> ProviderAttempt:
    """One record of a provider's journal or of providers.ndjson (unknown keys ignored)."""
    status = raw.get("status")
    provider = raw.get("provider") or str(raw.get("source", "")).partition(":")[2]
    return ProviderAttempt(
        seq=int(raw.get("seq", 0)), provider=_text(provider) or "",
        rid=raw.get("rid") or None, path=_text(raw.get("path")), t=float(raw["t"]),
        first_byte=_number(raw.get("first_byte")), end=_number(raw.get("end")),
        status=None if status is None else int(status),
        ended=_text(raw.get("ended", "open")) or "open",
        retry_after=None if raw.get("retry_after") is None else str(raw["retry_after"]),
        model=_text(raw.get("model")), stream=bool(raw.get("stream")),
        rule=_text(raw.get("rule")), behaviour=raw.get("behaviour"),
        tokens=int(raw.get("tokens") or 0), finish_reason=_text(raw.get("finish_reason")))


def read_provider_attempts(path: Path) -> Iterator[ProviderAttempt]:
    """The attempts of providers.ndjson in file order; nothing when it is missing."""
    return parsed_lines(path, provider_attempt)


def retry_after_seconds(value: str | None, received: float) -> float | None:
    """Retry-After as seconds from `received`: delta-seconds (whole or not), ``Nms``
    (retry-after-ms as the load records write it) or an HTTP-date; None if unreadable."""
    if value is None:
        return None
    if (ms := _MS.match(value)) is not None:
        return float(ms.group(1)) / 1000.0
    if (seconds := _SECONDS.match(value)) is not None:
        return float(seconds.group(1))
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - received)
