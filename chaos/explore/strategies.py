"""Hypothesis strategies for fault schedules.

A schedule is a list of fault windows played between a clean baseline and a clean
recovery; each window holds one or two faults drawn from the full toxic set (on the
scenario's proxies, either stream) and container actions on its services. Every
choice is ordered so that Hypothesis' shrinking moves toward the mildest schedule:
fewer windows, fewer faults, smaller attribute values, full toxicity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from chaos.scenario.model import Scenario

# Toxic -> attribute -> (low, high). Bounds keep every run short and its effect visible
# within a few seconds (a 3 s phase must still see requests finish or fail).
TOXIC_BOUNDS: dict[str, dict[str, tuple[int, int]]] = {
    "latency": {"latency": (0, 1500), "jitter": (0, 200)},
    "bandwidth": {"rate": (1, 1000)},  # KB/s
    "slow_close": {"delay": (0, 2000)},
    "timeout": {"timeout": (0, 3000)},
    "reset_peer": {"timeout": (0, 1000)},
    "slicer": {"average_size": (1, 1000), "size_variation": (0, 500), "delay": (0, 1000)},
    "limit_data": {"bytes": (0, 100_000)},
}
TOXIC_KINDS = tuple(TOXIC_BOUNDS)
# Actions taken at a window's start; the schedule undoes them when the window ends.
CONTAINER_KINDS = ("kill", "stop", "pause", "restart")
ALL_KINDS = TOXIC_KINDS + CONTAINER_KINDS
TOXICITIES = (1.0, 0.5, 0.25)


@dataclass(frozen=True)
class DrawnFault:
    """One drawn fault: a toxic on a proxy, or an action on a container."""

    kind: str  # a toxic type or a container action
    target: str  # proxy name (toxics) or service name (container actions)
    stream: str = "downstream"
    toxicity: float = 1.0
    attributes: tuple[tuple[str, int], ...] = ()

    @property
    def is_container(self) -> bool:
        return self.kind in CONTAINER_KINDS

    def describe(self) -> str:
        if self.is_container:
            return f"{self.kind} container {self.target}"
        attrs = ", ".join(f"{k}={v}" for k, v in self.attributes)
        share = "" if self.toxicity == 1 else f" toxicity={self.toxicity:g}"
        return f"{self.kind}({attrs}) {self.stream} on proxy {self.target}{share}"


@dataclass(frozen=True)
class Window:
    """A fault phase: its faults start together and end together."""

    duration: float
    faults: tuple[DrawnFault, ...]


@dataclass(frozen=True)
class Schedule:
    windows: tuple[Window, ...] = field(default_factory=tuple)

    @property
    def faults(self) -> list[DrawnFault]:
        return [f for w in self.windows for f in w.faults]

    def describe(self) -> str:
        return " | ".join("; ".join(f.describe() for f in w.faults) + f" for {w.duration:g}s"
                          for w in self.windows) or "(no faults)"


def sort_key(schedule: Schedule) -> tuple[int, int, int, float, str]:
    """Smaller schedules sort first: fewer faults, fewer windows, smaller values."""
    values = sum(v for f in schedule.faults for _, v in f.attributes)
    duration = sum(w.duration for w in schedule.windows)
    return (len(schedule.faults), len(schedule.windows), values, duration,
            schedule.describe())


def container_targets(scenario: Scenario) -> list[str]:
    """Services a schedule may act on: all but the load target (killing the gateway
    itself is a failure no gateway can hide, so it teaches nothing)."""
    return [name for name in scenario.services if name != scenario.load.target]


def fault_strategy(scenario: Scenario, kinds: tuple[str, ...] = ALL_KINDS,
                   ) -> st.SearchStrategy[DrawnFault]:
    proxies = sorted(scenario.proxies)
    services = container_targets(scenario)
    options: list[st.SearchStrategy[DrawnFault]] = []
    toxic_kinds = [k for k in kinds if k in TOXIC_BOUNDS]
    if proxies and toxic_kinds:
        options.append(st.sampled_from(toxic_kinds).flatmap(
            lambda kind: _toxic(kind, proxies)))
    container_kinds = [k for k in kinds if k in CONTAINER_KINDS]
    if services and container_kinds:
        options.append(st.builds(DrawnFault, kind=st.sampled_from(container_kinds),
                                 target=st.sampled_from(services)))
    if not options:
        raise ValueError("no fault can be drawn: the scenario has no proxies or services "
                         "to act on, or --faults left nothing")
    return st.one_of(options)


def _toxic(kind: str, proxies: list[str]) -> st.SearchStrategy[DrawnFault]:
    bounds = TOXIC_BOUNDS[kind]
    attrs = st.tuples(*(st.tuples(st.just(name), st.integers(low, high))
                        for name, (low, high) in bounds.items()))
    return st.builds(DrawnFault, kind=st.just(kind), target=st.sampled_from(proxies),
                     stream=st.sampled_from(("downstream", "upstream")),
                     toxicity=st.sampled_from(TOXICITIES), attributes=attrs)


def schedule_strategy(scenario: Scenario, phase_duration: float = 6.0,
                      kinds: tuple[str, ...] = ALL_KINDS, max_windows: int = 2,
                      max_faults: int = 2) -> st.SearchStrategy[Schedule]:
    """Schedules of 1..max_windows windows, each 1..max_faults faults long."""
    low = max(1.0, phase_duration / 2)
    durations = st.sampled_from(sorted({phase_duration, low}, reverse=True))
    window = st.builds(Window, duration=durations,
                       faults=st.lists(fault_strategy(scenario, kinds), min_size=1,
                                       max_size=max_faults).map(tuple))
    return st.lists(window, min_size=1, max_size=max_windows).map(
        lambda ws: Schedule(tuple(ws)))


def parse_kinds(text: str | None) -> tuple[str, ...]:
    """`--faults latency,reset_peer,kill` -> the kinds a search may draw."""
    if not text:
        return ALL_KINDS
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in ALL_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; "
                         f"known: {', '.join(ALL_KINDS)}")
    return kinds
