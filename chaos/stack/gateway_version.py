"""A gateway profile's exact version: its ``version`` command run in the ready container.

Bounded by a timeout (a hung ``docker exec`` is abandoned on a daemon thread); any failure
is a warning on the console, never a failed run: the version only labels the result.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

VERSION_TIMEOUT = 10.0  # seconds; `nginx -v`, `haproxy -v` answer in milliseconds


def read_version(container: Any, argv: Sequence[str],
                 timeout: float = VERSION_TIMEOUT) -> tuple[str | None, str]:
    """(the first non-empty line the command printed, '') or (None, why it failed)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["out"] = container.exec_run(list(argv), stdout=True, stderr=True)
        except Exception as exc:  # noqa: BLE001 - any Docker error is only a warning here
            box["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=run, name="gateway-version", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return None, f"`{' '.join(argv)}` did not answer within {timeout:g}s"
    if "error" in box:
        return None, str(box["error"])
    code, output = box["out"]
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if code != 0 or not lines:
        return None, f"`{' '.join(argv)}` exited {code}" + (f": {lines[0][:200]}" if lines else "")
    return lines[0][:200], ""


def gateway_label(spec: str, version: str | None) -> str:
    """result.environment["gateway"]: ``<name> <version> (<profile>)``."""
    name, _, profile = spec.partition(":")
    return f"{name} {version or 'unknown'} ({profile})"
