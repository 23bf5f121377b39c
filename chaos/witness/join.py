"""Client records joined with upstream attempts by request id (witness contract section 4).

The attempts are held (a rid -> attempts index); the client records are streamed from
requests.ndjson once, so memory grows with what the upstream saw, never with how many
client records a long run wrote. Attempts with no id, or with an id no client record
carries, are counted (``no_id`` / ``unmatched``) and placed in time by their own ``t``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.witness.records import Attempt, parsed_lines


@dataclass(frozen=True)
class ClientRequest:
    """The fields of one requests.ndjson record the join reads (times in epoch seconds)."""

    t: float
    end: float
    phase: str
    name: str
    outcome: str
    status: int
    rid: str | None
    method: str | None
    hdr_retries: int | None
    raw: dict[str, Any]


def client_requests(path: Path) -> Iterator[ClientRequest]:
    """Client records in file order; a torn or foreign line is skipped."""
    return parsed_lines(path, _client_request)


def _client_request(raw: dict[str, Any]) -> ClientRequest:
    t = float(raw["t"])
    latency = float(raw.get("latency_ms", 0.0)) / 1000.0
    retries = raw.get("hdr_retries")
    return ClientRequest(
        t=t, end=t + latency, phase=str(raw.get("phase", "")),
        name=str(raw.get("name", "")), outcome=str(raw.get("outcome", "other")),
        status=int(raw.get("status", 0) or 0), rid=raw.get("rid") or None,
        method=raw.get("method"),
        hdr_retries=None if retries is None else int(retries), raw=raw)


@dataclass
class AttemptIndex:
    """Every attempt, in time order, and by request id."""

    ordered: list[Attempt] = field(default_factory=list)
    by_rid: dict[str, list[Attempt]] = field(default_factory=dict)
    no_id: int = 0
    seen: set[str] = field(default_factory=set)  # attempts' rids some client record carried

    def of(self, rid: str | None) -> list[Attempt]:
        """The attempts one client request caused (by its id), in time order."""
        return self.by_rid.get(rid, []) if rid else []

    def attempts_of(self, rid: str | None) -> int:
        return len(self.of(rid))

    def matched(self) -> int:
        return sum(len(self.by_rid[rid]) for rid in self.seen if rid in self.by_rid)

    def counts(self) -> dict[str, int]:
        """What result.witness adds: attempts joined to a client record, with an id no
        client record carried, and with no id at all."""
        matched = self.matched()
        with_id = len(self.ordered) - self.no_id
        return {"matched": matched, "unmatched": with_id - matched, "no_id": self.no_id}

    def unmatched(self) -> Iterator[Attempt]:
        """Attempts no client record claims (no id, or an id no record carried)."""
        return (a for a in self.ordered if a.rid is None or a.rid not in self.seen)


def index_attempts(attempts: Iterable[Attempt]) -> AttemptIndex:
    index = AttemptIndex(ordered=sorted(attempts, key=lambda a: (a.t, a.seq)))
    for attempt in index.ordered:
        if attempt.rid is None:
            index.no_id += 1
        else:
            index.by_rid.setdefault(attempt.rid, []).append(attempt)
    return index


def join(requests: Iterable[ClientRequest],
         index: AttemptIndex) -> Iterator[tuple[ClientRequest, list[Attempt]]]:
    """Each client request with the attempts that carried its id (marks the id as seen:
    only ids some attempt carried are kept, so memory follows the attempts)."""
    for request in requests:
        attempts = index.of(request.rid)
        if attempts:
            index.seen.add(attempts[0].rid or "")
        yield request, attempts
