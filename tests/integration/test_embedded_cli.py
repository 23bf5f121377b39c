"""``chaos toxiproxy serve``: the console script starts the embedded server.

Runs the installed ``chaos`` script as a user would, finds the API port from
its log line, checks /version, that the API is bound to 127.0.0.1 by default
(the kernel's own listener table, not the log), and the exit codes of
``chaos.proxy.embedded.__main__.main``; and ``python -m chaos.proxy.embedded`` with a
config file, stopped by SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from chaos.proxy.embedded.__main__ import main

CHAOS = Path(sys.executable).parent / "chaos"
LOOPBACK = "127.0.0.1"
UPSTREAM = f"{LOOPBACK}:9"  # never dialled


def _listeners(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp* shows them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                address, hexport = fields[1].split(":")
                if fields[3] == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                    found.add(address)
    return found


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    command = [str(CHAOS) if CHAOS.exists() else shutil.which("chaos") or "chaos",
               "toxiproxy", "serve", *args]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if match := re.search(r"listening on (http://\S+:\d+)", line):
            process.line = line.rstrip()  # type: ignore[attr-defined]
            return process, match.group(1)
        if len(lines) > 50:
            break
    process.kill()
    raise AssertionError("no 'listening on' line:\n" + "".join(lines))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp")
def test_serve_answers_version_on_loopback_only() -> None:
    process, url = _start("--port", "0")
    try:
        assert url.startswith("http://127.0.0.1:")
        port = int(url.rsplit(":", 1)[1])
        assert requests.get(f"{url}/version", timeout=5).json()["version"].startswith("2.")
        assert _listeners(port) == {"0100007F"}  # 127.0.0.1 only, no wildcard or v6
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_main_returns_exit_codes(tmp_path: Path) -> None:
    assert main(["--port", "0", "--config", str(tmp_path / "missing.json")]) == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["--port", str(taken.getsockname()[1])]) == 3


@pytest.mark.parametrize(("args", "loop"), [
    (["--loop", "asyncio"], "asyncio"), (["--loop", "uvloop"], "uvloop"), ([], "uvloop")])
def test_serve_loop_option_is_the_loop_it_runs(args: list[str], loop: str) -> None:
    pytest.importorskip("uvloop")
    process, url = _start("--port", "0", *args)
    try:
        assert requests.get(f"{url}/version", timeout=5).ok
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert process.line.endswith(f"(loop {loop})")  # type: ignore[attr-defined]


def test_loop_uvloop_without_uvloop_is_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert main(["--port", "0", "--loop", "uvloop"]) == 2


def test_module_entry_point_config_and_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "cfg", "listen": f"{LOOPBACK}:0",
                                   "upstream": UPSTREAM}]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "chaos.proxy.embedded", "--port", "0", "--config", str(config)],
        stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 10
        url = None
        lines = []
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            lines.append(line)
            if match := re.search(r"listening on (http://[\d.]+:\d+)", line):
                url = match.group(1)
        assert url is not None, "".join(lines)
        assert url.startswith(f"http://{LOOPBACK}:")
        assert list(requests.get(f"{url}/proxies", timeout=5).json()) == ["cfg"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        rest = process.stderr.read()
        assert "api GET /proxies -> 200" in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_no_tap_answers_tap_false() -> None:
    process, url = _start("--port", "0", "--no-tap")
    try:
        created = requests.post(f"{url}/proxies", json={
            "name": "p", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}, timeout=5)
        assert created.status_code == 201, created.text
        page = requests.get(f"{url}/proxies/p/attempts", timeout=5).json()
        assert page["tap"] is False and page["attempts"] == []
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
