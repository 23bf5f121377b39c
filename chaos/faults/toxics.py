"""Toxiproxy toxics (latency, reset_peer, timeout, bandwidth, slow_close, ...) on a proxy."""

from __future__ import annotations

from chaos.faults.base import FaultContext, Injected
from chaos.scenario.model import ToxicFault


def toxic_name(fault: ToxicFault, index: int) -> str:
    """The toxic's name on the server: the scenario's, else type_stream_index (unique in a
    phase, so two toxics of one type on one proxy do not collide). The ledger records it
    before the toxic exists (chaos.faults.switch)."""
    return fault.toxic.name or f"{fault.toxic.type}_{fault.toxic.stream}_{index}"


def inject_toxic(fault: ToxicFault, ctx: FaultContext, index: int) -> Injected:
    """Add the toxic for the length of its phase; the undo removes exactly this toxic."""
    toxic = fault.toxic
    name = toxic_name(fault, index)
    added = ctx.proxies.add_toxic(
        fault.proxy, toxic.type, stream=toxic.stream, toxicity=toxic.toxicity,
        attributes=toxic.api_attributes(), name=name,
    )

    def undo() -> None:
        ctx.proxies.remove_toxic(fault.proxy, added)

    def redraw() -> None:
        """Remove and add again: every open connection draws its toxicity anew."""
        ctx.proxies.remove_toxic(fault.proxy, added)
        ctx.proxies.add_toxic(fault.proxy, toxic.type, stream=toxic.stream,
                              toxicity=toxic.toxicity, attributes=toxic.api_attributes(),
                              name=added)

    return Injected(fault.describe(), undo=undo, every=fault.redraw_every, again=redraw)
