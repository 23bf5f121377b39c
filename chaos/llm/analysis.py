"""One run's LLM findings: requests.ndjson joined with providers.ndjson by request id.

One streamed pass over the client records, which also rewrites requests.ndjson (served_by
on every record whose id a provider journalled; an ``ok`` the serving provider did not
finish becomes ``truncated_success``, its old class kept as ``client_outcome``), and feeds
the token figures (chaos.verdict.llm_figures). Per judged phase and for the whole run:
who served the successes, fallbacks, re-attempts after an error status, the waits after a
Retry-After per provider. The provider attempts are held by rid; client records are not.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaos.llm.join import Joined, Wait, join_attempts, truncated
from chaos.llm.journal import PROVIDERS_FILE, ProviderAttempt, read_provider_attempts
from chaos.llm.rewrite import rewrite_records
from chaos.outcomes import SUCCESSES, TRUNCATED_SUCCESS
from chaos.verdict.llm_figures import TokenFigures
from chaos.verdict.result import PhaseWindow, Result
from chaos.witness.records import parsed_lines

DRILLDOWN_MAX = 50


@dataclass
class WaitTally:
    """Re-attempts on a provider after its Retry-After: how many waited long enough."""

    count: int = 0
    honoured: int = 0
    shortest: Wait | None = None  # the one that waited least against what it was asked

    def add(self, wait: Wait) -> None:
        self.count += 1
        self.honoured += wait.honoured
        self._keep_shorter(wait)

    def merge(self, other: WaitTally) -> None:
        self.count += other.count
        self.honoured += other.honoured
        if other.shortest is not None:
            self._keep_shorter(other.shortest)

    def _keep_shorter(self, wait: Wait) -> None:
        if self.shortest is None or wait.waited_s - wait.asked_s < \
                self.shortest.waited_s - self.shortest.asked_s:
            self.shortest = wait


@dataclass
class LlmTally:
    """One phase's (or the whole run's) facts from the provider journals."""

    requests: int = 0
    attempted: int = 0  # client requests with at least one provider attempt
    successes: int = 0
    joined_successes: int = 0  # successes with a serving attempt found
    served: Counter[str] = field(default_factory=Counter)
    fallback: int = 0
    reclassified: int = 0
    # status -> provider -> client requests re-attempted after it answered that status
    reattempted_after: dict[int, Counter[str]] = field(default_factory=dict)
    waits: dict[str, WaitTally] = field(default_factory=dict)

    def add(self, outcome: str, joined: Joined, reclassified: bool) -> None:
        self.requests += 1
        self.reclassified += reclassified
        if joined.attempts:
            self.attempted += 1
        for status, provider in joined.reattempted_after.items():
            self.reattempted_after.setdefault(status, Counter())[provider] += 1
        for wait in joined.waits:
            self.waits.setdefault(wait.provider, WaitTally()).add(wait)
        if outcome not in SUCCESSES:
            return
        self.successes += 1
        if joined.served_by is not None:
            self.joined_successes += 1
            self.served[joined.served_by] += 1
            self.fallback += joined.fallback

    def merge(self, other: LlmTally) -> None:
        for name in ("requests", "attempted", "successes", "joined_successes", "fallback",
                     "reclassified"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.served.update(other.served)
        for status, counter in other.reattempted_after.items():
            self.reattempted_after.setdefault(status, Counter()).update(counter)
        for provider, waits in other.waits.items():
            self.waits.setdefault(provider, WaitTally()).merge(waits)

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "attempted": self.attempted,
                "successes": self.successes, "joined_successes": self.joined_successes,
                "served_by": dict(sorted(self.served.items())), "fallback": self.fallback,
                "reclassified": self.reclassified,
                "reattempted_after": {str(s): dict(c) for s, c in
                                      sorted(self.reattempted_after.items())},
                "retry_after": {p: {"reattempts": w.count, "honoured": w.honoured}
                                for p, w in sorted(self.waits.items())}}


@dataclass
class LlmFindings:
    """What the provider journals and the LLM records proved in one run."""

    providers: list[str]  # the scenario's provider names
    journal: bool  # providers.ndjson was written (some provider answered its journal)
    attempts: int
    matched: int  # attempts whose rid a client record carried
    tallies: dict[str, LlmTally]
    tokens: TokenFigures
    drilldown: list[dict[str, Any]]

    def whole(self) -> LlmTally:
        total = LlmTally()
        for tally in self.tallies.values():
            total.merge(tally)
        return total

    def tally(self, phase: str, whole: str) -> LlmTally:
        return self.whole() if phase == whole else self.tallies.get(phase, LlmTally())

    def to_dict(self) -> dict[str, Any]:
        return {"providers": self.providers, "journal": self.journal,
                "attempts": self.attempts, "matched": self.matched,
                "whole": {**self.whole().to_dict(), **self.tokens.whole().to_dict()},
                "by_phase": {name: {**tally.to_dict(), **self.tokens.phases[name].to_dict()}
                             for name, tally in self.tallies.items()},
                "drilldown": self.drilldown}


def _shift(raw: dict[str, Any], t0: float, keys: tuple[str, ...]) -> dict[str, Any]:
    out = dict(raw)
    for key in keys:
        if isinstance(out.get(key), int | float):
            out[key] = round(out[key] - t0, 4)
    return out


def _attempt_row(attempt: ProviderAttempt, t0: float) -> dict[str, Any]:
    return _shift(asdict(attempt), t0, ("t", "first_byte", "end"))


def analyse_llm(run_dir: Path, requests_path: Path, t0: float, windows: list[PhaseWindow],
                providers: list[str]) -> LlmFindings | None:
    """The findings (None: the run had no provider and no LLM record); rewrites
    requests.ndjson when some provider attempt joined a client record."""
    journal_path = run_dir / PROVIDERS_FILE
    by_rid: dict[str, list[ProviderAttempt]] = {}
    attempts = 0
    for attempt in read_provider_attempts(journal_path):
        attempts += 1
        if attempt.rid is not None:
            by_rid.setdefault(attempt.rid, []).append(attempt)
    end = windows[-1].end if windows else 0.0
    tokens = TokenFigures(t0, end, [w.name for w in windows])
    tallies = {w.name: LlmTally() for w in windows}
    seen: set[str] = set()
    drilldown: list[dict[str, Any]] = []

    def edit(raw: dict[str, Any]) -> dict[str, Any] | None:
        rid = raw.get("rid") or None
        joined = join_attempts(by_rid.get(rid, []) if isinstance(rid, str) else [])
        new: dict[str, Any] | None = None
        reclassified = False
        if joined.attempts:
            seen.add(str(rid))
            new = {**raw, "served_by": joined.served_by}
            if truncated(raw, joined):
                new["client_outcome"], new["outcome"] = raw.get("outcome"), TRUNCATED_SUCCESS
                reclassified = True
        record = new or raw
        tokens.add(record)
        tally = tallies.get(str(record.get("phase", "")))
        if tally is not None:
            tally.add(str(record.get("outcome", "other")), joined, reclassified)
            if (reclassified or joined.fallback or joined.reattempted_after) \
                    and len(drilldown) < DRILLDOWN_MAX:
                drilldown.append({"request": _shift(record, t0, ("t",)),
                                  "provider_attempts": [_attempt_row(a, t0)
                                                        for a in joined.attempts]})
        return new

    if by_rid:
        rewrite_records(requests_path, edit)
    else:  # nothing to write: the same pass, read only
        for raw in parsed_lines(requests_path, dict):
            edit(raw)
    if not providers and not attempts and not tokens.any():
        return None
    matched = sum(len(by_rid[rid]) for rid in seen)
    return LlmFindings(providers, journal_path.exists(), attempts, matched, tallies, tokens,
                       drilldown)


def store_llm(result: Result, findings: LlmFindings | None) -> None:
    """result.llm (the figures and the LLM drill-down) and result.llm_timeline (per second).
    The witness drill-down's requests carry served_by through the rewritten records."""
    if findings is None:
        return
    result.llm = findings.to_dict()
    result.llm_timeline = findings.tokens.timeline() if findings.tokens.any() else []
