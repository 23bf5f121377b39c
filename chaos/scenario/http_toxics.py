"""The HTTP- and stream-aware toxic types in the scenario language (issue 21).

``http_abort``, ``http_reset``, ``http_latency``, ``sse_stall``, ``sse_cut``,
``sse_corrupt`` and ``sse_error`` act on requests and event streams; only the
project's embedded Toxiproxy server applies them (``chaos/proxy/embedded/
http_toxics.py``), so a run on a real Toxiproxy server refuses them before anything
starts (``chaos/proxy/provider.py``'s ``refuse_http_toxics``); the embedded server
run standalone at TOXIPROXY_URL (``chaos toxiproxy serve``) is told by its
``GET /version`` and not refused. Each type's
attributes are a strict model here, so a bad or misspelt attribute is a
ScenarioError naming file:line:key (exit 2); the server checks them again.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

HTTP_TOXIC_TYPES = ("http_abort", "http_reset", "http_latency", "sse_stall", "sse_cut",
                    "sse_corrupt", "sse_error")
HEADER_NAME = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$"
HEADER_VALUE = r"^[^\r\n]{0,4096}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, strict=True,
                              allow_inf_nan=False)


class HttpMatch(_Strict):
    """Which requests a toxic applies to (all given must hold); others pass untouched."""

    method: str | None = Field(None, pattern=r"^[A-Za-z]{1,32}$")
    path: str | None = Field(None, pattern=r"^/[^\x00-\x20\x7f]*$", description="path prefix")
    header: dict[str, str] | None = Field(None, description="header name: exact value")


class _Common(_Strict):
    match: HttpMatch | None = None
    first: int | None = Field(None, ge=0, le=10**9, description="only the first N matched "
                              "requests since the toxic was created (0 or absent: all)")


class HttpAbortAttributes(_Common):
    status: int = Field(503, ge=200, le=599)
    body: str | None = Field(None, max_length=1 << 20)
    headers: dict[str, str | int] | None = Field(None, description="e.g. Retry-After: 2")


class HttpResetAttributes(_Common):
    at: Literal["request", "response"] = Field(
        "request", description="reset after the request head, or after the response head")


class HttpLatencyAttributes(_Common):
    latency: int = Field(0, ge=0, le=3_600_000, description="ms per request")
    jitter: int = Field(0, ge=0, le=3_600_000, description="ms")
    at: Literal["request", "response"] = Field(
        "request", description="before forwarding the request, or before the response head")

    @model_validator(mode="after")
    def _jitter(self) -> HttpLatencyAttributes:
        if self.jitter > self.latency:
            raise ValueError(f"jitter ({self.jitter} ms) must not exceed latency "
                             f"({self.latency} ms)")
        return self


class SseAttributes(_Common):
    after: int = Field(0, ge=0, le=10**9, description="events passed before the fault")


class SseCutAttributes(SseAttributes):
    how: Literal["close", "reset"] = "close"


class SseCorruptAttributes(SseAttributes):
    payload: str | None = Field(None, max_length=65536, description="the malformed event")


class SseErrorAttributes(SseAttributes):
    message: str | None = Field(None, max_length=65536)
    error_type: str | None = Field(None, max_length=256)
    code: str | None = Field(None, max_length=256)


ATTRIBUTE_MODELS: dict[str, type[_Common]] = {
    "http_abort": HttpAbortAttributes, "http_reset": HttpResetAttributes,
    "http_latency": HttpLatencyAttributes, "sse_stall": SseAttributes,
    "sse_cut": SseCutAttributes, "sse_corrupt": SseCorruptAttributes,
    "sse_error": SseErrorAttributes,
}
