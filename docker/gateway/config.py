"""Gateway configuration from the environment.

Every resilience mechanism has an on/off switch so a scenario can prove that it fails a
gateway lacking that mechanism; GATEWAY_RESILIENCE=off turns all of them off at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

ON_VALUES = frozenset({"on", "1", "true", "yes"})
OFF_VALUES = frozenset({"off", "0", "false", "no"})


def _switch(env: Mapping[str, str], name: str, default: bool = True) -> bool:
    """Parse an on/off switch; a typo must fail loudly, not silently flip a mechanism."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ON_VALUES:
        return True
    if value in OFF_VALUES:
        return False
    raise ValueError(f"{name} must be on or off, got {raw!r}")


def _stream_errors(env: Mapping[str, str]) -> tuple[bool, bool]:
    """GATEWAY_STREAM_ERRORS: on/off, or swallow (the mutant of a gateway that drops a
    provider's in-band error event): (stream errors enabled, swallow)."""
    raw = env.get("GATEWAY_STREAM_ERRORS")
    if raw is not None and raw.strip().lower() == "swallow":
        return False, True
    return _switch(env, "GATEWAY_STREAM_ERRORS"), False


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    value = default if raw is None or raw.strip() == "" else int(raw)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


DEFAULT_MAX_CONCURRENCY = 256


def _limit(env: Mapping[str, str], name: str, default: int) -> int:
    """A positive limit, or 0 for none when set to off."""
    raw = env.get(name)
    if raw is not None and raw.strip().lower() in OFF_VALUES:
        return 0
    return _positive_int(env, name, default)


def _seconds(env: Mapping[str, str], name: str, default_ms: int) -> float:
    return _positive_int(env, name, default_ms) / 1000


def _optional_seconds(env: Mapping[str, str], name: str) -> float:
    """A duration in ms, or 0.0 (not set, or off): the mechanism is not used."""
    raw = env.get(name)
    if raw is None or raw.strip() == "" or raw.strip().lower() in OFF_VALUES:
        return 0.0
    return _positive_int(env, name, 1) / 1000


# Error classes a provider failure falls into (GATEWAY_FALLBACK_ON picks which move a
# request on to the next provider). connection is not in the default: a reset after the
# request was sent may have been processed, and a refused one is also a dead primary the
# breaker handles; turn it on where that is fine.
FALLBACK_CLASSES = frozenset({"rate_limit", "overloaded", "server_error", "timeout",
                              "first_token_timeout", "connection", "content_policy",
                              "bad_request"})
DEFAULT_FALLBACK_ON = ("rate_limit", "overloaded", "server_error", "timeout",
                       "first_token_timeout", "content_policy")


def _fallback_urls(env: Mapping[str, str]) -> tuple[str, ...]:
    """FALLBACK_URLS: ordered, comma-separated base URLs (http://host:port)."""
    urls = tuple(u.strip().rstrip("/") for u in env.get("FALLBACK_URLS", "").split(",")
                 if u.strip())
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"FALLBACK_URLS: {url!r} is not an http:// base URL")
    return urls


