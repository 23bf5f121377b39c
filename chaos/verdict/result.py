"""The result of one run: everything the reports render, as plain data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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
    phase: str
    description: str
    start: float
    end: float | None = None
    error: str | None = None


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

    def __post_init__(self) -> None:
        if not self.status:
            self.status = "pass" if self.passed else "fail"


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

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def failed_assertions(self) -> list[AssertionResult]:
        return [a for a in self.assertions if not a.passed]
