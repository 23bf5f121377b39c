"""Circuit breaker: stop sending traffic to an upstream that keeps failing.

closed --(N consecutive failures)--> open --(open period elapsed)--> half_open
half_open --(trial succeeds)--> closed;  half_open --(trial fails)--> open

While open, callers are refused at once (the gateway answers 503 without touching the
upstream), which keeps a dead upstream from tying up every client for a full timeout.
In half_open exactly one trial call is let through; everyone else is refused until it ends.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    """Values match the gateway_breaker_state metric."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    """Consecutive-failure breaker for one upstream. Not thread-safe: one event loop."""

    def __init__(
        self,
        failure_threshold: int,
        open_seconds: float,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.enabled = enabled
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self.transitions: Counter[str] = Counter()

    @property
    def state(self) -> BreakerState:
        """Current state; an expired open period turns into half_open when looked at."""
        if self._state is BreakerState.OPEN and self.retry_after_s() <= 0:
            self._move_to(BreakerState.HALF_OPEN)
        return self._state

    def retry_after_s(self) -> float:
        """Seconds until the breaker lets a trial through (0 unless open)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.open_seconds - self._clock())

    def retry_after_header(self) -> str:
        """Retry-After value in whole seconds, at least 1 so clients do back off."""
        return str(max(1, math.ceil(self.retry_after_s())))

    def try_acquire(self) -> bool:
        """Ask to make one upstream call; False means refuse it (breaker open)."""
        if not self.enabled:
            return True
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        """A success closes a half-open breaker. While open, a straggler that started
        before the breaker opened proves little, so only the half-open trial may close it."""
        self._consecutive_failures = 0
        if self._state is BreakerState.OPEN:
            return
        self._trial_in_flight = False
        if self.enabled and self._state is BreakerState.HALF_OPEN:
            self._move_to(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._consecutive_failures += 1
        self._trial_in_flight = False
        if not self.enabled:
            return
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED
            and self._consecutive_failures >= self.failure_threshold
        ):
            self._open()

    def abandon(self) -> None:
        """The call ended without a verdict (client went away): free the half-open slot."""
        self._trial_in_flight = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._move_to(BreakerState.OPEN)

    def _move_to(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            self.transitions[state.name.lower()] += 1
