"""The provider journals of a run: every service with ``llm:`` polled into providers.ndjson.

Independent of the run's upstream witness (chaos.witness.plan): a run whose witness is the
proxy tap, or none, still reads what each LLM provider answered. The polling machinery is
the witness's (chaos.witness.poll.WitnessPoller: a thread each second, a last drain before
teardown, a source silent while the scenario faulted its service is a gap, otherwise a dead
harness part); each line is a journal record plus ``provider`` and ``source``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos.llm.journal import PROVIDERS_FILE
from chaos.scenario.llm_bounds import provider_names
from chaos.witness.poll import Source, WitnessPoller

if TYPE_CHECKING:
    from chaos.scenario.model import Scenario
    from chaos.stack.base import Stack

JOURNAL_PATH = "/journal"


def providers(scenario: Scenario) -> dict[str, str]:
    """Service name -> provider name, for every LLM provider of the scenario."""
    return provider_names(scenario)


class ProviderPoller(WitnessPoller):
    """The witness poller, each record tagged with the provider it came from."""

    def __init__(self, sources: list[Source], path: Path, names: dict[str, str],
                 excused: Callable[[str], bool]) -> None:
        super().__init__(sources, path, excused)
        self.names = names  # source name -> provider name

    def _write(self, records: list[dict[str, Any]], source: str) -> None:
        if not records:
            return
        if self._out is None:
            self._out = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - stop() closes
        provider = self.names.get(source, source.partition(":")[2])
        self._out.write("".join(json.dumps({**r, "provider": r.get("provider") or provider,
                                            "source": source}, separators=(",", ":")) + "\n"
                                for r in records))


def start_providers(scenario: Scenario, stack: Stack, run_dir: Path,
                    excused: Callable[[str], bool]) -> ProviderPoller | None:
    """The provider journals' poller, started (None: the scenario has no LLM provider)."""
    sources, names = [], {}
    for service, provider in providers(scenario).items():
        def where(service: str = service) -> str:
            return stack.service_url(service) + JOURNAL_PATH

        source = Source(f"provider:{service}", where(), service=service, resolve=where)
        sources.append(source)
        names[source.name] = provider
    if not sources:
        return None
    poller = ProviderPoller(sources, run_dir / PROVIDERS_FILE, names, excused)
    poller.start()
    return poller
