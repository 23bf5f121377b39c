"""What the stream toxics do to one server-sent-events response body.

``SseFault`` is one ``sse_stall`` / ``sse_cut`` / ``sse_corrupt`` / ``sse_error``
toxic applied to one ``text/event-stream`` response: it counts the events of the
body (``EventEnds``) as the exchange gate (``http_toxics.py``) hands it the body's
data bytes, unframed, and once ``after`` events have passed it says what to do:
stop forwarding (stall), end the connection (cut), insert a malformed event and go
on (corrupt), or insert an OpenAI-style in-band error event and end the body
(error). Bytes before that point pass as they came.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from chaos.proxy.embedded.toxic_spec import Toxic

# What the gate does once the fault fired (None: keep forwarding).
STALL, CLOSE, RESET, END = "stall", "close", "reset", "end"


class EventEnds:
    """Where the events of an event-stream body end, the body fed in pieces split
    anywhere: an event ends at a blank line (LF or CRLF) after a non-empty line. The
    stream toxics and the tap's event count (``tap.py``) read events by this one rule."""

    __slots__ = ("in_event", "partial")

    def __init__(self) -> None:
        self.in_event = False
        self.partial = False  # the current line has content so far

    def ends(self, data: bytes) -> Iterator[int]:
        """The offsets in ``data`` just past each event's blank line, in order."""
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                if data[start:].strip(b"\r"):
                    self.partial = True
                return
            has = self.partial or bool(data[start:nl].strip(b"\r"))
            self.partial = False
            start = nl + 1
            if has:
                self.in_event = True
            elif self.in_event:
                self.in_event = False
                yield start


class SseFault:
    def __init__(self, toxic: Toxic) -> None:
        self.toxic = toxic
        self.after = int(toxic.attributes["after"])
        self.events = 0
        self.split = EventEnds()
        self.passing = False  # corrupt fired: the rest passes untouched

    def _inserted(self) -> tuple[bytes, str | None]:
        attrs, kind = self.toxic.attributes, self.toxic.type
        if kind == "sse_stall":
            return b"", STALL
        if kind == "sse_cut":
            return b"", RESET if attrs["how"] == "reset" else CLOSE
        if kind == "sse_corrupt":
            payload = str(attrs["payload"]).encode()
            return payload.rstrip(b"\r\n") + b"\n\n", None
        error = {"error": {"message": attrs["message"], "type": attrs["error_type"],
                           "param": None, "code": attrs["code"]}}
        return b"data: " + json.dumps(error).encode() + b"\n\n", END

    def _fire(self) -> tuple[list[bytes], str | None]:
        extra, action = self._inserted()
        self.passing = action is None
        return ([extra] if extra else []), action

    def begin(self) -> tuple[list[bytes], str | None]:
        """At the response head: ``after: 0`` fires before the first event."""
        if self.after == 0:
            return self._fire()
        return [], None

    def feed(self, data: bytes) -> tuple[list[bytes], str | None]:
        """Body bytes in; the bytes to forward and, once fired, the action."""
        if self.passing:
            return [data], None
        for end in self.split.ends(data):
            self.events += 1
            if self.events >= self.after:
                out, action = self._fire()
                if action is None:  # corrupt: the rest of this piece follows the insert
                    return [data[:end], *out] + ([data[end:]] if end < len(data) else []), None
                return [data[:end], *out], action
        return [data], None
