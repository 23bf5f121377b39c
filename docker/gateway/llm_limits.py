"""The gateway's own token rate limit (GATEWAY_TPM): tokens per minute over prompt +
max_tokens, like a provider's TPM limit, answered with 429, Retry-After and x-ratelimit-*.

A token bucket holding at most TPM tokens, refilled at TPM/60 per second; each LLM request
(a JSON body with messages or prompt) takes its estimate at admission. Prompt tokens are
estimated as characters / 4 (the provider's estimate too); max_tokens (or
max_completion_tokens) is what the request may still cost, 0 when it does not say.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: its cost and when the bucket will hold it."""

    cost: int
    retry_after_s: float
    remaining: int
    too_large: bool = False


def estimate_tokens(body: bytes | None) -> int | None:
    """prompt (chars / 4) + max_tokens, or None when the body is no LLM request."""
    if not body:
        return None
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not ("messages" in doc or "prompt" in doc):
        return None
    chars = len(_text(doc.get("messages"))) + len(_text(doc.get("prompt"))) \
        + len(_text(doc.get("system")))
    limit = doc.get("max_tokens", doc.get("max_completion_tokens", 0))
    max_tokens = limit if isinstance(limit, int) and limit > 0 else 0
    return math.ceil(chars / 4) + max_tokens


def _text(value: object) -> str:
    """The text a prompt part carries (message contents, nested content blocks)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_text(item) for item in value)
    if isinstance(value, dict):
        parts = [value.get("content"), value.get("text")]
        return "".join(_text(p) for p in parts if p is not None)
    return ""


class TokenBucket:
    """TPM tokens per minute; not thread-safe (one event loop)."""

    def __init__(self, tpm: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.tpm = tpm
        self._clock = clock
        self._tokens = float(tpm)
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.tpm), self._tokens + (now - self._at) * self.tpm / 60)
        self._at = now

    def take(self, cost: int) -> Refusal | None:
        """Admit (None) or refuse with the wait until the bucket holds `cost`."""
        self._refill()
        if cost > self.tpm:  # can never pass: a full minute is the honest wait
            return Refusal(cost, 60.0, int(self._tokens), too_large=True)
        if cost <= self._tokens:
            self._tokens -= cost
            return None
        wait = (cost - self._tokens) * 60 / self.tpm
        return Refusal(cost, wait, int(self._tokens))

    def headers(self, refusal: Refusal) -> dict[str, str]:
        """Retry-After (whole seconds, at least 1) and OpenAI's x-ratelimit-* token headers."""
        reset = max(1, math.ceil(refusal.retry_after_s))
        return {
            "Retry-After": str(reset),
            "x-ratelimit-limit-tokens": str(self.tpm),
            "x-ratelimit-remaining-tokens": str(max(0, refusal.remaining)),
            "x-ratelimit-reset-tokens": f"{reset}s",
        }
