"""Server-sent events read incrementally, and what an LLM stream told its client.

Runs inside Locust's gevent process (imported by chaos/load/locustfile.py), so it imports
the standard library alone. ``EventReader`` splits bytes, as they arrive in reads of any
size, into events the way the WHATWG SSE parser does (LF, CRLF or CR line ends, comment
lines starting with ":", multi-line data joined with LF, an event dispatched at a blank
line, an unfinished event at the end of the stream dropped). ``StreamStats`` reads each
event as an OpenAI chat-completion chunk or an Anthropic messages event and keeps the
figures the record carries: time to the first content token, the gaps between tokens,
tokens received, the last finish_reason, whether the terminator came, and any in-band error.
"""

from __future__ import annotations

import json
import time
from typing import Any

ITL_KEPT = 2000  # inter-token gaps kept per record; the rest are counted in itl_more
OPENAI_DONE = "[DONE]"


class Event:
    """One dispatched event: its type ("message" unless an `event:` line said otherwise)
    and its data (the data lines joined with LF)."""

    __slots__ = ("data", "event")

    def __init__(self, event: str, data: str) -> None:
        self.event = event
        self.data = data

    def __repr__(self) -> str:
        return f"Event({self.event!r}, {self.data!r})"


class EventReader:
    """Bytes in (any split), events out. Feed every read; nothing is lost across reads."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._cr = False  # the last read ended in CR: a LF at the next read's start belongs to it

    def feed(self, chunk: bytes) -> list[Event]:
        if self._cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._cr = chunk.endswith(b"\r")
        data = self._buffer + chunk
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = data.split(b"\n")
        self._buffer = lines.pop()  # the unfinished line
        out: list[Event] = []
        for raw in lines:
            event = self._line(raw.decode("utf-8", errors="replace"))
            if event is not None:
                out.append(event)
        return out

    def close(self) -> list[Event]:
        """At the end of the body: the event left without its blank line, if any (the
        caller decides whether to trust it, see StreamStats.add(final=True))."""
        return self.feed(b"\n\n")

    def _line(self, line: str) -> Event | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = Event(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None  # id, retry and unknown fields change nothing here


class StreamStats:
    """What one streaming answer told the client, event by event (OpenAI or Anthropic)."""

    def __init__(self, started: float) -> None:
        self.started = started  # time.perf_counter() at the request's start
        self.ttft_ms: float | None = None
        self.itl_ms: list[float] = []
        self.itl_more = 0
        self.tokens = 0
        self.usage_tokens: int | None = None
        self.finish_reason: str | None = None
        self.done = False
        self.error: str | None = None  # what the in-band error said
        self.malformed = 0  # data that is not JSON (nor the [DONE] terminator)
        self.events = 0
        self._last: float | None = None

    def add(self, event: Event, now: float | None = None, final: bool = False) -> None:
        """One event; `final`: the one EventReader.close() found unfinished at the end of
        the body, kept only when it is whole (the terminator, or JSON), else dropped as
        the SSE parser drops it: a stream cut inside an event lacks its terminator."""
        data = event.data
        if final and data.strip() != OPENAI_DONE and not _is_json(data):
            return
        self.events += 1
        now = time.perf_counter() if now is None else now
        if event.event == "message_stop":
            self.done = True
        if data.strip() == OPENAI_DONE:
            self.done = True
            return
        try:
            body = json.loads(data)
        except ValueError:
            error = _error_inside(data)
            if error is not None or event.event == "error":
                self.error = self.error or error or (data[:200] or "error event")
            else:
                self.malformed += 1
            return
        if not isinstance(body, dict):
            self.malformed += 1
            return
        if event.event == "error" or "error" in body or body.get("type") == "error":
            self.error = self.error or _error_text(body.get("error", body))
            return
        kind = body.get("type")
        if kind == "message_stop":
            self.done = True
        elif kind == "content_block_delta":
            delta = body.get("delta") or {}
            if isinstance(delta, dict) and (delta.get("text") or delta.get("partial_json")):
                self._token(now)
        elif kind == "message_delta":
            reason = (body.get("delta") or {}).get("stop_reason")
            if reason:
                self.finish_reason = str(reason)
            usage = body.get("usage")
            if isinstance(usage, dict) and isinstance(usage.get("output_tokens"), int):
                self.usage_tokens = usage["output_tokens"]
        else:
            self._openai(body, now)

    def _openai(self, body: dict[str, Any], now: float) -> None:
        choices = body.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
            delta = choice.get("delta") or {}
            if isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls")):
                self._token(now)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        usage = body.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            self.usage_tokens = usage["completion_tokens"]

    def _token(self, now: float) -> None:
        self.tokens += 1
        if self._last is None:
            self.ttft_ms = round((now - self.started) * 1000, 1)
        elif len(self.itl_ms) < ITL_KEPT:
            self.itl_ms.append(round((now - self._last) * 1000, 1))
        else:
            self.itl_more += 1
        self._last = now

    def fields(self) -> dict[str, Any]:
        """The record's streaming fields."""
        return {"ttft_ms": self.ttft_ms, "itl_ms": self.itl_ms, "itl_more": self.itl_more,
                "tokens": self.tokens, "finish_reason": self.finish_reason, "done": self.done}


def _is_json(data: str) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def _error_inside(data: str) -> str | None:
    """An error told after a cut: a gateway whose upstream died mid-event appends its error
    event to the partial line, so the event's data is `{"choi` + `event: error` and a data
    line of JSON with an error object. The error it carries, else None."""
    for line in data.split("\n"):
        try:
            body = json.loads(line)
        except ValueError:
            continue
        if isinstance(body, dict) and ("error" in body or body.get("type") == "error"):
            return _error_text(body.get("error", body))
    return "error event after a cut event" if "event: error" in data else None


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        parts = [str(error.get(k)) for k in ("type", "code", "message") if error.get(k)]
        return ": ".join(dict.fromkeys(parts))[:200] or "error object"  # each part once
    return str(error)[:200] or "error object"


def answer_fields(body: bytes) -> dict[str, Any]:
    """tokens and finish_reason of a non-streaming chat answer (OpenAI or Anthropic), and
    an error object it carries ("error"), from its JSON body; {} when it is not one."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    out: dict[str, Any] = {}
    usage = parsed.get("usage")
    if isinstance(usage, dict):
        for key in ("completion_tokens", "output_tokens"):
            if isinstance(usage.get(key), int):
                out["tokens"] = usage[key]
    choices = parsed.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        out["finish_reason"] = choices[0].get("finish_reason")
    elif parsed.get("type") == "message":
        out["finish_reason"] = parsed.get("stop_reason")
    if "error" in parsed or parsed.get("type") == "error":
        out["error"] = _error_text(parsed.get("error", parsed))
    return out
