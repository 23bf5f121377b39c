"""The wire formats: OpenAI chat completions and Anthropic messages, whole and streamed.

Plain data, no I/O: app.py paces and writes what these build. Tokens are deterministic
words ("tok1", " tok2", ...), one per SSE chunk.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

# error class -> (OpenAI type, OpenAI code, Anthropic type, message)
ERROR_SHAPES: dict[str, tuple[str, str | None, str, str]] = {
    "rate_limit_exceeded": ("requests", "rate_limit_exceeded", "rate_limit_error",
                            "Rate limit reached for requests"),
    "server_error": ("server_error", None, "api_error",
                     "The server had an error while processing your request"),
    "overloaded": ("server_error", "overloaded", "overloaded_error", "Overloaded"),
    "context_length_exceeded": ("invalid_request_error", "context_length_exceeded",
                                "invalid_request_error",
                                "This model's maximum context length was exceeded"),
    "content_policy_violation": ("invalid_request_error", "content_policy_violation",
                                 "invalid_request_error",
                                 "Your request was rejected by the content policy"),
    "invalid_request": ("invalid_request_error", None, "invalid_request_error",
                        "Invalid request"),
    "not_found": ("invalid_request_error", "model_not_found", "not_found_error",
                  "The model does not exist"),
}
# Anthropic's stop_reason for OpenAI's finish_reason
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "content_filter": "refusal"}


def error_class(status: int, error: str | None) -> str:
    """The error a status means when the rule names none."""
    if error is not None:
        return error
    if status == 429:
        return "rate_limit_exceeded"
    if status in (503, 529):
        return "overloaded"
    if status >= 500:
        return "server_error"
    if status == 404:
        return "not_found"
    return "invalid_request"


def error_body(api: str, kind: str, message: str | None = None) -> dict[str, Any]:
    """OpenAI's `{"error": {...}}` or Anthropic's `{"type": "error", "error": {...}}`."""
    o_type, code, a_type, default = ERROR_SHAPES[kind]
    text = message or default
    if api == "anthropic":
        return {"type": "error", "error": {"type": a_type, "message": text}}
    return {"error": {"message": text, "type": o_type, "param": None, "code": code}}


def words(count: int) -> list[str]:
    return [f"tok{i}" if i == 1 else f" tok{i}" for i in range(1, count + 1)]


def prompt_tokens(api: str, body: dict[str, Any]) -> int:
    """Characters / 4 of the message texts (and Anthropic's system)."""
    chars = 0
    parts: list[Any] = list(body.get("messages") or [])
    if api == "anthropic" and body.get("system") is not None:
        parts.append({"content": body["system"]})
    for message in parts:
        content = message.get("content") if isinstance(message, dict) else message
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for piece in content:
                if isinstance(piece, dict) and isinstance(piece.get("text"), str):
                    chars += len(piece["text"])
                elif isinstance(piece, str):
                    chars += len(piece)
    return chars // 4


def sse(payload: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


@dataclass
class Answer:
    """One answer's fixed parts."""

    api: str
    model: str
    prompt_tokens: int
    include_usage: bool = False
    id: str = ""
    created: int = 0

    def __post_init__(self) -> None:
        prefix = "msg_" if self.api == "anthropic" else "chatcmpl-"
        self.id = self.id or prefix + uuid.uuid4().hex[:24]
        self.created = self.created or int(time.time())

    # -- whole answers --------------------------------------------------------------------
    def whole(self, text: str, tokens: int, finish: str) -> dict[str, Any]:
        if self.api == "anthropic":
            return {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": STOP_REASONS.get(finish, finish), "stop_sequence": None,
                    "usage": {"input_tokens": self.prompt_tokens, "output_tokens": tokens}}
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "logprobs": None, "finish_reason": finish}],
                "usage": self._usage(tokens)}

    def _usage(self, tokens: int) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": tokens,
                "total_tokens": self.prompt_tokens + tokens}

    # -- streams --------------------------------------------------------------------------
    def _chunk(self, delta: dict[str, Any], finish: str | None) -> bytes:
        return sse({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                 "finish_reason": finish}]})

    def head(self) -> list[bytes]:
        """Before the first token (events, not content)."""
        if self.api == "anthropic":
            message = {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                       "content": [], "stop_reason": None, "stop_sequence": None,
                       "usage": {"input_tokens": self.prompt_tokens, "output_tokens": 1}}
            return [sse({"type": "message_start", "message": message}, "message_start"),
                    sse({"type": "content_block_start", "index": 0,
                         "content_block": {"type": "text", "text": ""}}, "content_block_start")]
        return [self._chunk({"role": "assistant", "content": ""}, None)]

    def token(self, text: str) -> bytes:
        if self.api == "anthropic":
            return sse({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": text}}, "content_block_delta")
        return self._chunk({"content": text}, None)

    def tail(self, tokens: int, finish: str, done: bool) -> list[bytes]:
        """After the last token: the finish, usage when asked, the terminator (unless not)."""
        if self.api == "anthropic":
            events = [sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                      sse({"type": "message_delta",
                           "delta": {"stop_reason": STOP_REASONS.get(finish, finish),
                                     "stop_sequence": None},
                           "usage": {"output_tokens": tokens}}, "message_delta")]
            if done:
                events.append(sse({"type": "message_stop"}, "message_stop"))
            return events
        events = [self._chunk({}, finish)]
        if self.include_usage:
            events.append(sse({"id": self.id, "object": "chat.completion.chunk",
                               "created": self.created, "model": self.model, "choices": [],
                               "usage": self._usage(tokens)}))
        if done:
            events.append(b"data: [DONE]\n\n")
        return events

    def in_stream_error(self, kind: str) -> bytes:
        body = error_body(self.api, kind)
        return sse(body, "error") if self.api == "anthropic" else sse(body)

    def malformed(self) -> bytes:
        """A chunk that is not JSON (cut inside a string)."""
        if self.api == "anthropic":
            return (b'event: content_block_delta\ndata: {"type":"content_block_delta",'
                    b'"index":0,"delta":{"type":"text_delta","text":"tok\n\n')
        return b'data: {"id":"' + self.id.encode() + b'","choices":[{"delta":{"content":"tok\n\n'
