"""The reference apps (docker/backend/app.py, docker/gateway/app.py) as local processes.

Each app's output goes to a file, so a full pipe never blocks it; its environment starts
clean, like a container's: no GATEWAY_* knobs from the caller's shell.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from chaos.runtime.paths import shared_modules

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 15.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class AppProcess:
    """A reference app running as a subprocess on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    name: str = ""

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=3)

    def healthy(self, path: str = "/healthz", timeout: float = START_TIMEOUT_S) -> bool:
        """Waits until `path` answers 200; False when the app exited or the time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url + path, timeout=0.5).status_code == 200:
                    return True
            time.sleep(0.05)
        return False


def clean_env(overrides: dict[str, str]) -> dict[str, str]:
    """The caller's environment minus the apps' knobs, plus `overrides`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GATEWAY_") and k not in ("UPSTREAM_URL", "DEFAULT_DELAY_MS")}
    env.update({"HOST": LOOPBACK, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONPATH": str(shared_modules())})  # as in the images: beside app.py
    env.update(overrides)
    return env


def launch(script: Path, port: int, log_path: Path, env: dict[str, str],
           name: str = "") -> AppProcess:
    """Start an app (not waiting for it) in its own session: a terminal's Ctrl-C is not for it."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(script)], env=clean_env({"PORT": str(port), **env}),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return AppProcess(process, port, log_path, name)
