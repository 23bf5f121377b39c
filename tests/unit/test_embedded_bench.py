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


def test_tap_on_and_off_alternate_and_the_added_p50_is_per_block() -> None:
    calls: list[str] = []
    pairs = bench_proxy.paired(lambda: calls.append("off") or 1.0,
                               lambda: calls.append("on") or 2.0, 3)
    assert calls == ["off", "on", "on", "off", "off", "on"] and pairs == [(1.0, 2.0)] * 3
    # Block 2 ran while the machine was busy for both sides: pooling would blur that.
    blocks = [([0.10, 0.10, 0.10], [0.12, 0.12, 0.12]),
              ([0.50, 0.50, 0.50], [0.53, 0.53, 0.53]),
              ([0.10, 0.10, 0.10], [0.11, 0.11, 0.11])]
    assert bench_proxy.added_p50(blocks) == pytest.approx(0.02)


def test_http_exchanges_through_the_peer() -> None:
    import socket
    import threading

    from benchmarks import peer

    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            threading.Thread(target=peer._serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    with listener:
        assert bench_proxy.http_bulk(port, 2) > 0
        assert len(bench_proxy.http_ping_pong(port, 20, warmup=2)) == 20
