"""The typed scenario: what a YAML file means once it has been validated.

Models forbid unknown keys so that a typo fails loudly instead of silently
turning a fault off.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from chaos.outcomes import COUNT_BOUNDS
from chaos.scenario.http_toxics import (
    HttpAbortAttributes,
    HttpLatencyAttributes,
    HttpResetAttributes,
    SseAttributes,
    SseCorruptAttributes,
    SseCutAttributes,
    SseErrorAttributes,
)
from chaos.scenario.llm_bounds import (
    NO_RETRY_ON_FIELD,
    STATUS_KEY,
    NoRetryOn,
    ServedBy,
    StatusCounts,
    TokenLatencyBound,
)
from chaos.scenario.llm_load import LlmRequest
from chaos.scenario.llm_provider import LlmRule, ProviderSpec
from chaos.scenario.units import (
    MAX_DURATION_S,
    ComparisonField,
    Duration,
    PollInterval,
    SnapshotInterval,
    Timeout,
    format_duration,
    shown,
)

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
TOXIC_TYPES = ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer",
               "limit_data", "noop")
CONTAINER_ACTIONS = ("kill", "start", "stop", "restart", "pause", "unpause")
# What `for` undoes each action with; actions that bring a container back are restores
UNDO_ACTIONS = {"kill": "start", "stop": "start", "pause": "unpause"}
RESTORING_ACTIONS = ("start", "unpause")


class Model(BaseModel):
    """Strict: `users: true` is not 1 and `publish: 1` is not true; NaN and inf are no numbers."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, strict=True,
                              allow_inf_nan=False)


# An HTTP path: no whitespace or control characters (CR/LF would split the request)
HTTP_PATH = r"^/[^\x00-\x20\x7f]*$"
# A header name is an RFC 9110 token; a value is visible latin-1 text, spaces and tabs
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$"
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")
METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$"


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")


