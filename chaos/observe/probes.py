"""Probes read the gateway's own view (e.g. circuit-breaker state) during a run."""

from __future__ import annotations

import re
import threading
import time

import requests

from chaos.scenario.model import BreakerProbe


def read_metric(text: str, metric: str) -> float | None:
    """The first sample of a metric in Prometheus text exposition format."""
    pattern = re.compile(rf"^{re.escape(metric)}(?:\{{[^}}]*\}})?\s+([-+0-9.eE]+|NaN)", re.M)
    match = pattern.search(text)
    return float(match.group(1)) if match else None


class BreakerPoller:
    """Polls a metrics URL on loopback in a thread; samples are (epoch seconds, value)."""

    def __init__(self, probe: BreakerProbe, base_url: str) -> None:
        self.probe = probe
        self.url = base_url.rstrip("/") + probe.path
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="breaker-probe", daemon=True)
        self._session = requests.Session()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.time()
            try:
                response = self._session.get(self.url, timeout=(0.5, 1.0))
                value = read_metric(response.text, self.probe.metric)
                if value is not None:
                    self.samples.append((started, value))
            except requests.RequestException:
                pass
            self._stop.wait(max(0.0, self.probe.interval - (time.time() - started)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        self._session.close()