def _fallback_on(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("GATEWAY_FALLBACK_ON")
    if raw is None or raw.strip() == "":
        return DEFAULT_FALLBACK_ON
    classes = frozenset(c.strip().lower() for c in raw.split(",") if c.strip())
    unknown = classes - FALLBACK_CLASSES
    if unknown:
        raise ValueError(f"GATEWAY_FALLBACK_ON: unknown class(es) {sorted(unknown)}; "
                         f"known: {sorted(FALLBACK_CLASSES)}")
    return tuple(sorted(classes))


@dataclass(frozen=True)
class GatewayConfig:
    """Effective configuration; logged at startup so every run states what it tested."""

    host: str
    port: int
    upstream_url: str
    try_timeout_s: float
    total_timeout_s: float
    connect_timeout_s: float
    max_tries: int
    backoff_s: float
    breaker_failures: int
    breaker_open_s: float
    max_body_bytes: int
    pool_size: int
    retries_enabled: bool
    breaker_enabled: bool
    error_mapping_enabled: bool
    # Switches added for the scenario library: each one is a mechanism a scenario proves.
    timeouts_enabled: bool = True  # off: wait for the upstream as long as it takes
    stream_errors_enabled: bool = True  # off: a stream cut mid-way ends as if complete
    stream_errors_swallowed: bool = False  # swallow: off, and provider error events dropped
    long_streams_enabled: bool = True  # off: the total timeout also bounds the body
    streaming_enabled: bool = True  # off: buffer the whole body within the per-try timeout
    retry_after_enabled: bool = True  # off: ignore 429 Retry-After and retry 429s at once
    body_drain_enabled: bool = True  # off: answer 413 by resetting the connection
    client_deadline_enabled: bool = True  # off: ignore the client's X-Request-Timeout-Ms
    max_concurrency: int = 0  # 0: unlimited; else in-flight requests above it get 503
    # Provider fallback chains (issue 20): UPSTREAM_URL first, then FALLBACK_URLS in order.
    fallback_urls: tuple[str, ...] = ()
    fallback_enabled: bool = True  # off: the primary only, its error goes to the client
    fallback_on: tuple[str, ...] = DEFAULT_FALLBACK_ON  # a tuple: the startup log is JSON
    first_token_timeout_s: float = 0.0  # 0: only the idle timeout bounds the first token
    stream_idle_timeout_s: float = 0.0  # 0: the per-try timeout is the body's idle timeout
    llm_retries_enabled: bool = False  # on: LLM inference POSTs retried like idempotent ones
    tpm: int = 0  # the gateway's own tokens-per-minute limit (prompt + max_tokens); 0: none

    @property
    def body_idle_timeout_s(self) -> float:
        return self.stream_idle_timeout_s or self.try_timeout_s

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewayConfig:
        env = os.environ if env is None else env
        resilience = _switch(env, "GATEWAY_RESILIENCE")
        retries = resilience and _switch(env, "GATEWAY_RETRIES")
        stream_errors, swallowed = _stream_errors(env)
        return cls(
            host=env.get("HOST", "0.0.0.0"),
            port=_positive_int(env, "PORT", 8000),
            upstream_url=env.get("UPSTREAM_URL", "http://127.0.0.1:8080").rstrip("/"),
            try_timeout_s=_seconds(env, "GATEWAY_TRY_TIMEOUT_MS", 2000),
            total_timeout_s=_seconds(env, "GATEWAY_TOTAL_TIMEOUT_MS", 5000),
            connect_timeout_s=_seconds(env, "GATEWAY_CONNECT_TIMEOUT_MS", 1000),
            max_tries=_positive_int(env, "GATEWAY_MAX_TRIES", 3) if retries else 1,
            backoff_s=_seconds(env, "GATEWAY_BACKOFF_MS", 50),
            breaker_failures=_positive_int(env, "GATEWAY_BREAKER_FAILURES", 5),
            breaker_open_s=_seconds(env, "GATEWAY_BREAKER_OPEN_MS", 2000),
            max_body_bytes=_positive_int(env, "GATEWAY_MAX_BODY_BYTES", 10 * 1024 * 1024),
            pool_size=_positive_int(env, "GATEWAY_POOL_SIZE", 100),
            retries_enabled=retries,
            breaker_enabled=resilience and _switch(env, "GATEWAY_BREAKER"),
            error_mapping_enabled=resilience and _switch(env, "GATEWAY_ERROR_MAPPING"),
            timeouts_enabled=resilience and _switch(env, "GATEWAY_TIMEOUTS"),
            stream_errors_enabled=resilience and stream_errors,
            stream_errors_swallowed=swallowed,
            long_streams_enabled=resilience and _switch(env, "GATEWAY_LONG_STREAMS"),
            streaming_enabled=resilience and _switch(env, "GATEWAY_STREAMING"),
            retry_after_enabled=resilience and _switch(env, "GATEWAY_RETRY_AFTER"),
            body_drain_enabled=resilience and _switch(env, "GATEWAY_BODY_DRAIN"),
            client_deadline_enabled=resilience and _switch(env, "GATEWAY_CLIENT_DEADLINE"),
            max_concurrency=(_limit(env, "GATEWAY_MAX_CONCURRENCY", DEFAULT_MAX_CONCURRENCY)
                             if resilience else 0),
            fallback_urls=_fallback_urls(env),
            fallback_enabled=resilience and _switch(env, "GATEWAY_FALLBACK"),
            fallback_on=_fallback_on(env),
            first_token_timeout_s=(_optional_seconds(env, "GATEWAY_FIRST_TOKEN_TIMEOUT")
                                   if resilience and _switch(env, "GATEWAY_TIMEOUTS")
                                   else 0.0),  # GATEWAY_TIMEOUTS=off: no timeout at all
            stream_idle_timeout_s=_optional_seconds(env, "GATEWAY_STREAM_IDLE_TIMEOUT"),
            llm_retries_enabled=retries and _switch(env, "GATEWAY_LLM_RETRIES", default=False),
            tpm=_limit(env, "GATEWAY_TPM", 1) if resilience and env.get("GATEWAY_TPM") else 0,
        )
