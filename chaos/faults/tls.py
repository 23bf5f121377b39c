"""The `tls` fault: a service serves another certificate (expired, wrong host, untrusted)
or only an old TLS version, and back.

On: the service's TLS folder gets the bad files (chaos.tls.files, atomic renames) and the
container is sent SIGHUP, on which the reference services re-read it; off: the good files
and SIGHUP again. A container that cannot be signalled is a harness part that broke
(FaultNotApplied, exit 3), never the gateway's failure.
"""

from __future__ import annotations

import docker.errors

from chaos.errors import FaultNotApplied
from chaos.faults.base import FaultContext, Injected
from chaos.scenario.model import TlsFault


def inject_tls(fault: TlsFault, ctx: FaultContext, index: int) -> Injected:
    description = fault.describe()
    if ctx.tls is None or fault.service not in ctx.tls.services:
        raise FaultNotApplied(description, f"{fault.service} has no TLS folder in this run")
    folder = ctx.tls.services[fault.service]

    def swap(kind: str, version: str | None) -> None:
        folder.serve(kind, version)  # type: ignore[arg-type]
        try:
            ctx.env.container(fault.service).kill(signal="SIGHUP")
        except (docker.errors.APIError, KeyError) as exc:
            raise FaultNotApplied(description, f"cannot signal {fault.service} to reload "
                                  f"its certificate: {exc}") from None

    swap(fault.tls, fault.max_version)
    return Injected(description, undo=lambda: swap("valid", None))
