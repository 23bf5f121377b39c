"""Switching one fault on and off during a phase: the injection, its record, its events.

A toxic lives inside the proxy server, so the ledger names it before it exists and marks
it removed once it is gone; a container fault may move a service (the stack is told); a
restore (start, unpause) is an instant with nothing to remove.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from chaos.faults.base import FaultContext, Injected
from chaos.faults.registry import inject
from chaos.faults.toxics import toxic_name
from chaos.observe.events import EventBus, FaultInjected, FaultRemoved
from chaos.runtime.ledger import Ledger
from chaos.scenario.model import ContainerFault, Fault, ToxicFault
from chaos.verdict.result import FaultRecord, PhaseWindow


@dataclass
class Active:
    """A fault that is on: removed at `off` (epoch seconds) or with its phase."""

    fault: Fault
    injected: Injected
    record: FaultRecord
    off: float
    ledger_key: str | None = None


class FaultSwitch:
    """Applies and removes faults for the phase loop; keeps every fault's record."""

    def __init__(self, bus: EventBus, since: Callable[[float], float],
                 ledger: Callable[[], Ledger | None], moved: Callable[[set[str]], None],
                 proxy_dead: Callable[[], bool]) -> None:
        self.bus, self.since, self.ledger = bus, since, ledger
        self.moved, self.proxy_dead = moved, proxy_dead
        self.records: list[FaultRecord] = []

    def apply(self, fault: Fault, index: int, phase: str, ctx: FaultContext,
              window: PhaseWindow, off: float, active: list[Active]) -> None:
        """Inject; the fault is active (to be removed) before anyone hears of it."""
        key = self._intend_toxic(fault, index)
        requested = time.time()  # the fault's window starts here, not when Docker returns
        injected = inject(fault, ctx, index)
        completed = time.time()
        if isinstance(fault, ContainerFault):
            self.moved({fault.container})  # a started container: new address?
        restore = isinstance(fault, ContainerFault) and fault.restores
        record = FaultRecord(phase, injected.description, self.since(requested),
                             completed=self.since(completed),
                             kind="restore" if restore else "fault")
        self.records.append(record)
        window.faults.append(injected.description)
        active.append(Active(fault, injected, record, off, key))  # a listener's Ctrl-C: removed
        self.bus.emit(FaultInjected(phase=phase, description=injected.description,
                                    requested=requested, completed=completed, restore=restore))

    def remove(self, item: Active, phase: str) -> None:
        """A restore is an instant: nothing to remove, no window to end."""
        if item.record.kind == "restore":
            return
        self._undo(item, phase)
        if isinstance(item.fault, ContainerFault) and item.injected.undo is not None:
            self.moved({item.fault.container})  # started again: maybe a new address

    def _undo(self, item: Active, phase: str) -> None:
        requested = time.time()
        item.record.end = self.since(requested)
        if item.injected.undo is None:
            return
        if self.proxy_dead() and item.ledger_key is not None:  # a toxic on a dead server
            item.record.error = "not removed: the Toxiproxy server had died"
            return
        try:
            item.injected.undo()
            completed = time.time()
            item.record.removed = self.since(completed)
            ledger = self.ledger()
            if item.ledger_key is not None and ledger is not None:
                ledger.removed("toxic", item.ledger_key)
            self.bus.emit(FaultRemoved(phase=phase, description=item.injected.description,
                                       requested=requested, completed=completed))
        except Exception as exc:  # noqa: BLE001 - teardown removes it anyway
            item.record.error = f"could not remove: {exc}"

    def _intend_toxic(self, fault: Fault, index: int) -> str | None:
        """Toxics live inside the proxy server: the ledger names them before they exist."""
        ledger = self.ledger()
        if not isinstance(fault, ToxicFault) or ledger is None:
            return None
        name = toxic_name(fault, index)
        key = f"{fault.proxy}/{name}"
        ledger.intend("toxic", key, proxy=fault.proxy, toxic=name)
        return key
