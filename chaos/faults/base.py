"""What every fault family provides: inject now, and maybe something to undo later."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chaos.proxy.client import ToxiproxyClient
from chaos.runtime.environment import RunEnvironment
from chaos.tls.run import RunTls


@dataclass
class FaultContext:
    """What a fault can act on during a run."""

    proxies: ToxiproxyClient
    env: RunEnvironment
    service_url: Callable[[str], str] | None = None  # where the harness reaches a service
    tls: RunTls | None = None  # the run's CA and TLS folders (services with tls: true)


@dataclass
class Injected:
    """A fault that is active; `undo` (if any) is called at the end of its phase."""

    description: str
    undo: Callable[[], None] | None = None
    every: float | None = None  # call `again` this often while the phase lasts
    again: Callable[[], None] | None = None