class Service(Model):
    """A container of the system under test (gateway, backend, ...)."""

    build: str | None = Field(None, pattern=r"^[^\x00-\x1f\x7f]{1,1024}$",
                              description="folder with a Dockerfile, relative to the project; "
                              "it must lie in the scenario's project or a --build-root")
    image: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$",
                              description="an image present locally")
    url: str | None = Field(None, pattern=r"^https?://[A-Za-z0-9.\[\]:-]{1,255}/?$",
                            description="a service already running (the external stack): "
                            "where the harness reaches it, e.g. http://127.0.0.1:8080")
    port: int = Field(ge=1, le=65535, description="the port the service listens on "
                      "(for url: services, taken from the url when not given)")
    health: str | None = Field("/healthz", pattern=HTTP_PATH, description="HTTP health path")
    env: dict[str, str | int | float | bool] = Field(default_factory=dict)
    memory: str = Field("512m", pattern=r"^[0-9]{1,12}[kmg]$")
    cpus: float = Field(1.0, ge=0.01, le=64)
    publish: bool = Field(False, description="publish the port to 127.0.0.1 (load targets are)")
    depends_on: list[str] = Field(
        default_factory=list, max_length=50,
        description="services that must be healthy before this one starts")
    llm: ProviderSpec | None = Field(None, description="the fault-scriptable LLM provider's "
                                     "script (build: docker/llm-provider; passed as env "
                                     "CHAOS_LLM_SCRIPT)")
    tls: bool = Field(False, description="serve TLS with a certificate of the run's own CA "
                      "(its folder mounted read-only, TLS_DIR in the environment; reloaded on "
                      "SIGHUP); references to it (${service.x}, ${proxy.x}) become https://")

    @field_validator("memory")
    @classmethod
    def _memory_in_range(cls, value: str) -> str:
        amount = int(value[:-1]) * {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[value[-1]]
        if not 16 << 20 <= amount <= 256 << 30:
            raise ValueError(f"memory {shown(value)} is out of range (16m to 256g)")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if not _ENV_NAME.match(key):
                raise ValueError(f"environment variable name {shown(key)} is not valid "
                                 "(letters, digits and _ . -, not starting with a digit)")
            if isinstance(item, str) and "\0" in item:
                raise ValueError(f"the value of {key} contains a NUL character")
        return value

    @model_validator(mode="before")
    @classmethod
    def _port_from_url(cls, data: Any) -> Any:
        """A running service's port is the one in its url."""
        if isinstance(data, dict) and isinstance(data.get("url"), str) and "port" not in data:
            return {**data, "port": url_port(data["url"])}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> Service:
        if sum(x is not None for x in (self.build, self.image, self.url)) != 1:
            raise ValueError("give exactly one of build, image or url")
        return self

    def env_strings(self) -> dict[str, str]:
        return {k: _env_text(v) for k, v in self.env.items()}


def url_port(url: str) -> int:
    """The port of an http(s) url (80/443 when it names none; 0 when it is not valid)."""
    from urllib.parse import urlsplit

    try:
        parsed = urlsplit(url)
        return parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        return 0


def _env_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


class ProxySpec(Model):
    """A Toxiproxy proxy: clients of `upstream` connect through it."""

    upstream: str = Field(pattern=r"^[a-z][a-z0-9_-]*:[0-9]{1,5}$", description="service:port")
    listen: str | None = Field(None, pattern=r"^[0-9.]{7,15}:[0-9]{1,5}$",
                               description="external stack: the host:port the proxy listens "
                               "on (point your gateway's upstream at it); default a free port")


class ByteToxic(Model):
    """A Toxiproxy toxic: what every Toxiproxy server applies to a connection's bytes."""

    type: Literal["latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer",
                  "limit_data", "noop"]
    stream: Literal["upstream", "downstream"] = "downstream"
    toxicity: float = Field(1.0, ge=0.0, le=1.0)
    # ms, KB/s or bytes; at most 7 days of milliseconds (604,800,000)
    attributes: dict[str, Annotated[int, Field(ge=0, le=604_800_000)]] = Field(default_factory=dict)
    name: str | None = Field(None, pattern=NAME_PATTERN)

    @model_validator(mode="after")
    def _known_attributes(self) -> ByteToxic:
        """A misspelt attribute (`latncy: 500`) would silently make a toxic that does nothing."""
        known = TOXIC_ATTRIBUTES[self.type]
        for key in self.attributes:
            if key not in known:
                raise ValueError(f"{self.type} takes no attribute {shown(key)} (it takes: "
                                 f"{', '.join(known) or 'none'})")
        if self.type == "slicer" and self.attributes.get("average_size") == 0:
            raise ValueError("slicer average_size must be at least 1 (0 stalls the proxy)")
        return self

    def api_attributes(self) -> dict[str, Any]:
        return dict(self.attributes)


class _HttpToxic(Model):
    """An HTTP- or stream-aware toxic (chaos/scenario/http_toxics.py): the embedded server
    only; ``toxicity`` is drawn per matched request, ``stream`` is shown, not used."""

    stream: Literal["upstream", "downstream"] = "downstream"
    toxicity: float = Field(1.0, ge=0.0, le=1.0)
    name: str | None = Field(None, pattern=NAME_PATTERN)

    def api_attributes(self) -> dict[str, Any]:
        attributes: BaseModel = getattr(self, "attributes")  # noqa: B009 - each subclass types it
        return attributes.model_dump(exclude_none=True)


class HttpAbortToxic(_HttpToxic):
    type: Literal["http_abort"]
    attributes: HttpAbortAttributes = Field(
        default_factory=lambda: HttpAbortAttributes.model_validate({}))


class HttpResetToxic(_HttpToxic):
    type: Literal["http_reset"]
    attributes: HttpResetAttributes = Field(
        default_factory=lambda: HttpResetAttributes.model_validate({}))


class HttpLatencyToxic(_HttpToxic):
    type: Literal["http_latency"]
    attributes: HttpLatencyAttributes = Field(
        default_factory=lambda: HttpLatencyAttributes.model_validate({}))


class SseStallToxic(_HttpToxic):
    type: Literal["sse_stall"]
    attributes: SseAttributes = Field(
        default_factory=lambda: SseAttributes.model_validate({}))


class SseCutToxic(_HttpToxic):
    type: Literal["sse_cut"]
    attributes: SseCutAttributes = Field(
        default_factory=lambda: SseCutAttributes.model_validate({}))


class SseCorruptToxic(_HttpToxic):
    type: Literal["sse_corrupt"]
    attributes: SseCorruptAttributes = Field(
        default_factory=lambda: SseCorruptAttributes.model_validate({}))


class SseErrorToxic(_HttpToxic):
    type: Literal["sse_error"]
    attributes: SseErrorAttributes = Field(
        default_factory=lambda: SseErrorAttributes.model_validate({}))


_HTTP_TOXICS: dict[str, type[_HttpToxic]] = {
    "http_abort": HttpAbortToxic, "http_reset": HttpResetToxic,
    "http_latency": HttpLatencyToxic, "sse_stall": SseStallToxic, "sse_cut": SseCutToxic,
    "sse_corrupt": SseCorruptToxic, "sse_error": SseErrorToxic,
}


def _toxic_kind(value: Any) -> str:
    """The union member's tag: a class name, never a key a scenario could hold."""
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    cls = _HTTP_TOXICS.get(kind) if isinstance(kind, str) else None
    return cls.__name__ if cls is not None else "ByteToxic"


Toxic = Annotated[
    Annotated[ByteToxic, Tag("ByteToxic")] | Annotated[HttpAbortToxic, Tag("HttpAbortToxic")]
    | Annotated[HttpResetToxic, Tag("HttpResetToxic")]
    | Annotated[HttpLatencyToxic, Tag("HttpLatencyToxic")]
    | Annotated[SseStallToxic, Tag("SseStallToxic")] | Annotated[SseCutToxic, Tag("SseCutToxic")]
    | Annotated[SseCorruptToxic, Tag("SseCorruptToxic")]
    | Annotated[SseErrorToxic, Tag("SseErrorToxic")], Discriminator(_toxic_kind)]


TOXIC_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "latency": ("latency", "jitter"), "bandwidth": ("rate",), "slow_close": ("delay",),
    "timeout": ("timeout",), "reset_peer": ("timeout",),
    "slicer": ("average_size", "size_variation", "delay"), "limit_data": ("bytes",), "noop": (),
}


