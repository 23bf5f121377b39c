"""The token-aware request mix: `load.requests[].llm`, a fresh chat body per request.

```yaml
load:
  request_id: {body_field: user}
  requests:
    - name: chat
      method: POST
      path: /v1/chat/completions
      llm: {api: openai, model: gpt-4o-mini, prompt_tokens: [20, 2000], max_tokens: [16, 256],
            stream: true}
```

Each request gets messages with about prompt_tokens tokens of filler (4 characters a
token), max_tokens drawn uniformly in its range, and with stream `stream_options:
{include_usage: true}` (OpenAI). The locustfile builds the bodies (chaos.load.llm_bodies);
records keep prompt_tokens and max_tokens. `json:` and `llm:` on one request is refused.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_PROMPT_TOKENS = 200_000
MAX_COMPLETION_TOKENS = 100_000

PromptTokens = Annotated[int, Field(ge=1, le=MAX_PROMPT_TOKENS)]
CompletionTokens = Annotated[int, Field(ge=1, le=MAX_COMPLETION_TOKENS)]


def _range(value: int | list[int]) -> list[int]:
    bounds = [value, value] if isinstance(value, int) else list(value)
    if bounds[0] > bounds[1]:
        raise ValueError(f"[{bounds[0]}, {bounds[1]}]: the low end comes first")
    return bounds


class LlmRequest(BaseModel):
    """One request of the mix as a chat completion whose body is drawn per request."""

    # as chaos.scenario.model.Model: strict, so `stream: "yes"` and `max_tokens: 1.5` are refused
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    api: Literal["openai", "anthropic"] = Field(
        "openai", description="openai: POST /v1/chat/completions; anthropic: POST /v1/messages")
    model: str = Field("gpt-4o-mini", min_length=1, max_length=200)
    prompt_tokens: PromptTokens | Annotated[list[PromptTokens], Field(min_length=2, max_length=2)] \
        = Field(20, description="prompt length in tokens, or [low, high] drawn uniformly")
    max_tokens: CompletionTokens | Annotated[list[CompletionTokens],
                                             Field(min_length=2, max_length=2)] = Field(
        64, description="max_tokens of each request, or [low, high] drawn uniformly")
    stream: bool = True

    @field_validator("prompt_tokens", "max_tokens")
    @classmethod
    def _ordered(cls, value: int | list[int]) -> list[int]:
        return _range(value)
