"""Gateway counters rendered in the Prometheus text format.

Hand-rolled instead of prometheus_client to keep the image to aiohttp + tenacity; the
verdict code only needs a handful of counters and one gauge.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# isort: split
# Sibling modules: the Dockerfile copies them flat into /app next to app.py.
from breaker import CircuitBreaker

BREAKER_STATES = ("closed", "open", "half_open")


@dataclass
class GatewayMetrics:
    """Process-wide counters; mutated only from the event loop thread."""

    requests_by_code: Counter[str] = field(default_factory=Counter)
    upstream_attempts: int = 0
    retries: int = 0
    upstream_failures: Counter[str] = field(default_factory=Counter)
    breaker_rejections: int = 0
    upstream_backoffs: int = 0
    shed: int = 0
    in_flight: int = 0
    fallbacks: Counter[str] = field(default_factory=Counter)  # by error class
    provider_skips: Counter[str] = field(default_factory=Counter)  # cooldown | breaker
    tpm_rejections: int = 0

    def render(self, breaker: CircuitBreaker,
               providers: list[tuple[str, CircuitBreaker]] | None = None) -> str:
        """The /metrics body: state gauge first, then counters, each with HELP/TYPE.

        providers: (name, breaker) of every provider in the fallback chain, when there
        is more than the primary (whose breaker gateway_breaker_state is)."""
        lines: list[str] = []
        _family(lines, "gateway_breaker_state", "gauge",
                "Circuit breaker state: 0 closed, 1 open, 2 half_open.", int(breaker.state))
        if providers and len(providers) > 1:
            _family(lines, "gateway_provider_breaker_state", "gauge",
                    "Each fallback-chain provider's breaker: 0 closed, 1 open, 2 half_open.",
                    [(f'provider="{name}"', int(each.state)) for name, each in providers])
        _family(lines, "gateway_breaker_transitions_total", "counter",
                "Circuit breaker transitions by target state.",
                [(f'to="{state}"', breaker.transitions[state]) for state in BREAKER_STATES])
        _family(lines, "gateway_requests_total", "counter",
                "Client requests answered, by status code (reset = connection reset).",
                _by("code", self.requests_by_code))
        _family(lines, "gateway_upstream_attempts_total", "counter",
                "Calls made to the upstream, retries included.", self.upstream_attempts)
        _family(lines, "gateway_retries_total", "counter", "Upstream calls that were retries.",
                self.retries)
        _family(lines, "gateway_upstream_failures_total", "counter",
                "Failed upstream calls by kind (connect, timeout, status, midstream).",
                _by("kind", self.upstream_failures))
        _family(lines, "gateway_breaker_rejections_total", "counter",
                "Requests refused with 503 because the breaker was open.",
                self.breaker_rejections)
        _family(lines, "gateway_upstream_backoffs_total", "counter",
                "Requests answered 429 locally while the upstream's Retry-After ran.",
                self.upstream_backoffs)
        _family(lines, "gateway_shed_total", "counter",
                "Requests refused with 503 above GATEWAY_MAX_CONCURRENCY.", self.shed)
        _family(lines, "gateway_fallbacks_total", "counter",
                "Requests moved on to the next provider, by the failure's class.",
                _by("class", self.fallbacks))
        _family(lines, "gateway_provider_skips_total", "counter",
                "Providers passed over without a call (Retry-After cooldown, open breaker).",
                _by("reason", self.provider_skips))
        _family(lines, "gateway_tpm_rejections_total", "counter",
                "Requests answered 429 by the gateway's own GATEWAY_TPM limit.",
                self.tpm_rejections)
        _family(lines, "gateway_in_flight", "gauge", "Proxied requests in progress.",
                self.in_flight)
        return "\n".join(lines) + "\n"


def _by(label: str, counts: Counter[str]) -> list[tuple[str, int]]:
    """A counter's samples by one label, in label order."""
    return [(f'{label}="{key}"', count) for key, count in sorted(counts.items())]


def _family(lines: list[str], name: str, kind: str, help_text: str,
            samples: int | list[tuple[str, int]]) -> None:
    """One metric family: HELP, TYPE, then its one sample or one per label set."""
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")
    if isinstance(samples, int):
        lines.append(f"{name} {samples}")
    else:
        lines.extend(f"{name}{{{labels}}} {value}" for labels, value in samples)
