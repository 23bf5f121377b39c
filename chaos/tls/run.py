"""One run's TLS (issue 22): its CA, a folder per service, who serves TLS, and what the
stack, the load generator and the harness's own requests need from them.

Made by the Docker stack before the services start, only when the scenario uses TLS (a
service with `tls: true`, or `load.tls`); removed with the run (the stack registers
`close()` on its ExitStack). Each service gets its folder mounted read-only at MOUNT and
TLS_CA (the run's CA, for https:// upstreams); those that serve TLS also get TLS_DIR.
Certificates name the service, the host the proxies are reached at (so a gateway dialling
`https://toxiproxy:PORT` for a proxied upstream verifies it), localhost and 127.0.0.1 (the
harness reaches published ports there).

The harness's own requests to a TLS service (health, the journal, probes) are verified
against the run's CA too: for the run, REQUESTS_CA_BUNDLE names a bundle of the run's CA
and requests' usual one (certifi), which requests reads when `verify` is left at True.
"""

from __future__ import annotations

import os
from pathlib import Path

import certifi

from chaos.scenario.model import Scenario
from chaos.scenario.tls_checks import serving
from chaos.tls.ca import RunCA
from chaos.tls.files import MOUNT, ServiceTls

BUNDLE_ENV = "REQUESTS_CA_BUNDLE"


class RunTls:
    """The run's CA and the folders of `services` (those the harness starts)."""

    def __init__(self, scenario: Scenario, run_dir: Path, services: list[str],
                 proxy_host: str) -> None:
        self.serving = serving(scenario)
        self.ca = RunCA(run_dir / "tls")
        self.services = {name: ServiceTls(self.ca, name, _hosts(name, proxy_host))
                         for name in services}
        self._saved_bundle: str | None = None
        self._trusting = False

    def env(self, name: str) -> dict[str, str]:
        """What a service's environment gets: TLS_CA always, TLS_DIR when it serves TLS."""
        env = {"TLS_CA": f"{MOUNT}/ca.pem"}
        if name in self.serving:
            env["TLS_DIR"] = MOUNT
        return env

    def mount(self, name: str) -> dict[str, dict[str, str]]:
        """The Docker SDK's `volumes` for a service: its folder, read-only, at MOUNT."""
        return {str(self.services[name].folder.resolve()): {"bind": MOUNT, "mode": "ro"}}

    def scheme(self, name: str) -> str:
        return "https" if name in self.serving else "http"

    def load(self, target: str) -> dict[str, str] | None:
        """The load generator's TLS settings (chaos.load.locustfile) for `target`."""
        if target not in self.serving:
            return None
        return {"ca": str(self.ca.bundle.resolve()), "server_hostname": target}

    def trust(self) -> None:
        """From now until close(), the harness's own requests trust the run's CA too."""
        bundle = self.ca.folder / "harness-bundle.pem"
        bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n"
                           + self.ca.bundle.read_bytes())
        self._saved_bundle = os.environ.get(BUNDLE_ENV)
        os.environ[BUNDLE_ENV] = str(bundle)
        self._trusting = True

    def close(self) -> None:
        """Stop trusting the run's CA and remove every file (idempotent)."""
        if self._trusting:
            if self._saved_bundle is None:
                os.environ.pop(BUNDLE_ENV, None)
            else:
                os.environ[BUNDLE_ENV] = self._saved_bundle
            self._trusting = False
        self.ca.remove()


def _hosts(name: str, proxy_host: str) -> tuple[str, ...]:
    hosts = [name, proxy_host, "localhost", "127.0.0.1"]
    return tuple(dict.fromkeys(h for h in hosts if h))
