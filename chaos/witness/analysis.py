"""The witness's findings for one run: requests.ndjson joined with upstream.ndjson, the
mechanisms per phase and for the whole run, inferred breaker intervals, shedding, the
per-second attempt timeline and the per-request drill-down (witness contract section 4).

One streaming pass over the client records; times in the findings are seconds since t0.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chaos.outcomes import OK, OK_AFTER_RETRY, SUCCESSES
from chaos.verdict.result import PhaseWindow, Result
from chaos.verdict.stats import Record
from chaos.witness.breaker import FastErrors, Served, Span, infer_spans, shed_by_phase
from chaos.witness.join import AttemptIndex, ClientRequest, client_requests, index_attempts, join
from chaos.witness.mechanisms import Tally, UpstreamOrder, ok_after_retry
from chaos.witness.records import COMPLETE, Attempt, read_attempts

DRILLDOWN_MAX = 200


@dataclass
class Findings:
    """What the witness proved about the gateway in one run."""

    index: AttemptIndex
    tallies: dict[str, Tally]
    spans: list[Span]  # seconds since t0
    timeline: list[dict[str, Any]]
    drilldown: list[dict[str, Any]]
    drilldown_omitted: int

    def whole(self) -> Tally:
        return Tally.merged(self.tallies.values())

    def mechanisms(self) -> dict[str, Any]:
        return {"whole": self.whole().to_dict(),
                "by_phase": {name: t.to_dict() for name, t in self.tallies.items()}}

    def breaker_inferred(self) -> list[dict[str, Any]]:
        return [{"start": s.start, "end": s.end, "closed_at": s.closed_at, "probes": s.probes,
                 "phase": s.phase} for s in self.spans]

    def open_intervals(self) -> list[tuple[float, float]]:
        """(first, last fast error) of each inferred interval, for fails_fast_under."""
        return [(s.start, s.end) for s in self.spans]

    def attempts_in(self, window: PhaseWindow) -> int:
        tally = self.tallies.get(window.name)
        return 0 if tally is None else tally.attempts


def analyse(requests_path: Path, upstream_path: Path, t0: float,
            windows: list[PhaseWindow], idempotent: Collection[str]) -> Findings:
    """Join the client records with the attempts the upstream saw and read the mechanisms."""
    index = index_attempts(read_attempts(upstream_path))
    tallies = {w.name: Tally() for w in windows}
    fast, served = FastErrors(), Served()
    picks = _Drilldown(t0)
    order = UpstreamOrder([a for a in index.ordered if a.rid is not None] if index.by_rid
                          else index.ordered)
    for request, attempts in join(client_requests(requests_path), index):
        tally = tallies.get(request.phase)
        if tally is None:
            continue  # warm-up or cool-down traffic: not judged, as the client verdicts
        tally.add_request(request, attempts, request.name in idempotent, order)
        if request.rid is not None and not attempts and request.outcome not in SUCCESSES:
            fast.add(request.phase, request.t)
        elif attempts and request.outcome in SUCCESSES:
            served.add(request.t, request.end)
        picks.offer(request, attempts)
    for attempt in index.unmatched():
        phase = _phase_at(windows, attempt.t - t0)
        if phase is not None:
            tallies[phase].add_unmatched(attempt, order)
    joined = index.matched() > 0
    for tally in tallies.values():
        tally.joined = joined
    # with ids joined, attempts without one are not client traffic (see Tally.client_attempts)
    traffic = [a for a in index.ordered if a.rid is not None] if joined else index.ordered
    spans = infer_spans(fast.merged(), traffic, served)
    for phase, n in shed_by_phase(fast, spans, traffic, served).items():
        tallies[phase].shed += n
    relative = [_relative(s, t0) for s in spans]
    for span in relative:
        span.phase = _phase_at(windows, span.start) or ""
    end = windows[-1].end if windows else 0.0
    return Findings(index, tallies, relative, attempt_timeline(index.ordered, t0, end),
                    picks.rows(), picks.omitted)


def relabel(records: Iterable[Record], index: AttemptIndex) -> Iterator[Record]:
    """Client records as the verdict counts them with a witness: an `ok` that needed more
    than one attempt is ok_after_retry, whatever the gateway's own header said."""
    for record in records:
        if record.outcome == OK and ok_after_retry(OK, index.attempts_of(record.rid)):
            yield replace(record, outcome=OK_AFTER_RETRY)
        else:
            yield record