class Timed(Model):
    """When a fault acts inside its phase: from `at` (default its start), for `for` (default
    to its end), so that timing a kill or a short toxic needs no extra phase."""

    at: Duration | None = Field(None, description="start this long after the phase starts")
    for_: Timeout | None = Field(None, alias="for", description="remove it this long after "
                                 "it started (it must end within its phase)")

    def when(self) -> str:
        """' at +3s for 2s' (nothing when the fault spans its phase)."""
        text = f" at +{format_duration(self.at)}" if self.at else ""
        return text + (f" for {format_duration(self.for_)}" if self.for_ is not None else "")


class ToxicFault(Timed):
    """A toxic on a proxy for the length of the phase (or from `at`, for `for`)."""

    proxy: str
    toxic: Toxic
    redraw_every: PollInterval | None = Field(
        None, description="remove and add the toxic again this often, so long-lived "
        "keep-alive connections draw their toxicity anew (a pool cannot settle on clean ones)")

    def describe(self) -> str:
        attrs = ", ".join(f"{k}={v}" for k, v in self.toxic.api_attributes().items())
        share = "" if self.toxic.toxicity == 1 else f" toxicity={self.toxic.toxicity:g}"
        again = f" redrawn every {self.redraw_every:g}s" if self.redraw_every else ""
        return (f"{self.toxic.type}({attrs}) {self.toxic.stream} on proxy {self.proxy}{share}"
                f"{again}{self.when()}")


class ContainerFault(Timed):
    """A container action at the phase start or `at` into it (kill, start, stop, restart,
    pause, unpause); with `for`, kill and stop are undone by start, pause by unpause."""

    container: str
    action: Literal["kill", "start", "stop", "restart", "pause", "unpause"]

    def describe(self) -> str:
        return f"{self.action} container {self.container}{self.when()}"

    @property
    def restores(self) -> bool:
        """start and unpause bring a service back: a restore, not a fault."""
        return self.action in RESTORING_ACTIONS


NET_KINDS = ("firewall_reset", "blackhole", "packet_loss", "rate_limit")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)\s*$")
_RATE_BITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9,
              "bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9}


def parse_rate(value: Any) -> int:
    """'1mbit', '500kbit', '2mbps' (tc's units: bit = bits/s, bps = bytes/s) -> bits/s."""
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a rate like 1mbit, 500kbit or 2mbps, got {shown(value)}")
    bits = int(float(match.group(1)) * _RATE_BITS[match.group(2)])
    if not 8_000 <= bits <= 10_000_000_000:
        raise ValueError(f"rate {shown(value)} is out of range (8kbit to 10gbit)")
    return bits


