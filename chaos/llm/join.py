"""One client request with the provider attempts that carried its request id.

From the attempts (time order, every provider) of one rid: which provider served it (the
last attempt answering 2xx, one that completed preferred), which was tried first, whether a
fallback served it, which error answers were followed by another attempt (retries after a
400), how long the gateway waited after each 429/503 carrying Retry-After before its next
attempt on the same provider, and whether the client's ``ok`` was a truncated success (the
client's finish_reason is not the one the serving provider sent, or it sent none: the
stream was cut or stalled before its end).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chaos.llm.journal import ProviderAttempt, retry_after_seconds
from chaos.outcomes import OK, OK_AFTER_RETRY

RETRY_AFTER_STATUSES = frozenset({429, 503})
# Retry-After read as whole seconds by a gateway that sleeps exactly R may wake a hair early.
RETRY_AFTER_SLACK_S = 0.05
# A next attempt starting this soon after an answer arrived was on its way before: a hedge.
RACE_S = 0.01


@dataclass(frozen=True)
class Wait:
    """A re-attempt on the provider that asked for a pause (Retry-After)."""

    provider: str
    asked_s: float
    waited_s: float

    @property
    def honoured(self) -> bool:
        return self.waited_s + RETRY_AFTER_SLACK_S >= self.asked_s


@dataclass
class Joined:
    """What the providers saw of one client request."""

    attempts: list[ProviderAttempt]
    serving: ProviderAttempt | None = None
    # status -> provider of the first attempt with that status another attempt followed
    reattempted_after: dict[int, str] = field(default_factory=dict)
    waits: list[Wait] = field(default_factory=list)

    @property
    def served_by(self) -> str | None:
        return None if self.serving is None else self.serving.provider

    @property
    def first(self) -> str | None:
        return self.attempts[0].provider if self.attempts else None

    @property
    def fallback(self) -> bool:
        """Served by a provider other than the first one the request was attempted on."""
        return self.serving is not None and self.serving.provider != self.first


def serving(attempts: list[ProviderAttempt]) -> ProviderAttempt | None:
    """The attempt whose answer the client got: the last 2xx that completed, else the last
    2xx (a stream the provider cut or stalled still served what the client read)."""
    answered = [a for a in attempts if a.ok]
    complete = [a for a in answered if a.complete]
    chosen = complete or answered
    return chosen[-1] if chosen else None


def join_attempts(attempts: Iterable[ProviderAttempt]) -> Joined:
    ordered = sorted(attempts, key=lambda a: (a.t, a.seq))
    joined = Joined(ordered, serving(ordered))
    for i, attempt in enumerate(ordered):
        later = [b for b in ordered[i + 1:] if b.t + RACE_S >= attempt.answered]
        if attempt.status is not None and attempt.status >= 400 and later:
            joined.reattempted_after.setdefault(attempt.status, attempt.provider)
        if attempt.status not in RETRY_AFTER_STATUSES:
            continue
        asked = retry_after_seconds(attempt.retry_after, attempt.answered)
        again = next((b for b in later if b.provider == attempt.provider), None)
        if asked is not None and again is not None:
            joined.waits.append(Wait(attempt.provider, asked, max(0.0, again.t - attempt.answered)))
    return joined


def truncated(raw: dict[str, Any], joined: Joined) -> bool:
    """A client success the serving provider did not finish as the client read it: its
    finish_reason differs from the one sent, or the provider sent none (cut, stalled).
    Only chat answers whose record carries finish_reason (the load's LLM records) count."""
    attempt = joined.serving
    if raw.get("outcome") not in (OK, OK_AFTER_RETRY) or attempt is None or not attempt.chat:
        return False
    if "finish_reason" not in raw:
        return False
    return attempt.finish_reason is None or raw.get("finish_reason") != attempt.finish_reason
