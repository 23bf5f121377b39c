"""Values that validate used to accept and the run then tripped over: each is refused by
`chaos validate` with file:line: key, exit 2 (and `chaos run` refuses it the same way)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chaos.cli import main

BASE = """\
name: holes
services:
  backend:
    build: docker/backend
    port: 8080
  gateway:
    build: docker/gateway
    port: 8000
    publish: false
    env:
      UPSTREAM_URL: "${proxy.backend}"
proxies:
  backend: {upstream: "backend:8080"}
load:
  target: gateway
  users: 5
  spawn_rate: 5
  timeout: 5s
  connect_timeout: 2s
  master_bind: "127.0.0.1:5557"
  retry_header: X-Gateway-Retries
  requests:
    - name: get
      path: /api/items/1
      stream: false
      headers:
        X-Test: "yes"
probes:
  breaker:
    service: gateway
    open_value: 1
    interval: 250ms
  upstream_requests:
    service: backend
    interval: 500ms
capture:
  ss_interval: 1s
phases:
  - name: baseline
    duration: 5s
  - name: fault
    duration: 10s
    faults:
      - proxy: backend
        redraw_every: 1s
        toxic:
          type: latency
          attributes:
            latency: 100
assertions:
  - phase: fault
    breaker: {opens_within: 5s}
    rst_from:
      gateway: 0
"""

# case: (text in BASE, replacement, key path in the error, fragment of the message)
HOLES: dict[str, tuple[str, str, str, str]] = {
    "timeout_0": ("  timeout: 5s", "  timeout: 0", "load.timeout", "at least 1ms"),
    "connect_timeout_0": ("  connect_timeout: 2s", "  connect_timeout: 0s",
                          "load.connect_timeout", "at least 1ms"),
    "breaker_interval_0": ("    interval: 250ms", "    interval: 0", "probes.breaker.interval",
                           "at least 10ms"),
    "counter_interval_0": ("    interval: 500ms", "    interval: 0ms",
                           "probes.upstream_requests.interval", "at least 10ms"),
    "ss_interval_0": ("  ss_interval: 1s", "  ss_interval: 0", "capture.ss_interval",
                      "at least 100ms"),
    "redraw_0": ("        redraw_every: 1s", "        redraw_every: 0",
                 "phases[1].faults[0].redraw_every", "at least 10ms"),
    "open_value_nan": ("    open_value: 1", "    open_value: .nan", "probes.breaker.open_value",
                       "finite number"),
    "open_value_inf": ("    open_value: 1", "    open_value: -.inf", "probes.breaker.open_value",
                       "finite number"),
    "master_bind_port": ('  master_bind: "127.0.0.1:5557"', '  master_bind: "127.0.0.1:99999"',
                         "load.master_bind", "out of range 1-65535"),
    "master_bind_host": ('  master_bind: "127.0.0.1:5557"', '  master_bind: "1.2.3:5557"',
                         "load.master_bind", "expected IP:PORT"),
    "header_value_crlf": ('        X-Test: "yes"', '        X-Test: "yes\\r\\nX-Evil: 1"',
                          "load.requests[0].headers", "CR, LF"),
    "header_name_crlf": ('        X-Test: "yes"', '        "X-Test\\r\\nX-Evil": "1"',
                         'load.requests[0].headers["X-Test\\r\\nX-Evil"]', "pattern"),
    "header_name_space": ('        X-Test: "yes"', '        "X Test": "1"',
                          'load.requests[0].headers["X Test"]', "pattern"),
    "path_crlf": ("      path: /api/items/1", '      path: "/api\\r\\nHost: evil"',
                  "load.requests[0].path", "pattern"),
    "retry_header_lf": ("  retry_header: X-Gateway-Retries", '  retry_header: "X-Retries\\n"',
                        "load.retry_header", "pattern"),
    "users_true": ("  users: 5", "  users: true", "load.users", "valid integer"),
    "spawn_rate_true": ("  spawn_rate: 5", "  spawn_rate: true", "load.spawn_rate",
                        "valid number"),
    "port_true": ("    port: 8080", "    port: true", "services.backend.port", "valid integer"),
    "publish_1": ("    publish: false", "    publish: 1", "services.gateway.publish",
                  "valid boolean"),
    "stream_string": ("      stream: false", '      stream: "yes"', "load.requests[0].stream",
                      "valid boolean"),
    "attribute_true": ("            latency: 100", "            latency: true",
                       "phases[1].faults[0].toxic.attributes.latency", "valid integer"),
    "attribute_typo": ("            latency: 100", "            latncy: 100",
                       "phases[1].faults[0].toxic", "takes no attribute 'latncy'"),
    "ref_upper": ('"${proxy.backend}"', '"${proxy.BACKEND}"', "services.gateway.env.UPSTREAM_URL",
                  "is not a reference"),
    "ref_kind": ('"${proxy.backend}"', '"${nosuch.x}"', "services.gateway.env.UPSTREAM_URL",
                 "is not a reference"),
    "ref_empty": ('"${proxy.backend}"', '"${proxy.}"', "services.gateway.env.UPSTREAM_URL",
                  "is not a reference"),
    "ref_unclosed": ('"${proxy.backend}"', '"http://${proxy.backend"',
                     "services.gateway.env.UPSTREAM_URL", "is not a reference"),
    "ref_second": ('"${proxy.backend}"', '"${proxy.backend},${service.nope}"',
                   "services.gateway.env.UPSTREAM_URL", "unknown service 'nope'"),
    "rst_from_unknown": ("      gateway: 0", "      gatway: 0", "assertions[0].rst_from.gatway",
                         "unknown service 'gatway'"),
    "rst_from_receiver": ("      gateway: 0", "      gateway->clients: 0",
                          'assertions[0].rst_from["gateway->clients"]',
                          "unknown service 'clients'"),
    "json_nan": ("      stream: false", "      stream: false\n      json: {x: .nan}",
                 "load.requests[0].json", "plain JSON"),
}


def _write(tmp_path: Path, old: str, new: str) -> tuple[Path, str]:
    assert BASE.count(old) == 1, old
    text = BASE.replace(old, new)
    path = tmp_path / "holes.yaml"
    path.write_text(text, encoding="utf-8")
    return path, text


def test_the_base_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _write(tmp_path, "name: holes", "name: holes")
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("case", sorted(HOLES))
def test_refused_with_file_line_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    old, new, key, fragment = HOLES[case]
    path, text = _write(tmp_path, old, new)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if new.splitlines()[-1] in row)

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("run_scenario was called")

    monkeypatch.setattr("chaos.engine.run_scenario", forbidden)
    for command in ("validate", "run"):
        code = main([command, str(path), *(["--report-dir", str(tmp_path)] * (command == "run"))])
        err = capsys.readouterr().err
        assert code == 2, (command, err)
        assert len(err.splitlines()) == 1, err
        prefix = f"{path}:{line}: {key}: "
        if case.startswith("header_value") or case == "attribute_typo":
            prefix = f"{path}:"  # the error is on the mapping: its first line
        assert err.startswith(prefix), (prefix, err)
        assert fragment in err, err
