"""The LLM assertion keys' models (fields of Assertion in chaos.scenario.model).

```yaml
assertions:
  - phase: fault
    ttft: {p95: "< 2s"}             # time to the first content token, streamed requests
    inter_token: {p99: "< 500ms"}   # gaps between content tokens, every streamed request
    fallback_used: "> 0"            # share of successes served by another provider than the first tried
    served_by: {provider-b: ">= 0.9"}   # share of successes each provider served
    retry_after_honoured: true      # re-attempts after a 429/503 Retry-After waited that long
    no_retry_on: [400]              # no request re-attempted after a provider answered these
    status: {"429": "> 0"}          # client responses with that HTTP status
    retry_after_on_429: ">= 1"      # share of the gateway's 429s to clients with Retry-After
```

ttft, inter_token, served_by, fallback_used, retry_after_honoured and no_retry_on are
judged by chaos.verdict.llm_checks from the load's LLM records and the providers' journals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chaos.scenario.units import MAX_DURATION_S, ComparisonField, shown

if TYPE_CHECKING:
    from chaos.scenario.model import Scenario
    from chaos.scenario.yaml_marks import MarkedDocument

QUANTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}


class TokenLatencyBound(BaseModel):
    """Percentile bounds on a token latency (a number without unit means ms)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    p50: ComparisonField | None = None
    p95: ComparisonField | None = None
    p99: ComparisonField | None = None
    max: ComparisonField | None = None

    @model_validator(mode="after")
    def _bounds(self) -> TokenLatencyBound:
        given = self.bounds()
        if not given:
            raise ValueError("name at least one of p50, p95, p99, max")
        for key, bound in given.items():
            seconds = bound.value if bound.is_duration else bound.value / 1000
            if bound.value < 0:
                raise ValueError(f"{key}: a bound of {shown(bound.text)} can never be met: "
                                 "latencies are never negative")
            if seconds > MAX_DURATION_S:
                raise ValueError(f"{key}: a latency bound of {shown(bound.text)} is out of "
                                 "range (at most 7 days; a number without unit means ms)")
        return self

    def bounds(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in QUANTILES if getattr(self, k) is not None}


STATUS_KEY = r"^[1-5][0-9][0-9]$"
ServedBy = dict[str, ComparisonField]
StatusCounts = dict[str, ComparisonField]
NoRetryOn = list[int]

NO_RETRY_ON_FIELD: Any = Field(
    None, max_length=20, description="HTTP statuses after which no request may be "
    "re-attempted on any provider (the provider journals), e.g. [400]")


PROVIDER_BUILD = "docker/llm-provider"
JOURNAL_BOUNDS = ("fallback_used", "served_by", "retry_after_honoured", "no_retry_on")


def provider_names(scenario: Scenario) -> dict[str, str]:
    """Service name -> provider name (its llm.name, default the service name) of every LLM
    provider: a service with `llm:`, or one built from docker/llm-provider."""
    found = {}
    for name, service in scenario.services.items():
        spec = getattr(service, "llm", None)
        build = (service.build or "").rstrip("/")
        if spec is not None:
            found[name] = str(getattr(spec, "name", None) or name)
        elif build == PROVIDER_BUILD or build.endswith("/" + PROVIDER_BUILD):
            found[name] = name
    return found


def check_llm_bounds(scenario: Scenario, doc: MarkedDocument) -> None:
    """served_by names providers the scenario has; journal bounds need a provider."""
    known = sorted(set(provider_names(scenario).values()))
    for i, assertion in enumerate(scenario.assertions):
        for key in JOURNAL_BOUNDS:
            if getattr(assertion, key) is not None and not known:
                raise doc.error(("assertions", i, key), f"{key} is read from the LLM "
                                "providers' journals, and no service has llm: (or build: "
                                f"{PROVIDER_BUILD})")
        for name in assertion.served_by or {}:
            if name not in known:
                raise doc.error(("assertions", i, "served_by", name),
                                f"unknown provider {shown(name)} (known: {', '.join(known)})")
