"""The `llm` phase fault (chaos/faults/llm.py) against the provider served in-process: its
rules answer while it is on and not after; a provider that refuses or does not answer is
a fault not applied (exit 3)."""

from __future__ import annotations

import socket
from typing import Any, cast

import pytest
import requests

from chaos.errors import FaultNotApplied
from chaos.faults.base import FaultContext
from chaos.faults.registry import inject
from chaos.scenario.model import LlmFault
from tests.fixtures.llm_provider import ProviderThread

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _fault(**rule: Any) -> LlmFault:
    return LlmFault.model_validate({"service": "provider-a", "llm": [rule]})


def _context(url: str) -> FaultContext:
    return FaultContext(cast(Any, None), cast(Any, None), lambda name: url)


def _status(url: str) -> int:
    return requests.post(f"{url}/v1/chat/completions", json=BODY, timeout=5).status_code


def test_the_rules_answer_while_the_fault_is_on() -> None:
    with ProviderThread({"token_delay": 0, "first_token_delay": 0}) as provider:
        fault = _fault(when={"requests": "2"}, do={"status": 503, "retry_after": "1s"})
        injected = inject(fault, _context(provider.url), 0)
        assert "rule set r1" in injected.description
        assert [_status(provider.url) for _ in range(3)] == [503, 503, 200]
        assert injected.undo is not None
        injected.undo()
        sets = requests.get(f"{provider.url}/_chaos/rules", timeout=5).json()["rule_sets"]
        assert [s["id"] for s in sets] == ["script"]
        assert [r["rule"] for r in provider.journal()] == ["r1#0", "r1#0", None]
        injected.undo()  # already gone (a restarted provider): no error


def test_a_provider_that_does_not_answer_is_exit_3() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens there once closed
    with pytest.raises(FaultNotApplied, match="did not answer") as caught:
        inject(_fault(do={"status": 500}), _context(f"http://127.0.0.1:{port}"), 0)
    assert caught.value.exit_code == 3


def test_a_provider_that_refuses_the_rules_is_exit_3() -> None:
    with ProviderThread() as provider, pytest.raises(FaultNotApplied, match="HTTP 404"):
        inject(_fault(do={"status": 500}), _context(provider.url + "/nowhere"), 0)
