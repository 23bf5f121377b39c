"""The journal ring the upstream services keep (docker/backend, docker/llm-provider): their
records of every request, read by the harness as ``GET /journal?after=N&limit=M``.

Records are tuples in a bounded ring (0 = off) whose first field is seq; seq numbers are
contiguous, so `after` is an index, and what the ring overflows is counted as `dropped`.
`conn` is kept as the peername tuple (one object shared by a connection's requests) and
shown as "ip:port" only when read. Each service's own journal.py keeps its middleware and
its fields; this module holds what they share.

Copied into each reference image beside app.py (chaos.runtime.images) and found on
PYTHONPATH by the loopback stack, so it imports only the standard library (the request is
an aiohttp one, used by its headers, content_type, content_length and read()).
"""

from __future__ import annotations

import json
from collections import deque
from itertools import islice
from typing import Any

DEFAULT_LIMIT = 10_000
MAX_LIMIT = 100_000


class JournalRing:
    """The ring of records and the request-id lookup its records carry."""

    def __init__(self, size: int, header: str, field: str | None, fields: tuple[str, ...],
                 max_body_bytes: int) -> None:
        assert fields[:2] == ("seq", "conn"), fields
        self.size = size
        self.header = header
        self.keys = field.split(".") if field else []
        self.fields = fields
        self.max_body_bytes = max_body_bytes
        self.ring: deque[tuple[Any, ...]] = deque(maxlen=max(size, 1))
        self.seq = 0
        self.dropped = 0

    def append(self, record: list[Any]) -> None:
        """Keep a record (its values in `fields` order); its seq is set here."""
        self.seq += 1
        record[0] = self.seq
        if len(self.ring) == self.ring.maxlen:
            self.dropped += 1
        self.ring.append(tuple(record))

    def read(self, after: int, limit: int) -> dict[str, Any]:
        """Records with seq > after. An `after` beyond the last seq means this process
        restarted (its seq began again at 1): read from its start."""
        if after > self.seq:
            after = 0
        first = self.seq - len(self.ring) + 1  # seq of the oldest record kept
        start = max(after + 1 - first, 0)
        rows = [dict(zip(self.fields, r, strict=True))
                for r in islice(self.ring, start, start + limit)]
        for row in rows:
            row["conn"] = shown_peer(row["conn"])
        return {"journal": True, "attempts": rows, "next": rows[-1]["seq"] if rows else after,
                "dropped": self.dropped}

    async def rid(self, request: Any) -> str | None:
        """The header, else the body field of a JSON body of at most max_body_bytes
        (aiohttp keeps the body it read, so the handler reads it again for free)."""
        found = request.headers.get(self.header)
        if found is not None or not self.keys or request.content_type != "application/json":
            return found
        length = request.content_length
        if length is None or length > self.max_body_bytes:
            return None
        try:
            node: Any = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return None
        for key in self.keys:
            node = node.get(key) if isinstance(node, dict) else None
        return node if isinstance(node, str) else None


def shown_peer(peer: Any) -> str | None:
    """A peername tuple as "ip:port" ("[ip]:port" for IPv6)."""
    if not peer:
        return None
    host = str(peer[0])
    return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"


def page(query: Any) -> tuple[int, int] | None:
    """`after` and `limit` of a /journal query (limit 1..MAX_LIMIT); None: not integers."""
    try:
        after = int(query.get("after", "0"))
        limit = min(max(int(query.get("limit", str(DEFAULT_LIMIT))), 1), MAX_LIMIT)
    except ValueError:
        return None
    return after, limit
