"""The loader's cross-checks of TLS (issue 22): a `tls` fault names a service that serves
TLS; the harness gives certificates only to services it starts, so `tls: true` and
`load.tls` need services with build: or image:, not url:."""

from __future__ import annotations

from chaos.scenario.model import Scenario, TlsFault
from chaos.scenario.references import unknown
from chaos.scenario.yaml_marks import MarkedDocument


def uses_tls(scenario: Scenario) -> bool:
    return scenario.load.tls or any(s.tls for s in scenario.services.values())


def serving(scenario: Scenario) -> set[str]:
    """The services that serve TLS: each with tls: true, and the target of load.tls."""
    names = {name for name, service in scenario.services.items() if service.tls}
    return names | ({scenario.load.target} if scenario.load.tls else set())


def tls_proxies(scenario: Scenario) -> list[str]:
    """The proxies whose upstream serves TLS (to them it is bytes: a tap reads ciphertext)."""
    names = serving(scenario)
    return [name for name, proxy in scenario.proxies.items()
            if proxy.upstream.split(":")[0] in names]


def check_tls(scenario: Scenario, doc: MarkedDocument) -> None:
    target = scenario.load.target
    if scenario.load.tls:
        service = scenario.services.get(target)
        if service is not None and service.url is not None:
            raise doc.error(("load", "tls"), f"the target {target!r} is a service already "
                            "running (url:): the harness cannot give it the run's certificate")
    for name, service in scenario.services.items():
        if service.tls and service.url is not None:
            raise doc.error(("services", name, "tls"), "a service already running (url:) "
                            "cannot be given the run's certificate; only build: or image: ones")
    names = serving(scenario)
    for i, phase in enumerate(scenario.phases):
        for j, fault in enumerate(phase.faults):
            if isinstance(fault, TlsFault) and fault.service not in names:
                raise doc.error(("phases", i, "faults", j, "service"),
                                unknown("service that serves TLS (tls: true, or the target of "
                                        "load.tls)", fault.service, names))
