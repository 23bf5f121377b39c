"""Hand-written parts of the result.json schema: bounds, the evidence and the regression.

The rule: whatever the schema accepts, the renderers can draw. So every number has a
range the charts' arithmetic survives (no overflow to inf, no loop over a 1e300-second
axis), and every key a template or chart reads is typed. Keys nobody reads stay open
(additionalProperties), so a newer writer's extra evidence does not make a file unreadable.
"""

from __future__ import annotations

from typing import Any

MAX_NUMBER = 1e15  # counts, latencies in ms, rates: far above anything measured
MAX_SECONDS = 1e7  # about 115 days: longer than any run (a phase is at most 7 days)

NUMBER: dict[str, Any] = {"type": "number", "minimum": -MAX_NUMBER, "maximum": MAX_NUMBER}
INTEGER: dict[str, Any] = {"type": "integer", "minimum": -MAX_NUMBER, "maximum": MAX_NUMBER}
SECONDS: dict[str, Any] = {"type": "number", "minimum": -MAX_SECONDS, "maximum": MAX_SECONDS}
COUNT: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": MAX_NUMBER}
STRING: dict[str, Any] = {"type": "string"}
STRINGS: dict[str, Any] = {"type": "array", "items": STRING}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """schema, or null (one type list, so an error names both: "expected object or null")."""
    return {**schema, "type": [schema["type"], "null"]}


