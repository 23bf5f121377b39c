"""The project's toxiproxy image runs the loop that `make bench` measures (uvloop)."""

from __future__ import annotations

import time

import docker
import pytest

from chaos.runtime.base_image import ensure_base
from chaos.runtime.images import ensure_image, toxiproxy_spec

pytestmark = pytest.mark.docker


def test_the_image_serves_on_uvloop() -> None:
    client = docker.from_env()
    tag = ensure_image(client, toxiproxy_spec(), ensure_base(client))
    container = client.containers.run(tag, detach=True, labels={"gateway-chaos.test": "image"})
    try:
        deadline, logs = time.monotonic() + 20, ""
        while "listening on" not in logs and time.monotonic() < deadline:
            time.sleep(0.2)
            logs = container.logs().decode(errors="replace")
        assert "listening on" in logs, logs
        assert "(loop uvloop)" in logs, logs
    finally:
        container.remove(force=True)
