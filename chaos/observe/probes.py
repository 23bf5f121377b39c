"""Probes read the system's own view during a run: breaker state, upstream request counts."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable

import requests

from chaos.scenario.model import BreakerProbe, CounterProbe


def read_metric(text: str, metric: str) -> float | None:
    """The first sample of a metric in Prometheus text exposition format."""
    pattern = re.compile(rf"^{re.escape(metric)}(?:\{{[^}}]*\}})?\s+([-+0-9.eE]+|NaN)", re.M)
    match = pattern.search(text)
    return float(match.group(1)) if match else None


def read_json_field(text: str, name: str) -> float | None:
    try:
        value = json.loads(text).get(name)
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


class MetricPoller:
    """Polls one URL on loopback or the run's network in a thread; samples are (epoch, value)."""

    def __init__(self, url: str, extract: Callable[[str], float | None], interval: float) -> None:
        self.url = url
        self.extract = extract
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)
        self._session = requests.Session()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.time()
            try:
                response = self._session.get(self.url, timeout=(0.5, 1.0))
                value = self.extract(response.text)
                if value is not None:
                    self.samples.append((started, value))
            except requests.RequestException:
                pass
            self._stop.wait(max(0.0, self.interval - (time.time() - started)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        self._session.close()


class BreakerPoller(MetricPoller):
    """The gateway's circuit-breaker state from its Prometheus metrics."""

    def __init__(self, probe: BreakerProbe, base_url: str) -> None:
        super().__init__(base_url.rstrip("/") + probe.path,
                         lambda text: read_metric(text, probe.metric), probe.interval)
        self.probe = probe


def counter_poller(probe: CounterProbe, base_url: str) -> MetricPoller:
    """Requests that reached the upstream, read from a JSON field or a Prometheus metric."""
    metric, field = probe.metric, probe.field

    def extract(text: str) -> float | None:
        if metric:
            return read_metric(text, metric)
        return read_json_field(text, field or "total")

    return MetricPoller(base_url.rstrip("/") + probe.path, extract, probe.interval)
