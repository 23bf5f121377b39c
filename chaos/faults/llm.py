"""The `llm` fault: rules installed on a fault-scriptable LLM provider for a time window.

On at the fault's start (``POST /_chaos/rules``: the provider puts them before its
script and starts their counters and windows then), off at its end (``DELETE
/_chaos/rules/{id}``). Every call is bounded; a provider that does not answer, or refuses
the rules, is a harness part that broke (FaultNotApplied, exit 3).
"""

from __future__ import annotations

import requests

from chaos.errors import FaultNotApplied
from chaos.faults.base import FaultContext, Injected
from chaos.scenario.llm_provider import rules_json
from chaos.scenario.model import LlmFault

TIMEOUT_S = (2.0, 5.0)  # connect, read


def inject_llm_rules(fault: LlmFault, ctx: FaultContext, index: int) -> Injected:
    description = fault.describe()
    if ctx.service_url is None:
        raise FaultNotApplied(description, "this environment does not reach its services")
    base = ctx.service_url(fault.service)
    try:
        response = requests.post(f"{base}/_chaos/rules", json={"rules": rules_json(fault.llm)},
                                 timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        raise FaultNotApplied(description, f"the provider's control API at {base} did not "
                              f"answer: {exc}") from None
    set_id = _set_id(response)
    if set_id is None:
        raise FaultNotApplied(description, f"the provider at {base} refused the rules: HTTP "
                              f"{response.status_code} {response.text[:300]}")

    def undo() -> None:
        # a provider restarted since (a container fault) has lost the set: 404 is fine
        gone = requests.delete(f"{ctx.service_url(fault.service) if ctx.service_url else base}"
                               f"/_chaos/rules/{set_id}", timeout=TIMEOUT_S)
        if gone.status_code not in (200, 404):
            raise FaultNotApplied(description, f"removing rule set {set_id}: HTTP "
                                  f"{gone.status_code} {gone.text[:300]}")

    return Injected(f"{description} (rule set {set_id})", undo=undo)


def _set_id(response: requests.Response) -> str | None:
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    found = body.get("id") if isinstance(body, dict) else None
    return found if isinstance(found, str) and found else None