def _phase_at(windows: list[PhaseWindow], t: float) -> str | None:
    return next((w.name for w in windows if w.start <= t < w.end), None)


def _relative(span: Span, t0: float) -> Span:
    def rel(t: float) -> float:
        return round(t - t0, 3)

    return replace(span, start=rel(span.start), end=rel(span.end),
                   closed_at=None if span.closed_at is None else rel(span.closed_at),
                   probes=[rel(p) for p in span.probes],
                   quiet_until=None if span.quiet_until is None else rel(span.quiet_until))


def attempt_timeline(attempts: list[Attempt], t0: float, end: float) -> list[dict[str, Any]]:
    """One row per second from 0 to end: attempts started in it and how they ended."""
    rows = [{"t": s, "attempts": 0, "complete_2xx": 0, "error_status": 0, "abandoned": 0,
             "failed": 0} for s in range(int(math.ceil(end)))]
    for attempt in attempts:
        second = int(attempt.t - t0) if attempt.t >= t0 else -1
        if not 0 <= second < len(rows):
            continue
        row = rows[second]
        row["attempts"] += 1
        if attempt.abandoned:
            row["abandoned"] += 1
        elif attempt.status is not None and attempt.status >= 400:
            row["error_status"] += 1
        elif attempt.ended == COMPLETE and attempt.status is not None and attempt.status < 300:
            row["complete_2xx"] += 1
        elif attempt.ended not in (COMPLETE, "open"):
            row["failed"] += 1
    return rows


class _Drilldown:
    """At most DRILLDOWN_MAX client requests with their attempts: failed and retried first,
    then failed, then retried, then the rest (each group bounded, in time order)."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.groups: list[list[dict[str, Any]]] = [[], [], [], []]
        self.seen = 0

    def offer(self, request: ClientRequest, attempts: list[Attempt]) -> None:
        self.seen += 1
        failed = request.outcome not in SUCCESSES
        retried = len(attempts) > 1 or request.outcome == OK_AFTER_RETRY
        group = self.groups[(0 if retried else 1) if failed else (2 if retried else 3)]
        if len(group) < DRILLDOWN_MAX:
            group.append({"request": self._shift(request.raw, ("t",)),
                          "attempts": [self._shift(a.to_dict(), ("t", "first_byte", "end"))
                                       for a in attempts]})

    def _shift(self, raw: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        out = dict(raw)
        for key in keys:
            if isinstance(out.get(key), int | float):
                out[key] = round(out[key] - self.t0, 4)
        return out

    def rows(self) -> list[dict[str, Any]]:
        return [row for group in self.groups for row in group][:DRILLDOWN_MAX]

    @property
    def omitted(self) -> int:
        return self.seen - len(self.rows())



def findings_for(run_dir: Path, requests_path: Path, t0: float, windows: list[PhaseWindow],
                 idempotent: Collection[str], witness: dict[str, Any]) -> Findings | None:
    """The run's findings when a witness wrote run_dir/upstream.ndjson (kind not none)."""
    upstream = run_dir / "upstream.ndjson"
    if witness.get("kind") == "none" or not upstream.exists():
        return None
    return analyse(requests_path, upstream, t0, windows, idempotent)


def store(result: Result, findings: Findings | None) -> None:
    """The findings into the Result fields of the witness contract (section 4)."""
    if findings is None:
        return
    result.witness.update(findings.index.counts())
    result.mechanisms = findings.mechanisms()
    result.breaker_inferred = findings.breaker_inferred()
    result.attempt_timeline = findings.timeline
    result.drilldown = findings.drilldown
    result.drilldown_omitted = findings.drilldown_omitted
