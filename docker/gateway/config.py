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


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    value = default if raw is None or raw.strip() == "" else int(raw)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def _seconds(env: Mapping[str, str], name: str, default_ms: int) -> float:
    return _positive_int(env, name, default_ms) / 1000


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewayConfig:
        env = os.environ if env is None else env
        resilience = _switch(env, "GATEWAY_RESILIENCE")
        retries = resilience and _switch(env, "GATEWAY_RETRIES")
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
        )
