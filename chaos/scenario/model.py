"""The typed scenario: what a YAML file means once it has been validated.

Models forbid unknown keys so that a typo fails loudly instead of silently
turning a fault off.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from chaos.scenario.units import ComparisonField, Duration

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
TOXIC_TYPES = ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer",
               "limit_data", "noop")
CONTAINER_ACTIONS = ("kill", "start", "stop", "restart", "pause", "unpause")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Service(Model):
    """A container of the system under test (gateway, backend, ...)."""

    build: str | None = Field(None, description="folder with a Dockerfile, relative to the project")
    image: str | None = Field(None, description="an image present locally")
    port: int = Field(ge=1, le=65535, description="the port the service listens on")
    health: str | None = Field("/healthz", pattern=r"^/", description="HTTP health path")
    env: dict[str, str | int | float | bool] = Field(default_factory=dict)
    memory: str = Field("512m", pattern=r"^\d+[kmg]$")
    cpus: float = Field(1.0, gt=0, le=64)
    publish: bool = Field(False, description="publish the port to 127.0.0.1 (load targets are)")

    @model_validator(mode="after")
    def _one_source(self) -> Service:
        if (self.build is None) == (self.image is None):
            raise ValueError("give exactly one of build or image")
        return self

    def env_strings(self) -> dict[str, str]:
        return {k: _env_text(v) for k, v in self.env.items()}


def _env_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


class ProxySpec(Model):
    """A Toxiproxy proxy: clients of `upstream` connect through it."""

    upstream: str = Field(pattern=r"^[a-z][a-z0-9_-]*:\d{1,5}$", description="service:port")


class Toxic(Model):
    type: Literal["latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer",
                  "limit_data", "noop"]
    stream: Literal["upstream", "downstream"] = "downstream"
    toxicity: float = Field(1.0, ge=0.0, le=1.0)
    attributes: dict[str, int] = Field(default_factory=dict)
    name: str | None = Field(None, pattern=NAME_PATTERN)


class ToxicFault(Model):
    """A toxic on a proxy for the length of the phase."""

    proxy: str
    toxic: Toxic
    redraw_every: Duration | None = Field(
        None, description="remove and add the toxic again this often, so long-lived "
        "keep-alive connections draw their toxicity anew (a pool cannot settle on clean ones)")

    def describe(self) -> str:
        attrs = ", ".join(f"{k}={v}" for k, v in self.toxic.attributes.items())
        share = "" if self.toxic.toxicity == 1 else f" toxicity={self.toxic.toxicity:g}"
        again = f" redrawn every {self.redraw_every:g}s" if self.redraw_every else ""
        return f"{self.toxic.type}({attrs}) {self.toxic.stream} on proxy {self.proxy}{share}{again}"


class ContainerFault(Model):
    """A container action at the phase start (kill, start, stop, restart, pause, unpause)."""

    container: str
    action: Literal["kill", "start", "stop", "restart", "pause", "unpause"]

    def describe(self) -> str:
        return f"{self.action} container {self.container}"


def _fault_kind(value: Any) -> str | None:
    """Pick the fault family by its keys so errors speak of one family, not both."""
    if isinstance(value, ToxicFault | ContainerFault):
        return type(value).__name__
    if isinstance(value, dict):
        if "container" in value or "action" in value:
            return "ContainerFault"
        if "proxy" in value or "toxic" in value:
            return "ToxicFault"
    return None


Fault = Annotated[
    Annotated[ToxicFault, Tag("ToxicFault")] | Annotated[ContainerFault, Tag("ContainerFault")],
    Discriminator(
        _fault_kind, custom_error_type="fault_kind",
        custom_error_message="a fault is either {proxy, toxic} or {container, action}",
    ),
]


class Phase(Model):
    name: str = Field(pattern=NAME_PATTERN)
    duration: Duration
    faults: list[Fault] = Field(default_factory=list)


class Request(Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_./-]{1,60}$")
    method: Literal["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] = "GET"
    path: str = Field(pattern=r"^/")
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(None, alias="json")
    weight: int = Field(1, ge=1, le=1000)


class Load(Model):
    target: str
    users: int = Field(10, ge=1, le=5000)
    spawn_rate: float = Field(10.0, gt=0, le=5000)
    timeout: Duration = 5.0
    connect_timeout: Duration = 2.0
    wait: Duration = Field(0.05, description="pause of each user between its requests")
    retry_header: str = "X-Gateway-Retries"
    requests: list[Request] = Field(min_length=1)


class BreakerProbe(Model):
    """Where the gateway exposes its circuit-breaker state (Prometheus text)."""

    service: str
    path: str = Field("/metrics", pattern=r"^/")
    metric: str = "gateway_breaker_state"
    open_value: float = 1.0
    interval: Duration = 0.25


class CounterProbe(Model):
    """A counter of requests that reached the upstream (JSON field or Prometheus metric)."""

    service: str
    path: str = Field("/stats", pattern=r"^/")
    field: str | None = Field("total", description="top-level JSON field holding the count")
    metric: str | None = Field(None, description="Prometheus metric name instead of a JSON field")
    interval: Duration = 0.5


class Probes(Model):
    breaker: BreakerProbe | None = None
    upstream_requests: CounterProbe | None = None


class BreakerAssertion(Model):
    opens_within: Duration | None = None
    closes_within: Duration | None = None
    half_opens_after: Duration | None = None
    fails_fast_under: ComparisonField | None = None


class Assertion(Model):
    """Bounds on what clients saw in one phase (or the whole run when phase is omitted)."""

    phase: str | None = None
    min_requests: int = Field(1, ge=0)
    success_rate: ComparisonField | None = None
    error_rate: ComparisonField | None = None
    resets: ComparisonField | None = None
    refused: ComparisonField | None = None
    timeouts: ComparisonField | None = None
    closed: ComparisonField | None = None
    graceful_errors: ComparisonField | None = None
    ok_after_retry: ComparisonField | None = None
    truncated: ComparisonField | None = None
    retry_amplification: ComparisonField | None = None
    p50: ComparisonField | None = None
    p95: ComparisonField | None = None
    p99: ComparisonField | None = None
    max_latency: ComparisonField | None = None
    breaker: BreakerAssertion | None = None
    recovers_within: Duration | None = None
    recovery_success_rate: float = Field(0.95, gt=0, le=1)


class Scenario(Model):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    services: dict[str, Service] = Field(min_length=1)
    proxies: dict[str, ProxySpec] = Field(default_factory=dict)
    load: Load
    phases: list[Phase] = Field(min_length=1)
    probes: Probes = Field(default_factory=Probes)
    assertions: list[Assertion] = Field(default_factory=list)
    confidence: float = Field(0.95, ge=0.5, lt=1.0, description="of the intervals verdicts use")

    def total_duration(self) -> float:
        return sum(p.duration for p in self.phases)