class NetFault(Timed):
    """A firewall or link fault inside one service's network namespace, for its phase.

    Applied by a NET_ADMIN sidecar sharing the service's namespace (iptables, tc), so
    it also reaches traffic that no proxy sees: clients -> gateway, gateway -> anything.
    TCP only; loopback traffic is never touched.
    """

    service: str
    net: Literal["firewall_reset", "blackhole", "packet_loss", "rate_limit"]
    direction: Literal["ingress", "egress", "both"] | None = Field(
        None, description="packets arriving at (ingress) or leaving (egress) the service, "
        "or both; default ingress, and egress for rate_limit (what the service sends; "
        "ingress is shaped through an ifb device, both caps each direction at rate)")
    port: int | None = Field(None, ge=1, le=65535,
                             description="only connections to or from this TCP port "
                             "(source or destination port; rate_limit too)")
    peer: str | None = Field(None, description="only traffic with this service (its IP "
                             "on the run's network); rate_limit shapes only that traffic, "
                             "the rest passes unshaped")
    probability: float | None = Field(None, gt=0.0, le=1.0,
                                      description="share of matching packets hit (not "
                                      "rate_limit)")
    rate: str | None = Field(None, description="rate_limit: a tc rate such as 1mbit; "
                             "without peer or port it caps all the service's traffic in "
                             "that direction")

    @field_validator("rate")
    @classmethod
    def _rate_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)
        return value

    @property
    def flow(self) -> str:
        return self.direction or ("egress" if self.net == "rate_limit" else "ingress")

    def describe(self) -> str:
        parts = [f"{self.net} {self.flow} on {self.service}"]
        if self.port is not None:
            parts.append(f"port {self.port}")
        if self.peer is not None:
            parts.append(f"peer {self.peer}")
        if self.probability is not None:
            parts.append(f"probability={self.probability:g}")
        if self.rate is not None:
            parts.append(f"rate={self.rate}")
        return " ".join(parts) + self.when()


class LlmFault(Timed):
    """Rules installed on an LLM provider (a service with `llm:`) through its control API
    for the phase (or from `at`, for `for`); they go before the provider's script."""

    service: str
    llm: list[LlmRule] = Field(min_length=1, max_length=50)

    def describe(self) -> str:
        rules = "; ".join(rule.describe() for rule in self.llm)
        return f"llm rules on {self.service}: {rules}{self.when()}"


class TlsFault(Timed):
    """A service (one with tls: true) serves another certificate, or TLS up to an older
    version, for the phase (or from `at`, for `for`): its files are swapped and it is told
    to reload (SIGHUP), and swapped back at the end. No connection is dropped: the change
    takes the handshakes that follow it."""

    service: str
    tls: Literal["valid", "rotated", "expired", "wrong_host", "untrusted"] = Field(
        description="the certificate served: rotated (a new key and certificate from the "
        "run's CA, as a rotation brings), expired (its dates past), wrong_host (issued for "
        "wrong-host.invalid), untrusted (signed by a CA no client trusts), or valid (the "
        "first one); chaos.tls.ca.CERT_KINDS")
    max_version: Literal["TLSv1", "TLSv1_1", "TLSv1_2", "TLSv1_3"] | None = Field(
        None, description="the newest TLS version served (TLSv1 or TLSv1_1: only that one, "
        "which clients refuse by default)")

    def describe(self) -> str:
        version = f" up to {self.max_version}" if self.max_version else ""
        kind = {"valid": "a valid", "rotated": "a rotated", "expired": "an expired",
                "wrong_host": "a wrong-host", "untrusted": "an untrusted"}[self.tls]
        return f"{self.service} serves {kind} certificate{version}{self.when()}"


def _fault_kind(value: Any) -> str | None:
    """Pick the fault family by its keys so errors speak of one family, not both."""
    if isinstance(value, ToxicFault | ContainerFault | NetFault | LlmFault | TlsFault):
        return type(value).__name__
    if isinstance(value, dict):
        if "tls" in value or "max_version" in value:
            return "TlsFault"
        if "llm" in value:
            return "LlmFault"
        if "net" in value:
            return "NetFault"
        if "container" in value or "action" in value:
            return "ContainerFault"
        if "proxy" in value or "toxic" in value:
            return "ToxicFault"
    return None


