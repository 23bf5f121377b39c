"""benchmarks/bench_proxy.py pairs its bulk runs: side by side, order alternating, median ratio."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_proxy.py"
_SPEC = importlib.util.spec_from_file_location("bench_proxy", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
bench_proxy = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("bench_proxy", bench_proxy)
_SPEC.loader.exec_module(bench_proxy)


def test_bulk_rounds_alternate_and_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    speeds = {1: iter([100.0, 50.0, 200.0, 100.0]), 2: iter([60.0, 20.0, 90.0, 70.0])}

    def fake(port: int, megabytes: int) -> float:
        calls.append(port)
        return next(speeds[port])

    monkeypatch.setattr(bench_proxy, "throughput", fake)
    pairs = bench_proxy.bulk_pairs(1, 2, 8, 4)
    assert calls == [1, 2, 2, 1, 1, 2, 2, 1]  # direct first, then proxied first, ...
    assert pairs == [(100.0, 60.0), (50.0, 20.0), (200.0, 90.0), (100.0, 70.0)]


def test_ratio_is_the_median_of_pair_ratios_not_best_against_best() -> None:
    # Best against best would say 90/200 = 45%; the pairs say 40%, 45%, 60%, 70%.
    pairs = [(100.0, 60.0), (50.0, 20.0), (200.0, 90.0), (100.0, 70.0)]
    direct, proxied, ratio = bench_proxy.bulk_figures(pairs)
    assert ratio == pytest.approx(0.525)
    assert (direct, proxied) == (100.0, 65.0)
