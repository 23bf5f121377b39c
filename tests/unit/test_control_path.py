"""The Toxiproxy API's binding per provider and the read-only root options, without Docker."""

from __future__ import annotations

from chaos.proxy.provider import API_HOST_ENV, ProviderChoice, api_binding
from chaos.runtime.control import rootfs_options


def test_every_provider_serves_its_api_on_the_control_address_only() -> None:
    real = ProviderChoice("real", "ghcr.io/shopify/toxiproxy:latest", ["-host=0.0.0.0"], "image")
    binary = ProviderChoice("bin", "gateway-chaos/toxiproxy-bin:x", None, "binary")
    embedded = ProviderChoice("embedded", None, None, "embedded")
    assert api_binding(real, "10.9.0.2") == (["-host=10.9.0.2"], {})
    assert api_binding(binary, "10.9.0.2") == (["-host=10.9.0.2", "-port=8474"], {})
    assert api_binding(embedded, "10.9.0.2") == (None, {API_HOST_ENV: "10.9.0.2"})


def test_read_only_root_with_tmpfs_only_where_the_image_writes() -> None:
    assert rootfs_options(None) == {}  # an image that did not say: a writable root
    options = rootfs_options(("/tmp", "/run"))
    assert options["read_only"] is True and set(options["tmpfs"]) == {"/tmp", "/run"}
