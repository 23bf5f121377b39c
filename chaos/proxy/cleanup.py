"""Removing the proxies a run created on a user's Toxiproxy server (TOXIPROXY_URL).

A remover for the cleanup ledger (chaos.runtime.ledger): it lives with the proxy client so
that the runtime layer never imports the proxy layer; the stack and `chaos doctor` hand it
to the ledger's unwind.
"""

from __future__ import annotations

from chaos.errors import ProxyError
from chaos.proxy.client import ToxiproxyClient
from chaos.proxy.external import owned_by_run
from chaos.runtime.ledger import Entry, Remover


def proxy_remover(run_id: str, timeout: float = 5.0) -> dict[str, Remover]:
    """Proxies a run created on a user's Toxiproxy server (TOXIPROXY_URL), by its API.

    Only entries marked ``external`` whose name carries this run's prefix are deleted
    (a proxy inside the run's own container goes with the container); a proxy already
    gone counts as removed, an unreachable server leaves the entry for the next try.
    """
    def proxy(entry: Entry) -> None:
        api = entry.info.get("api")
        if not entry.info.get("external") or not api or not owned_by_run(entry.name, run_id):
            return
        with ToxiproxyClient(str(api), timeout=timeout) as client:
            try:
                client.delete_proxy(entry.name)
            except ProxyError as exc:
                if exc.status != 404:  # 404: already gone (never made, or removed by hand)
                    raise

    return {"proxy": proxy}