Fault = Annotated[
    Annotated[ToxicFault, Tag("ToxicFault")] | Annotated[ContainerFault, Tag("ContainerFault")]
    | Annotated[NetFault, Tag("NetFault")] | Annotated[LlmFault, Tag("LlmFault")]
    | Annotated[TlsFault, Tag("TlsFault")],
    Discriminator(
        _fault_kind, custom_error_type="fault_kind",
        custom_error_message="a fault is either {proxy, toxic}, {container, action}, "
        "{service, net}, {service, llm} or {service, tls}",
    ),
]


class Phase(Model):
    name: str = Field(pattern=NAME_PATTERN)
    duration: Duration
    faults: list[Fault] = Field(default_factory=list)


class Request(Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_./-]{1,60}$")
    method: Literal["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] = "GET"
    path: str = Field(pattern=HTTP_PATH)
    headers: dict[Annotated[str, Field(pattern=HEADER_NAME)], str] = Field(default_factory=dict)
    json_body: Any = Field(None, alias="json")
    weight: int = Field(1, ge=1, le=1000)
    stream: bool = Field(False, description="an SSE stream: it must end with data: [DONE]")
    idempotent: bool = Field(False, description="send an Idempotency-Key so gateways may retry")
    llm: LlmRequest | None = Field(
        None, description="a chat request whose body is drawn fresh per request "
        "(chaos.scenario.llm_load); not with json")

    @field_validator("llm")
    @classmethod
    def _llm_or_json(cls, value: LlmRequest | None, info: ValidationInfo) -> LlmRequest | None:
        if value is not None and info.data.get("json_body") is not None:
            raise ValueError("llm builds each request's body: give json or llm, not both")
        if value is not None and info.data.get("method", "POST") != "POST":
            raise ValueError(f"llm sends a chat body: the method is POST, not "
                             f"{info.data.get('method')}")
        return value

    @field_validator("headers")
    @classmethod
    def _header_values(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_VALUE.match(text):
                raise ValueError(f"the value of header {name} holds a character HTTP does not "
                                 "allow (CR, LF, NUL, other control characters, or beyond latin-1)")
        return value

    @field_validator("json_body")
    @classmethod
    def _json(cls, value: Any) -> Any:
        try:
            json.dumps(value, allow_nan=False)
        except ValueError as exc:
            raise ValueError(f"json must be plain JSON: {exc}") from None
        return value


# A dot path of JSON object keys inside a request body, such as `user` or `metadata.chaos_id`
BODY_FIELD = r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$"


class RequestId(Model):
    """A fresh id (uuid4 hex) on every client request, so what the upstream saw can be joined
    to what the client saw (chaos.witness)."""

    enabled: bool = True
    header: str = Field(default="X-Chaos-Request-Id", pattern=HEADER_NAME)
    body_field: str | None = Field(
        default=None, description="also set the id at this dot path of each request's JSON body "
        "(objects created on the way), for gateways that rebuild the upstream request, e.g. "
        "`user` or `metadata.chaos_id`")

    @field_validator("body_field")
    @classmethod
    def _dot_path(cls, value: str | None) -> str | None:
        if value is not None and not re.match(BODY_FIELD, value):
            raise ValueError(f"body_field {shown(value)}: expected a dot path of JSON keys "
                             "(letters, digits, _ and -), such as user or metadata.chaos_id")
        return value


class Load(Model):
    target: str
    users: int = Field(10, ge=1, le=5000)
    spawn_rate: float = Field(10.0, gt=0, le=5000)
    timeout: Timeout = 5.0
    connect_timeout: Timeout = 2.0
    wait: Duration = Field(0.05, description="pause of each user between its requests")
    rate: float | None = Field(None, gt=0, le=100_000,
                               description="constant arrival rate (requests/s) instead of wait")
    arrival: Literal["open", "closed"] | None = Field(
        None, description="with rate: open (default) = arrivals on a fixed clock whatever "
        "the responses do, at most max_in_flight at a time, arrivals beyond that dropped and "
        "counted (k6 constant-arrival-rate); closed = each user waits for its response and "
        "aims at rate/users (Locust constant_throughput), so arrivals fall when responses slow")
    max_in_flight: int | None = Field(
        None, ge=1, le=100_000, description="open arrivals: requests in flight at most "
        "(default rate x (connect_timeout + timeout): every request may take its full timeout)")
    processes: int = Field(1, ge=1, le=64, description="Locust worker processes (--processes)")
    expect_workers: int | None = Field(
        None, ge=1, le=1000, description="run Locust as a master and wait for this many "
        "workers (started elsewhere with CHAOS_RECORDS_MODE=forward)")
    master_bind: str = Field("127.0.0.1:5557", pattern=r"^[0-9a-fA-F.:\[\]]+:[0-9]{1,5}$")
    retry_header: str = Field("X-Gateway-Retries", pattern=HEADER_NAME)
    request_id: RequestId = Field(default_factory=RequestId)
    tls: bool = Field(False, description="speak https to the target, verifying it against "
                      "the run's CA by its service name (the target serves TLS); each "
                      "request that opens a connection records its handshake time")
    requests_per_connection: int | None = Field(
        None, ge=1, le=1_000_000, description="each client ends its keep-alive connection "
        "after this many requests (Connection: close on the last), as real clients churn, "
        "so new connections (and TLS handshakes) go on all through the run whatever the "
        "gateway's own keep-alive limits (default: a connection lives until it breaks)")
    requests: list[Request] = Field(min_length=1)

    @field_validator("master_bind")
    @classmethod
    def _bind_address(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        try:
            ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
        except ValueError:
            raise ValueError(f"master_bind {shown(value)}: expected IP:PORT such as "
                             "127.0.0.1:5557 or [::1]:5557") from None
        if not 1 <= int(port) <= 65535:
            raise ValueError(f"master_bind port {port} is out of range 1-65535")
        return value


class BreakerProbe(Model):
    """Where the gateway exposes its circuit-breaker state (Prometheus text)."""

    service: str
    path: str = Field("/metrics", pattern=HTTP_PATH)
    metric: str = Field("gateway_breaker_state", pattern=METRIC_NAME)
    open_value: float = 1.0
    interval: PollInterval = 0.25


class CounterProbe(Model):
    """A counter of requests that reached the upstream (JSON field or Prometheus metric)."""

    service: str
    path: str = Field("/stats", pattern=HTTP_PATH)
    field: str | None = Field("total", description="top-level JSON field holding the count")
    metric: str | None = Field(None, pattern=METRIC_NAME,
                               description="Prometheus metric name instead of a JSON field")
    interval: PollInterval = 0.5


class Probes(Model):
    breaker: BreakerProbe | None = None
    upstream_requests: CounterProbe | None = None


class WitnessJournal(Model):
    """Where a service journals the requests it received (the reference backend: /journal)."""

    service: str
    path: str = Field("/journal", pattern=HTTP_PATH)


class Witness(Model):
    """What saw the upstream side of the gateway (chaos.witness): every attempt it made."""

    use: Literal["auto", "tap", "journal", "off"] = Field(
        default="auto", description="auto = the embedded proxy's tap when the run's Toxiproxy has one, "
        "else the journal when declared, else none; tap and journal insist on one")
    proxies: list[str] | None = Field(
        default=None, max_length=50, description="the proxies to tap (in front of upstreams); default: "
        "every proxy whose upstream is not the load target's service")
    journal: WitnessJournal | None = None

    @field_validator("use", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        """YAML reads a bare `off` as false: `use: off` means off all the same."""
        return "off" if value is False else value


class BreakerAssertion(Model):
    opens_within: Duration | None = None
    closes_within: Duration | None = None
    half_opens_after: Duration | None = None
    fails_fast_under: ComparisonField | None = None


class Assertion(Model):
    """Bounds on what clients saw in one phase (or the whole run when phase is omitted)."""

    phase: str | None = None
    request: str | None = Field(
        None, description="judge only the records of this load.requests[].name (counts, "
        "rates, latencies); omitted: all requests")
    min_requests: int = Field(1, ge=0)
    success_rate: ComparisonField | None = None
    error_rate: ComparisonField | None = None
    # Counts of requests by outcome class (chaos.outcomes.COUNT_BOUNDS): each class
    # under its own name; resets and graceful_errors are the plural spellings of reset and
    # graceful_error, timeouts is connect_timeout + read_timeout.
    resets: ComparisonField | None = None
    refused: ComparisonField | None = None
    timeouts: ComparisonField | None = None
    closed: ComparisonField | None = None
    graceful_errors: ComparisonField | None = None
    ok_after_retry: ComparisonField | None = None
    truncated: ComparisonField | None = None
    ok: ComparisonField | None = None
    reset: ComparisonField | None = Field(None, description="= resets")
    graceful_error: ComparisonField | None = Field(
        None, description="HTTP 5xx/429 with a body (graceful_errors also counts inband_error)")
    truncated_success: ComparisonField | None = Field(
        None, description="HTTP 200 streams that ended cleanly without their terminator")
    stream_stalled: ComparisonField | None = Field(
        None, description="streams that sent an event, then nothing for load.timeout")
    inband_error: ComparisonField | None = Field(
        None, description="HTTP 200 streams or bodies carrying an error event or object")
    tls_handshake_failed: ComparisonField | None = Field(
        None, description="TLS handshakes the client saw refused (an alert, or a certificate "
        "that did not verify)")
    connect_timeout: ComparisonField | None = None
    read_timeout: ComparisonField | None = None
    other: ComparisonField | None = Field(
        None, description="requests no other class describes (an HTTP 4xx, a 5xx without a "
        "body, an unknown error)")
    retry_amplification: ComparisonField | None = None
    # Read from the upstream witness (chaos.witness): what the gateway sent upstream.
    attempts_per_request: ComparisonField | None = Field(
        None, description="the most upstream attempts one client request caused")
    upstream_timeout: ComparisonField | None = Field(
        None, description="how long the gateway waited on an upstream attempt before "
        "abandoning it (median over abandoned attempts; a number without unit means ms)")
    retries_non_idempotent: ComparisonField | None = Field(
        None, description="POST/PATCH requests not marked idempotent that reached the "
        "upstream more than once")
    shed: ComparisonField | None = Field(
        None, description="share (0..1) of client requests answered with an error and no "
        "upstream attempt while the upstream was healthy")
    p50: ComparisonField | None = None
    p95: ComparisonField | None = None
    p99: ComparisonField | None = None
    max_latency: ComparisonField | None = None
    breaker: BreakerAssertion | None = None
    recovers_within: Duration | None = Field(
        None, description="time from the last fault change in the phase (or its start) to "
        "the first successful request after which no 1 s window of requests has a success "
        "rate (ok + ok_after_retry) confidently below recovery_success_rate (the upper end of "
        "its Wilson interval at the scenario's confidence below it)")
    recovery_success_rate: float = Field(0.95, gt=0, le=1)
    rst_from: dict[str, ComparisonField] | None = Field(
        None, description="TCP RSTs sent during the phase, from packet captures: "
        "{gateway: 0} (all it sent) or {gateway->client: 0} (to one peer); needs capture")
    # LLM gateways (chaos.scenario.llm_bounds; judged by chaos.verdict.llm_checks)
    ttft: TokenLatencyBound | None = Field(
        None, description="time to the first content token of streamed requests: "
        "{p50|p95|p99|max: '< 2s'}")
    inter_token: TokenLatencyBound | None = Field(
        None, description="gaps between content tokens of streamed requests: "
        "{p50|p95|p99|max: '< 500ms'}")
    fallback_used: ComparisonField | None = Field(
        None, description="share (0..1) of successful requests served by a provider other "
        "than the first one they were attempted on (the provider journals)")
    served_by: ServedBy | None = Field(
        None, max_length=20, description="share (0..1) of successful requests each provider "
        "served: {provider-b: '>= 0.9'} (the provider journals)")
    retry_after_honoured: bool | None = Field(
        None, description="true: every re-attempt after a 429/503 carrying Retry-After waited "
        "at least that long before going to the same provider again")
    no_retry_on: NoRetryOn | None = NO_RETRY_ON_FIELD
    status: StatusCounts | None = Field(
        None, max_length=20, description="count of client responses with that HTTP status: "
        "{'429': '> 0'}")
    retry_after_on_429: ComparisonField | None = Field(
        None, description="share (0..1) of the gateway's own 429 answers to clients that "
        "carried Retry-After (or retry-after-ms)")

    @field_validator("fallback_used", "retry_after_on_429")
    @classmethod
    def _an_llm_share(cls, value: Any) -> Any:
        if value is not None and not 0 <= value.value <= 1:
            raise ValueError(f"a share is between 0 and 1, got {shown(value.text)}")
        return value

    @field_validator("served_by")
    @classmethod
    def _served_shares(cls, value: Any) -> Any:
        for name, bound in (value or {}).items():
            if not 0 <= bound.value <= 1:
                raise ValueError(f"{name}: a share is between 0 and 1, got {shown(bound.text)}")
        return value

    @field_validator("status")
    @classmethod
    def _status_keys(cls, value: Any) -> Any:
        for key, bound in (value or {}).items():
            if not re.match(STATUS_KEY, key):
                raise ValueError(f"{shown(key)} is not an HTTP status (100 to 599)")
            if bound.value < 0:
                raise ValueError(f"{key}: a count of {shown(bound.text)} can never be met")
        return value

    @field_validator("no_retry_on")
    @classmethod
    def _statuses(cls, value: Any) -> Any:
        for status in value or []:
            if not 400 <= status <= 599:
                raise ValueError(f"{status} is not an HTTP error status (400 to 599)")
        return value

    @field_validator(*COUNT_BOUNDS, "retry_amplification", "p50", "p95", "p99", "max_latency",
                     "attempts_per_request", "upstream_timeout", "retries_non_idempotent")
    @classmethod
    def _not_negative(cls, value: Any) -> Any:
        if value is not None and value.value < 0:
            raise ValueError(f"a bound of {shown(value.text)} can never be met: counts and "
                             "latencies are never negative")
        return value

    @field_validator("p50", "p95", "p99", "max_latency", "upstream_timeout")
    @classmethod
    def _a_latency(cls, value: Any) -> Any:
        seconds = None if value is None else (
            value.value if value.is_duration else value.value / 1000)
        if seconds is not None and seconds > MAX_DURATION_S:
            raise ValueError(f"a latency bound of {shown(value.text)} is out of range (at most 7 days;"
                             " a number without unit means milliseconds)")
        return value

    @field_validator("success_rate", "error_rate", "shed")
    @classmethod
    def _a_share(cls, value: Any) -> Any:
        if value is not None and not 0 <= value.value <= 1:
            raise ValueError(f"a rate is a share between 0 and 1, got {shown(value.text)}")
        return value


class CaptureSpec(Model):
    """Packet captures and socket-state snapshots from sidecars in services' namespaces."""

    services: list[str] | None = Field(
        None, max_length=20, description="services to capture on (default: all; "
        "'toxiproxy' adds the proxy)")
    max_mb: int = Field(20, ge=1, le=2000, description="ring buffer size per service")
    max_seconds: Timeout = Field(120.0, description="stop capturing after this long")
    ss_interval: SnapshotInterval = Field(1.0, description="socket-state snapshot interval")


# true/false, or the settings: errors then speak of the settings, not of "a valid boolean"
Capture = Annotated[
    Annotated[bool, Tag("on_off")] | Annotated[CaptureSpec, Tag("settings")],
    Discriminator(lambda value: "on_off" if isinstance(value, bool) else "settings"),
]


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
    capture: Capture = Field(
        False, description="record evidence: pcaps, socket states (off by default)")
    witness: Witness = Field(default_factory=Witness)
    gateway: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9_-]{0,39}:[a-z][a-z0-9_-]{0,39}$",
        description="NAME:PROFILE of a gateway profile (docker/gateways/NAME/gateway.yaml): the "
        "load target's service is built and started from it (`chaos gateways` lists them; "
        "`chaos run --gateway` wins over this key)")

    def capture_spec(self) -> CaptureSpec | None:
        if self.capture is True:
            return CaptureSpec.model_validate({})
        return self.capture or None

    def total_duration(self) -> float:
        return sum(p.duration for p in self.phases)

    def start_order(self) -> list[str]:
        """Services in an order where each comes after its depends_on (file order otherwise).

        The loader has already refused unknown names and cycles.
        """
        order: list[str] = []
        placed: set[str] = set()
        for root in self.services:
            stack = [(root, iter(self.services[root].depends_on))]  # iterative: no recursion
            on_path = {root}
            while stack:
                name, deps = stack[-1]
                dep = next(deps, None)
                if dep is None:
                    stack.pop()
                    on_path.discard(name)
                    if name not in placed:
                        placed.add(name)
                        order.append(name)
                elif dep in self.services and dep not in placed and dep not in on_path:
                    on_path.add(dep)
                    stack.append((dep, iter(self.services[dep].depends_on)))
        return order
