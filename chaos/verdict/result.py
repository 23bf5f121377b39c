"""The result of one run: everything the reports render, as plain data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class PhaseWindow:
    name: str
    start: float  # seconds since the first phase started
    end: float
    faults: list[str] = field(default_factory=list)


@dataclass
class FaultRecord:
    """One fault's window: from when its action was requested to when its removal was.

    ``start`` and ``end`` are the requests (the window: clients may suffer from the moment
    a restart is asked for); ``completed`` and ``removed`` are when the action and the
    removal returned (a Docker restart can take a second), None when not known.
    """

    phase: str
    description: str
    start: float
    end: float | None = None
    error: str | None = None
    completed: float | None = None
    removed: float | None = None
    # Each service's log lines around the fault (a few seconds before and after it started).
    logs: dict[str, str] = field(default_factory=dict)
    # "restore": an action that brings a service back (start, unpause): an instant, not a
    # window (``end`` stays None); "fault" otherwise.
    kind: str = "fault"


@dataclass
class Recovery:
    """How long clients waited for health after a fault changed (chaos.verdict.recovery).

    Times are seconds since the first phase started. ``healthy_at`` is the start of the
    first successful request after which no window of requests fell short; ``seconds``
    counts from ``reference``, the last fault change at or before it within the measured
    span (``since`` names it), or from the span's start when none fell in it.
    """

    span_start: float
    span_end: float
    reference: float
    since: str
    healthy_at: float | None  # None: still short at the end of the span
    seconds: float | None  # None: never recovered
    recovered: bool
    threshold: float  # the success rate a window must not fall confidently below


@dataclass
class PhaseStats:
    name: str
    total: int
    counts: dict[str, int]
    success_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    rps: float
    # With load.rate (chaos.verdict.generator): arrivals/s asked for and started in the
    # phase, and arrivals dropped because max_in_flight requests were in flight.
    requested_rate: float | None = None
    arrival_rate: float | None = None
    dropped_arrivals: int | None = None


@dataclass
class AssertionResult:
    phase: str
    kind: str
    bound: str
    observed: str
    passed: bool
    message: str
    status: str = ""  # pass | fail | inconclusive (set by the evaluation)
    ci_low: float | None = None  # confidence interval of a rate, when there is one
    ci_high: float | None = None
    value: float | None = None  # the observed value as a number, when there is one
    request: str | None = None  # judged on this load.requests[].name only (`request:`)

    def __post_init__(self) -> None:
        if not self.status:
            self.status = "pass" if self.passed else "fail"

    @property
    def label(self) -> str:
        """The check as people read it: `success_rate`, `p95 (request chat)`."""
        return self.kind if self.request is None else f"{self.kind} (request {self.request})"


@dataclass
class ScoreTerm:
    """One term of the resilience score (chaos.verdict.derived.SCORE_FORMULA): its value
    (0-1), the share of 100 it carries in this run and the counts behind the value."""

    name: str  # A, G or T
    meaning: str
    value: float
    weight: float
    points: float  # weight × value
    basis: str  # the counts, e.g. "7 passed + ½ × 1 inconclusive of 8 assertions"


@dataclass
class BreakerTransition:
    t: float  # seconds since the first phase started
    from_state: str
    to_state: str
    phase: str = ""


@dataclass
class PartFailure:
    """A part of the harness that died mid-run (chaos.observe.watchdog): the run is void.

    Times are seconds since the first phase; ``affected_from``..``affected_to`` are the
    seconds whose traffic measured the broken harness, not the gateway.
    """

    part: str
    how: str
    at: float
    affected_from: float
    affected_to: float
    detail: str = ""


@dataclass
class Result:
    """What a run found; `verdict` is pass, fail, error or interrupted."""

    scenario: str
    file: str
    run_id: str
    started_at: str
    duration_s: float
    verdict: str
    exit_code: int
    description: str = ""
    provider: str = ""
    images: dict[str, str] = field(default_factory=dict)
    command: str = ""
    error: str | None = None
    phases: list[PhaseWindow] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    phase_stats: list[PhaseStats] = field(default_factory=list)
    assertions: list[AssertionResult] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    breaker: list[tuple[float, float]] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    scenario_yaml: str = ""
    report_dir: str = ""
    schema_version: int = SCHEMA_VERSION
    # Derived when the reports are written (chaos.report.derive); None/empty = not known.
    environment: dict[str, str] = field(default_factory=dict)  # tool and engine versions
    # `gateway: NAME:PROFILE` / `--gateway` (chaos/scenario/gateways.py); None: the scenario's own
    gateway: str | None = None
    upstream: list[tuple[float, float]] = field(default_factory=list)  # (t, upstream requests counter)
    retry_amplification: float | None = None  # upstream requests per client request, whole run
    retry_amplification_by_phase: dict[str, float] = field(default_factory=dict)
    recovery_s: float | None = None  # = recovery.seconds (chaos.verdict.recovery)
    recovered: bool | None = None  # False: traffic never got back to health
    breaker_transitions: list[BreakerTransition] = field(default_factory=list)
    score: int | None = None  # resilience score 0-100 (chaos.verdict.derived.SCORE_FORMULA)
    score_parts: dict[str, float] = field(default_factory=dict)  # {term name: value}
    score_terms: list[ScoreTerm] = field(default_factory=list)  # the same terms, explained
    # `chaos run --baseline OLD`: the comparison (chaos.verdict.baseline); None without one.
    regression: dict[str, Any] | None = None
    # Evidence (chaos.capture.evidence): the one-axis event table, failed-request samples,
    # and with capture on, per-hop SYN/FIN/RST counts, RST attribution, socket states.
    evidence: dict[str, Any] = field(default_factory=dict)
    # Set when a part of the harness itself died (verdict error, exit 3); None otherwise.
    environment_error: PartFailure | None = None
    # The run's recovery, measured once by the verdict (the report shows it, never recomputes).
    recovery: Recovery | None = None
    # Phases whose load generator fell short of load.rate (chaos.verdict.generator).
    load_warnings: list[str] = field(default_factory=list)
    # The upstream witness (chaos.witness): which one saw the gateway's attempts (kind tap,
    # journal or none, sources, attempts, dropped, connections, note) and how many joined a
    # client record (matched, unmatched, no_id).
    witness: dict[str, Any] = field(default_factory=dict)
    # What the join proved (chaos.witness.analysis), times in seconds since t0:
    # {"whole": M, "by_phase": {phase: M}}, M the mechanism figures of one phase.
    mechanisms: dict[str, Any] = field(default_factory=dict)
    breaker_inferred: list[dict[str, Any]] = field(default_factory=list)  # open intervals
    attempt_timeline: list[dict[str, Any]] = field(default_factory=list)  # one row a second
    drilldown: list[dict[str, Any]] = field(default_factory=list)  # {request, attempts}
    drilldown_omitted: int = 0
    # LLM runs (chaos.llm.analysis): provider journals joined by request id and the token
    # figures: {providers, journal, attempts, matched, whole, by_phase, drilldown}; {} when
    # the run had no LLM provider and no LLM record.
    llm: dict[str, Any] = field(default_factory=dict)
    # One row per second with LLM traffic: tokens_per_s, ttft_p50_ms, ttft_p95_ms, itl_p99_ms.
    llm_timeline: list[dict[str, Any]] = field(default_factory=list)
    # TLS runs (chaos.verdict.tls_figures): handshakes, their time's p50/p95/p99/max and the
    # failures by reason, {whole, by_phase, outside_phases}; {} when no request used TLS.
    tls: dict[str, Any] = field(default_factory=dict)
    # One row per second with a handshake: handshakes, failed, failures (by reason).
    tls_timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def failed_assertions(self) -> list[AssertionResult]:
        return [a for a in self.assertions if not a.passed]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        """The inverse of to_dict (a result.json read back); unknown keys are ignored."""
        nested: dict[str, type] = {"phases": PhaseWindow, "faults": FaultRecord,
                                   "phase_stats": PhaseStats, "assertions": AssertionResult,
                                   "breaker_transitions": BreakerTransition,
                                   "score_terms": ScoreTerm}
        names = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                continue
            if key in nested and isinstance(value, list):
                item_type = nested[key]
                allowed = {f.name for f in fields(item_type)}
                value = [item_type(**{k: v for k, v in item.items() if k in allowed})
                         for item in value]
            elif key in ("breaker", "upstream") and isinstance(value, list):
                value = [(float(t), float(v)) for t, v in value]
            elif key in _SINGLE and isinstance(value, dict):
                allowed = {f.name for f in fields(_SINGLE[key])}
                value = _SINGLE[key](**{k: v for k, v in value.items() if k in allowed})
            kwargs[key] = value
        return cls(**kwargs)


_SINGLE: dict[str, type] = {"environment_error": PartFailure, "recovery": Recovery}
