"""When a service counts as ready: its health path answers 2xx or 3xx, nothing else.

Any status below 500 used to pass, so a typo (``health: /nope``, a 404) counted as ready
in 0.0 s and the run blamed the gateway for what followed. Redirects are answers, not
followed (their target may lie off the run's network). A wait that times out says what
the service last answered (status and the start of the body) or, when it never answered,
the last connection error, beside the container's last log lines.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from chaos.errors import ServiceNotReady, UsageError

BODY_BYTES = 500
DEFAULT_TIMEOUT_S = 60.0
TIMEOUT_ENV = "CHAOS_READY_TIMEOUT"


def healthy(status: int) -> bool:
    """The readiness predicate: 2xx and 3xx are ready; 1xx, 4xx and 5xx are not."""
    return 200 <= status < 400


def ready_timeout() -> float:
    """Seconds a service may take to become ready (CHAOS_READY_TIMEOUT, default 60)."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise UsageError(f"{TIMEOUT_ENV}={raw!r}: expected seconds between 0 and 3600")
    return value


@dataclass
class HealthProbe:
    """GETs one URL and remembers what it last saw."""

    url: str
    status: int | None = None
    body: bytes = b""
    error: str | None = None

    def __call__(self) -> bool:
        try:
            with requests.get(self.url, timeout=1.0, allow_redirects=False, stream=True) as resp:
                self.status = resp.status_code
                self.body = _head(resp)
        except requests.RequestException as exc:
            self.error = _short_error(exc)
            return False
        return healthy(self.status)

    def last_seen(self) -> str:
        if self.status is None:
            return f"it never answered; last connection error: {self.error or 'none'}"
        text = self.body[:BODY_BYTES].decode(errors="replace")
        more = "…" if len(self.body) > BODY_BYTES else ""
        return f"last answer: HTTP {self.status}, body: {text!r}{more}"


def _head(resp: requests.Response) -> bytes:
    """Up to BODY_BYTES + 1 bytes of the body (one more tells that it was cut)."""
    data = b""
    try:
        for chunk in resp.iter_content(BODY_BYTES + 1):
            data += chunk
            if len(data) > BODY_BYTES:
                break
    except requests.RequestException:
        pass  # the status is what decides; a body cut short is still shown
    return data[:BODY_BYTES + 1]


def _short_error(exc: Exception) -> str:
    """urllib3's wrapper text buries the cause: keep the innermost "[Errno N] ..." part."""
    text = str(exc)
    errno = re.findall(r"\[Errno -?\d+\][^'\")]*", text)
    return errno[-1].strip() if errno else f"{type(exc).__name__}: {text[:300]}"


def wait_healthy(name: str, url: str, path: str, timeout: float,
                 alive: Callable[[], None], logs: Callable[[], str],
                 interval: float = 0.2) -> float:
    """Poll until GET url answers 2xx/3xx; returns the seconds waited.

    ``alive`` raises when the service can no longer become ready (its container exited);
    a timeout raises ServiceNotReady with the last answer and ``logs()``.
    """
    probe = HealthProbe(url)
    started = time.monotonic()
    deadline = started + timeout
    while True:
        alive()
        if probe():
            return time.monotonic() - started
        if time.monotonic() >= deadline:
            raise ServiceNotReady(name, f"GET {path} did not answer 2xx/3xx within {timeout:g}s; "
                                  f"{probe.last_seen()}", logs())
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
