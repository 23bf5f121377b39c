"""`chaos setup` / `make setup`: an engine, the base image, and the project's images."""

from __future__ import annotations

from chaos.runtime.base_image import ensure_base
from chaos.runtime.bootstrap import _log, ensure_engine
from chaos.runtime.images import ensure_image, spec_for_build_dir, toxiproxy_spec
from chaos.runtime.paths import project_root

PROJECT_IMAGES = ("backend", "gateway", "llm-provider", "netfault", "capture")  # netfault, capture: sidecars


def setup() -> dict[str, str]:
    """Idempotent: a second call finds everything in place and builds nothing."""
    client = ensure_engine()
    base = ensure_base(client)
    tags = {"toxiproxy": ensure_image(client, toxiproxy_spec(), base)}
    for name in PROJECT_IMAGES:
        tags[name] = ensure_image(client, spec_for_build_dir(project_root() / "docker" / name), base)
    for name, tag in tags.items():
        _log(f"{name}: {tag}")
    return tags
