"""Properties of the join (Hypothesis): the whole run is the sum of its phases, and a
gateway that sends every request at least once amplifies by at least 1."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.witness.analysis import analyse
from tests.fixtures.witness_files import T0, attempt, client, windows, write

PHASES = windows(("a", 0.0, 5.0), ("b", 5.0, 10.0))
REQUEST = st.tuples(st.floats(0.0, 9.9), st.integers(1, 4), st.sampled_from(["ok", "reset"]))
STRAY = st.tuples(st.floats(0.0, 12.0), st.booleans())  # (time, carries an unknown id)


def _files(requests: list[tuple[float, int, str]], strays: list[tuple[float, bool]],
           folder: Path) -> tuple[Path, Path]:
    clients, attempts = [], []
    for i, (t, n, outcome) in enumerate(requests):
        clients.append(client(f"r{i}", t, outcome, phase="a" if t < 5.0 else "b"))
        attempts += [attempt(f"r{i}", t + k * 0.01) for k in range(n)]
    attempts += [attempt(f"x{i}" if named else None, t) for i, (t, named) in enumerate(strays)]
    return write(folder, clients, attempts)


@settings(max_examples=60, deadline=None)
@given(st.lists(REQUEST, max_size=30), st.lists(STRAY, max_size=10))
def test_phases_sum_to_the_whole_run(requests: list[tuple[float, int, str]],
                                     strays: list[tuple[float, bool]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        found = analyse(*_files(requests, strays, Path(folder)), T0, PHASES, ())
    m = found.mechanisms()
    for key in ("requests", "attempts", "retried", "ok_after_retry", "abandoned", "shed"):
        assert m["whole"][key] == sum(p[key] for p in m["by_phase"].values()), key
    assert m["whole"]["max_attempts"] == max([n for _, n, _ in requests], default=0)
    assert m["whole"]["ok_after_retry"] == sum(1 for _, n, o in requests if o == "ok" and n > 1)
    counts = found.index.counts()
    assert counts["matched"] == sum(n for _, n, _ in requests)
    assert counts["matched"] + counts["unmatched"] + counts["no_id"] == len(found.index.ordered)


@settings(max_examples=60, deadline=None)
@given(st.lists(REQUEST, min_size=1, max_size=30))
def test_amplification_is_at_least_one_when_every_request_reached_the_upstream(
        requests: list[tuple[float, int, str]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        found = analyse(*_files(requests, [], Path(folder)), T0, PHASES, ())
    whole = found.mechanisms()["whole"]
    assert whole["amplification"] >= 1.0 and whole["attempts_per_request"] >= 1.0
    assert found.breaker_inferred() == []  # no request went without an attempt
