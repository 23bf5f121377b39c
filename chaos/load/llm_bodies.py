"""A fresh chat request body per request of a token-aware mix item (`load.requests[].llm`).

Runs inside Locust's gevent process (imported by chaos/load/locustfile.py), so it imports
the standard library alone. The spec is the dumped chaos.scenario.llm_load.LlmRequest:
api (openai | anthropic), model, prompt_tokens and max_tokens ([low, high], drawn
uniformly per request), stream. The prompt is filler text of 4 characters per token (the
providers estimate prompt tokens as characters / 4), so a record's prompt_tokens is exact
for them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

_WORDS = ("the", "gate", "way", "must", "hold", "when", "load", "runs", "high", "and", "far")


def filler(tokens: int, rng: random.Random) -> str:
    """Words of filler text, exactly 4 * tokens characters (at least 4)."""
    size = max(int(tokens), 1) * 4
    parts: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        parts.append(word)
        length += len(word) + 1
    return " ".join(parts)[:size].ljust(size, ".")


def draw(bounds: Any, rng: random.Random) -> int:
    """A whole number drawn uniformly in [low, high] (a bare number is itself)."""
    if isinstance(bounds, int | float):
        return int(bounds)
    low, high = int(bounds[0]), int(bounds[1])
    return rng.randint(min(low, high), max(low, high))


def estimate_tokens(body: Mapping[str, Any]) -> int:
    """Prompt tokens of a chat body as the providers estimate them: message characters / 4."""
    chars = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            chars += len(content)
    system = body.get("system")
    if isinstance(system, str):
        chars += len(system)
    return chars // 4


def body_for(spec: Mapping[str, Any], rng: random.Random) -> tuple[dict[str, Any], int, int]:
    """(body, prompt_tokens, max_tokens) of one request."""
    prompt = draw(spec.get("prompt_tokens", 20), rng)
    max_tokens = draw(spec.get("max_tokens", 64), rng)
    stream = bool(spec.get("stream", True))
    body: dict[str, Any] = {
        "model": spec.get("model") or "gpt-4o-mini",
        "messages": [{"role": "user", "content": filler(prompt, rng)}],
        "max_tokens": max_tokens,
        "stream": stream,
    }
    if stream and (spec.get("api") or "openai") == "openai":
        body["stream_options"] = {"include_usage": True}
    return body, estimate_tokens(body), max_tokens