def _obj(required: list[str], closed: bool = False, **props: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "required": required, "properties": props}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _rows(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


SAMPLES: dict[str, Any] = _rows({"type": "array", "prefixItems": [SECONDS, NUMBER],
                                 "minItems": 2, "maxItems": 2})

HOP = _obj(["hop", "a", "vantage", "packets", "syn", "fin", "rst", "rst_by"],
           hop=STRING, a=STRING, b=STRING, vantage=STRING, packets=COUNT, syn=COUNT,
           fin=COUNT, rst=COUNT, rst_by={"type": "object", "additionalProperties": COUNT})
CAPTURE = _obj(
    [], findings=STRINGS, notes=STRINGS, hops=_rows(HOP),
    seconds=_rows(_obj(["t", "hop", "rst"], t={**INTEGER, "minimum": -MAX_SECONDS,
                                               "maximum": MAX_SECONDS},
                       hop=STRING, syn=COUNT, fin=COUNT, rst=COUNT)),
    files=_rows(_obj(["file"], file=STRING, packets=COUNT, bytes=COUNT)),
    limits=_obj([], ss_interval=NUMBER, max_mb=NUMBER, max_seconds=NUMBER),
    services=STRINGS, names={"type": "object", "additionalProperties": STRING},
    rsts_total=COUNT,
)
SAMPLE = _obj(
    ["t", "outcome"], t=SECONDS, outcome=STRING, detail=STRING, name=nullable(STRING),
    status={"type": ["integer", "string", "null"]}, latency_ms=nullable(NUMBER),
    gateway_logs=STRINGS, packets=STRINGS, nearby_rsts=STRINGS, match=nullable(STRING),
    match_note=STRING,
    connection=nullable(_obj(["local", "remote"], local=STRING, remote=STRING,
                             client_port={"type": ["integer", "null"]})),
)
EVIDENCE: dict[str, Any] = {
    **_obj([], error=STRING, capture=nullable(CAPTURE), events_cut={"type": "boolean"},
           failed_total=COUNT, samples=_rows(SAMPLE),
           sockets=_rows(_obj(["t", "service", "states"], t=SECONDS, service=STRING,
                              states={"type": "object", "additionalProperties": COUNT})),
           events=_rows(_obj(["t", "source", "kind", "text"], t=SECONDS, source=STRING,
                             kind=STRING, text=STRING))),
    "description": "What the run saw besides counts (chaos.capture.evidence): the event "
                   "table, failed-request samples and, with capture on, packets and sockets.",
}


def regression(check: dict[str, Any]) -> dict[str, Any]:
    """`chaos run --baseline`: the comparison; `check` is the BaselineCheck schema."""
    return nullable({
        **_obj(["baseline", "tolerance", "regressed", "checks"], closed=True,
               baseline=STRING, baseline_run_id=STRING, tolerance=NUMBER,
               regressed={"type": "boolean"}, checks=_rows(check)),
        "description": "The comparison with a baseline run (chaos.verdict.baseline).",
    })
WITNESS: dict[str, Any] = {
    **_obj([], kind={"enum": ["tap", "journal", "none"]}, sources=STRINGS, attempts=COUNT,
           dropped=COUNT, connections={"type": "object", "additionalProperties": COUNT},
           note=STRING, matched=COUNT, unmatched=COUNT, no_id=COUNT),
    "description": "What saw the gateway's upstream attempts (chaos.witness): the proxy's tap, "
                   "the backend's journal or none, its sources, the attempts it read and "
                   "those it lost (dropped), connections by protocol (tls and unknown ones "
                   "counted only), why (note), and how many attempts joined a client request "
                   "(matched), carried an id no client sent (unmatched) or none (no_id). "
                   "Empty in results written before the witness.",
}

# What the join of client records with attempts proved (chaos.witness.analysis)
_SHARE = nullable({"type": "number", "minimum": 0, "maximum": MAX_NUMBER})
_SECONDS_OR_NULL = nullable(SECONDS)
MECHANISM = _obj(
    ["requests", "attempts"], requests=COUNT, attempts=COUNT, client_attempts=COUNT,
    attempts_per_request=_SHARE, amplification=_SHARE, max_attempts=COUNT, retried=COUNT,
    ok_after_retry=COUNT, non_idempotent_retries=COUNT, abandoned=COUNT,
    upstream_timeout_s=_SECONDS_OR_NULL, upstream_timeout_max_s=_SECONDS_OR_NULL, shed=COUNT,
    shed_share=nullable({"type": "number", "minimum": 0, "maximum": 1}), hedged=COUNT,
    retry_after=_obj([], after_429=COUNT, honoured=COUNT, violations=COUNT,
                     min_gap_s=_SECONDS_OR_NULL))
MECHANISMS: dict[str, Any] = {
    **_obj([], whole=MECHANISM, by_phase={"type": "object", "additionalProperties": MECHANISM}),
    "description": "Mechanisms inferred from client records joined with upstream attempts "
                   "(chaos.witness): the whole run and each phase. Empty without a witness.",
}
BREAKER_INFERRED: dict[str, Any] = _rows(_obj(
    ["start", "end"], start=SECONDS, end=SECONDS, closed_at=_SECONDS_OR_NULL,
    probes=_rows(SECONDS), phase=STRING))
ATTEMPT_TIMELINE: dict[str, Any] = _rows(_obj(
    ["t", "attempts"], t={**INTEGER, "minimum": -MAX_SECONDS, "maximum": MAX_SECONDS},
    attempts=COUNT,
    complete_2xx=COUNT, error_status=COUNT, abandoned=COUNT, failed=COUNT))
DRILLDOWN: dict[str, Any] = _rows(_obj(
    ["request", "attempts"], request={"type": "object"}, attempts=_rows({"type": "object"})))

# TLS handshakes as the clients saw them (chaos.verdict.tls_figures)
_MS_OR_NULL = nullable({"type": "number", "minimum": 0, "maximum": MAX_NUMBER})
TLS_FAILURES: dict[str, Any] = _rows(_obj(["outcome", "reason", "count"], closed=True,
                                          outcome=STRING, reason=STRING, count=COUNT))
TLS_TALLY = _obj(["handshakes", "completed", "failed", "failures"], handshakes=COUNT,
                 completed=COUNT, failed=COUNT, tls_p50_ms=_MS_OR_NULL, tls_p95_ms=_MS_OR_NULL,
                 tls_p99_ms=_MS_OR_NULL, tls_max_ms=_MS_OR_NULL, failures=TLS_FAILURES)
TLS: dict[str, Any] = {
    **_obj([], whole=TLS_TALLY, by_phase={"type": "object", "additionalProperties": TLS_TALLY},
           outside_phases=COUNT),
    "description": "TLS handshakes the clients ran (chaos.verdict.tls_figures), the whole "
                   "run and each phase: handshakes (completed + failed), p50/p95/p99/max of "
                   "the completed ones' time (ms), failures by outcome and reason (a "
                   "tls_handshake_failed record's detail, or a reset/close during the "
                   "handshake); outside_phases: handshakes in warm-up or cool-down. Empty "
                   "when no request used TLS.",
}
TLS_TIMELINE: dict[str, Any] = _rows({
    **_obj(["t", "handshakes", "failed", "failures"],
           t={"type": "integer", "minimum": 0, "maximum": MAX_SECONDS}, handshakes=COUNT,
           failed=COUNT, failures=TLS_FAILURES),
    "description": "One second with a TLS handshake (the requests started in it): "
                   "handshakes, failures and the failures by reason.",
})
