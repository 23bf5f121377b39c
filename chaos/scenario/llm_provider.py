"""The `llm:` block of a service (the fault-scriptable provider, docker/llm-provider) and its
rules, also used by the `llm` phase fault.

Strict like every scenario model: an unknown `when` / `do` key is a ScenarioError naming
file:line:key. The provider checks the same language again (docker/llm-provider/script.py),
because its control API takes rules from anyone. The harness hands a service's block to
its container as the env CHAOS_LLM_SCRIPT (JSON, durations as "250ms"/"2s" text).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from chaos.scenario.units import Duration, format_duration, parse_duration, shown

SCRIPT_ENV = "CHAOS_LLM_SCRIPT"
MAX_TOKENS = 4096
MAX_STALL_S = 300.0
STREAM_FAULTS = ("stall_after", "cut_after", "error_after", "malformed_after")
ERROR_CLASSES = ("rate_limit_exceeded", "server_error", "overloaded", "context_length_exceeded",
                 "content_policy_violation")
_REQUESTS = re.compile(r"^\s*(?:(\d+)|(\d+)\s*-\s*(\d+)|every\s+(\d+))\s*$")
_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$"


class _Strict(BaseModel):
    """The scenario models' settings (chaos.scenario.model.Model; not imported: model.py
    imports this module)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, strict=True,
                              allow_inf_nan=False)


