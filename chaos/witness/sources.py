"""The witness of one run, started over its stack: the plan, its sources, the poller.

The tap is asked for, not assumed, wherever the provider leaves it open (a server at
TOXIPROXY_URL, the embedded one started with ``--no-tap``): ``GET .../attempts`` answers
404 on a real Toxiproxy server and ``{"tap": false}`` when the tap is off. Each tapped
proxy is told the scenario's request-id names (``POST /proxies/{name}/tap``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from chaos.errors import EnvironmentProblem
from chaos.scenario.references import witness_proxies
from chaos.witness.plan import REAL_SERVER, TAP_OFF, Plan, plan
from chaos.witness.poll import Source, WitnessPoller

if TYPE_CHECKING:
    from chaos.scenario.model import Scenario
    from chaos.stack.base import Stack

UPSTREAM_FILE = "upstream.ndjson"
NO_ENDPOINT = "the embedded server answered 404 for its attempts (a version without the tap)"


def tap_missing(proxy_url: str, real: str = REAL_SERVER) -> str | None:
    """Why the proxy at ``proxy_url`` has no tap (None: it has one); ``real`` says what a
    404 means (a real Toxiproxy server, unless the provider is the embedded one)."""
    try:
        response = requests.get(f"{proxy_url}/attempts", params={"after": 0, "limit": 0},
                                timeout=5)
    except requests.RequestException as exc:
        raise EnvironmentProblem(f"the Toxiproxy API did not answer {proxy_url}/attempts: "
                                 f"{exc}") from exc
    if response.status_code == 404:
        return real
    body = _json(response)
    if response.status_code != 200 or body is None:
        raise EnvironmentProblem(f"the Toxiproxy API answered {proxy_url}/attempts with HTTP "
                                 f"{response.status_code}: {response.text[:200]}")
    return None if body.get("tap") else TAP_OFF


def _json(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def name_request_ids(proxy_url: str, scenario: Scenario) -> None:
    """The tap reads the scenario's request-id header (and body field), not the default."""
    request_id = scenario.load.request_id
    if not request_id.enabled:
        return
    body = {"request_id_header": request_id.header, "request_id_field": request_id.body_field}
    try:
        response = requests.post(f"{proxy_url}/tap", json=body, timeout=5)
    except requests.RequestException as exc:
        raise EnvironmentProblem(f"the proxy's tap did not take the request id names at "
                                 f"{proxy_url}/tap: {exc}") from exc
    if response.status_code >= 300:
        raise EnvironmentProblem(f"the proxy's tap refused the request id names at "
                                 f"{proxy_url}/tap: HTTP {response.status_code} "
                                 f"{response.text[:200]}")


def witness_plan(scenario: Scenario, stack: Stack) -> Plan:
    """The run's witness, asking the first proxy's tap when the provider leaves it open."""
    use = scenario.witness.use
    if use in ("off", "journal"):
        return plan(scenario, REAL_SERVER if use == "journal" else None, stack.provider)
    proxies = witness_proxies(scenario)
    no_tap: str | None = REAL_SERVER if stack.has_tap is False else None
    if no_tap is None and proxies:
        url = stack.proxy_api_url(proxies[0])
        no_tap = REAL_SERVER if url is None else tap_missing(url, REAL_SERVER if stack.has_tap
                                                             is None else NO_ENDPOINT)
    return plan(scenario, no_tap, stack.provider)


def start_witness(scenario: Scenario, stack: Stack, run_dir: Path,
                  excused: Callable[[str], bool]) -> tuple[Plan, WitnessPoller | None]:
    """The plan and its poller, started (None: no witness)."""
    chosen = witness_plan(scenario, stack)
    sources: list[Source] = []
    for name in chosen.proxies:
        url = stack.proxy_api_url(name)
        assert url is not None  # a tap was found on this server
        name_request_ids(url, scenario)
        sources.append(Source(f"tap:{name}", f"{url}/attempts"))
    if chosen.journal is not None:
        service, path = chosen.journal
        sources.append(Source(f"journal:{service}", stack.service_url(service) + path,
                              service=service,
                              resolve=lambda: stack.service_url(service) + path))
    if not sources:
        return chosen, None
    poller = WitnessPoller(sources, run_dir / UPSTREAM_FILE, excused)
    poller.start()
    return chosen, poller
