"""Which witness a run uses, decided from the scenario and the run's Toxiproxy server.

``use: auto`` takes the embedded proxy's tap when the provider has one, else the journal
when one is declared, else none; ``use: tap`` on a server without a tap is bad input,
refused as soon as the provider is known (before anything is built or started).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chaos.errors import ScenarioError
from chaos.scenario.model import Scenario
from chaos.scenario.references import witness_proxies
from chaos.scenario.tls_checks import tls_proxies


@dataclass
class Plan:
    """What the poller drains: ``kind`` tap | journal | none, and why (``note``)."""

    kind: str
    proxies: list[str] = field(default_factory=list)
    journal: tuple[str, str] | None = None  # (service, path)
    note: str = ""


def refuse_tap(scenario: Scenario, has_tap: bool | None, provider: str) -> None:
    """``use: tap`` when the provider surely has none (a real Toxiproxy image or binary)."""
    if scenario.witness.use == "tap" and has_tap is False:
        raise ScenarioError(
            f"use: tap, but the run's Toxiproxy ({provider}) is a real Toxiproxy server and has "
            "no tap; use: auto or journal (with witness.journal) to take the backend journal",
            f"scenario {scenario.name}", key="witness.use")


REAL_SERVER = "a real Toxiproxy server has no tap"
TAP_OFF = "the proxy's tap is switched off (--no-tap / CHAOS_PROXY_TAP=0)"


def plan(scenario: Scenario, no_tap: str | None, provider: str) -> Plan:
    """The witness for a run; ``no_tap`` says why the server has no tap (None: it has one)."""
    witness = scenario.witness
    journal = (witness.journal.service, witness.journal.path) if witness.journal else None
    if witness.use == "off":
        return Plan("none", note="witness.use is off: retries and breakers are read from "
                    "probes only")
    proxies = witness_proxies(scenario)
    ciphered = sorted(set(proxies) & set(tls_proxies(scenario)))
    if ciphered and no_tap is None:
        no_tap = (f"proxy {', '.join(ciphered)} carries TLS (its upstream serves it): a tap "
                  "would read ciphertext")
    if witness.use in ("auto", "tap") and no_tap is None and proxies:
        return Plan("tap", proxies=proxies)
    if witness.use == "tap":
        raise ScenarioError(f"use: tap, but the run's Toxiproxy ({provider}) answers no tap: "
                            f"{no_tap}", f"scenario {scenario.name}", key="witness.use")
    why = no_tap or "no proxy stands in front of an upstream"
    if journal is not None:
        if witness.use == "journal":
            why = "witness.use is journal"
        return Plan("journal", journal=journal, note=f"{why}: the witness is the {journal[0]} "
                    "journal")
    return Plan("none", note=f"no witness: {why} and no journal is declared; retries and "
                "breakers are read from probes only")