def _requests(value: Any) -> str:
    """"N" (the first N), "A-B", "every K": counted from 1."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    match = _REQUESTS.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected \"N\" (the first N), \"A-B\" or \"every K\", got {shown(value)}")
    n, a, b, k = match.groups()
    if (n is not None and int(n) < 1) or (k is not None and int(k) < 1) or (
            a is not None and not 1 <= int(a) <= int(b)):
        raise ValueError(f"requests {shown(value)} names no request (they are counted from 1)")
    return value.strip()


def _stall_for(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds > MAX_STALL_S:
        raise ValueError(f"stall_for is at most {format_duration(MAX_STALL_S)}, got {shown(value)}")
    return seconds


StallFor = Annotated[float, BeforeValidator(_stall_for)]
TokenCount = Annotated[int, Field(ge=0, le=MAX_TOKENS)]


class When(_Strict):
    """All the conditions given must hold (none given: every request)."""

    model: str | None = Field(None, min_length=1, max_length=200,
                              description="a glob over the request's model, e.g. gpt-4o*")
    api: Literal["openai", "anthropic"] | None = None
    stream: bool | None = None
    header: dict[Annotated[str, Field(pattern=_HEADER_NAME)],
                 Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=dict, description="request headers that must have these values "
        "(an LLM gateway rebuilds the upstream request: most client headers never arrive)")
    min_prompt_tokens: int | None = Field(
        None, ge=0, le=10_000_000, description="only prompts of at least this many tokens "
        "(estimated as characters / 4, as the journal's prompt_tokens): context-length faults")
    requests: Annotated[str, BeforeValidator(_requests)] | None = Field(
        None, description='"N" = the first N, "A-B", "every K": counted from 1 over the '
        "requests matching the rest of when, since the rule set was installed")
    window: list[Duration] | None = Field(
        None, min_length=2, max_length=2,
        description="[from, until] since the rule set was installed")
    share: float | None = Field(None, ge=0.0, le=1.0, description="a random share of them")

    @field_validator("window")
    @classmethod
    def _ordered(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and value[1] < value[0]:
            raise ValueError("window: until comes before from")
        return value


class Do(_Strict):
    """What the provider does with a request the rule matched (one behaviour; a status
    combines with retry_after and ratelimit_headers, a stream fault with delays)."""

    status: int | None = Field(None, ge=200, le=599, description="answer with this status "
                               "(400, 429, 500, 502, 503, 529...) and an error body")
    error: Literal["rate_limit_exceeded", "server_error", "overloaded",
                   "context_length_exceeded", "content_policy_violation"] | None = Field(
        None, description="the error class (default from status); also the in-stream "
        "error of error_after")
    retry_after: Duration | None = Field(None, description="a Retry-After (implies 429 "
                                         "without a status)")
    retry_after_format: Literal["seconds", "http-date", "ms"] | None = Field(
        None, description="seconds (default), http-date, or ms: OpenAI's retry-after-ms")
    ratelimit_headers: bool | None = Field(None, description="x-ratelimit-* headers")
    finish_reason: str | None = Field(None, pattern=r"^[a-z_]{1,40}$",
                                      description="200 with this finish_reason, e.g. "
                                      "content_filter")
    first_token_delay: Duration | None = None
    token_delay: Duration | None = None
    stall_after: TokenCount | None = Field(None, description="N tokens, then the stream "
                                           "stalls with the connection open")
    stall_for: StallFor | None = Field(None, description="how long the stall lasts before "
                                       "the stream goes on (default: until the peer leaves, "
                                       "at most 300s)")
    cut_after: TokenCount | None = Field(None, description="N tokens, then the connection "
                                         "closes")
    cut_with: Literal["fin", "rst"] | None = None
    error_after: TokenCount | None = Field(None, description="N tokens, then an in-stream "
                                           "error event and the stream ends")
    no_done: bool | None = Field(None, description="omit data: [DONE] (Anthropic: "
                                 "message_stop)")
    malformed_after: TokenCount | None = Field(None, description="N tokens, then a chunk "
                                               "that is not JSON")
    tokens: int | None = Field(None, ge=1, le=MAX_TOKENS, description="completion length")

    @model_validator(mode="after")
    def _combinable(self) -> Do:
        faults = [name for name in STREAM_FAULTS if getattr(self, name) is not None]
        if len(faults) > 1:
            raise ValueError(f"{' and '.join(faults)} do not combine (one stream fault a rule)")
        error_status = self.error is not None and self.error_after is None  # else in-stream
        failing = self.status not in (None, 200) or (
            self.status is None and (error_status or self.retry_after is not None))
        if failing and (faults or self.finish_reason is not None):
            raise ValueError(f"{(faults or ['finish_reason'])[0]} needs a 200 answer; this "
                             "rule answers with an error status")
        for key, needs in (("retry_after_format", "retry_after"), ("stall_for", "stall_after"),
                           ("cut_with", "cut_after")):
            if getattr(self, key) is not None and getattr(self, needs) is None:
                raise ValueError(f"{key} needs {needs}")
        return self

    def describe(self) -> str:
        data = self.model_dump(mode="json", exclude_none=True)
        return " ".join(f"{k}={v}" for k, v in data.items()) or "normal"


class LlmRule(_Strict):
    when: When = Field(default_factory=lambda: When.model_validate({}))
    do: Do = Field(default_factory=lambda: Do.model_validate({}))

    def describe(self) -> str:
        when = self.when.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        shown_when = ",".join(f"{k}={v}" for k, v in when.items())
        return f"{self.do.describe()}" + (f" when {shown_when}" if shown_when else "")


class ProviderSpec(_Strict):
    """A service that is the fault-scriptable LLM provider (build: docker/llm-provider)."""

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                             description="what journals and served_by say (default: the "
                             "service name)")
    models: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, max_length=100, description="GET /v1/models; default: every model accepted")
    tokens: int = Field(16, ge=1, le=MAX_TOKENS, description="completion length when "
                        "max_tokens is absent or larger")
    first_token_delay: Duration = 0.02
    token_delay: Duration = 0.005
    tpm: int = Field(0, ge=0, le=10**9, description="tokens-per-minute limit (0: none): "
                     "429 + Retry-After + x-ratelimit-*")
    rules: list[LlmRule] = Field(default_factory=list, max_length=200,
                                 description="first match wins; no match: a normal answer")


def rules_json(rules: list[LlmRule]) -> list[dict[str, Any]]:
    """Rules as the provider takes them (its script and POST /_chaos/rules)."""
    return [rule.model_dump(mode="json", exclude_none=True) for rule in rules]


def script_env(service: str, spec: ProviderSpec, header: str, body_field: str | None) -> str:
    """The CHAOS_LLM_SCRIPT value of a service: its block, its name, the request-id names
    (the provider reads the header first, else the body field: `user` by default, which
    LLM gateways pass through)."""
    data = spec.model_dump(mode="json", exclude_none=True)
    data["name"] = spec.name or service
    data["request_id"] = {"header": header, "body_field": body_field or "user"}
    return json.dumps(data, separators=(",", ":"))
