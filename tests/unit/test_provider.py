"""Provider order (issue 4): TOXIPROXY_URL, the real image, a binary on PATH, embedded.

Docker is replaced by a tiny in-memory ``ImageStore``; the URL probe talks to a
real embedded server on loopback (and to a closed port for the unreachable case).
"""

from __future__ import annotations

import io
import socket
import struct
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.errors import EnvironmentProblem
from chaos.proxy import provider
from chaos.proxy.embedded import ServerThread


class Images:
    """An image store holding tags in a set; builds are recorded, not run."""

    def __init__(self, *present: str) -> None:
        self.present = set(present)
        self.built: dict[str, bytes] = {}

    def exists(self, ref: str) -> bool:
        return ref in self.present

    def build(self, context: bytes, tag: str) -> None:
        self.built[tag] = context
        self.present.add(tag)


def _static_elf(path: Path) -> Path:
    """A 64-bit little-endian ELF header with no program headers: 'static'."""
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 32, 64)  # e_phoff
    struct.pack_into("<HH", header, 54, 56, 0)  # e_phentsize, e_phnum
    path.write_bytes(bytes(header) + b"\0" * 64)
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    with ServerThread("127.0.0.1", 0) as server:
        yield server.url


@pytest.fixture
def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed when returned


def _nothing(name: str) -> str | None:
    return None


def test_embedded_when_nothing_else() -> None:
    choice = provider.choose(images=Images(), environ={}, which=_nothing)
    assert (choice.kind, choice.image, choice.name) == ("embedded", None, provider.EMBEDDED)
    assert choice.starts_container


def test_real_image_wins_over_binary_and_embedded(tmp_path: Path) -> None:
    binary = _static_elf(tmp_path / "toxiproxy-server")
    choice = provider.choose(images=Images(provider.REAL_IMAGE), environ={},
                             which=lambda _: str(binary))
    assert choice.kind == "image" and choice.image == provider.REAL_IMAGE
    assert provider.REAL_IMAGE in choice.name


def test_static_binary_is_built_into_a_scratch_image_once(tmp_path: Path) -> None:
    binary = _static_elf(tmp_path / "toxiproxy-server")
    images = Images()
    choice = provider.choose(images=images, environ={}, which=lambda _: str(binary))
    assert choice.kind == "binary" and choice.image in images.built
    assert choice.image is not None and choice.image.startswith(provider.BINARY_IMAGE + ":")
    with tarfile.open(fileobj=io.BytesIO(images.built[choice.image])) as tar:
        dockerfile = tar.extractfile("Dockerfile").read().decode()  # type: ignore[union-attr]
        shipped = tar.getmember("toxiproxy-server")
        assert tar.extractfile(shipped).read() == binary.read_bytes()  # type: ignore[union-attr]
    assert dockerfile.startswith("FROM scratch") and shipped.mode == 0o755
    assert '"-host=0.0.0.0"' in dockerfile and "ENTRYPOINT" in dockerfile
    again = provider.choose(images=images, environ={}, which=lambda _: str(binary))
    assert again == choice and len(images.built) == 1  # tagged by content: no rebuild


def test_dynamic_binary_uses_the_project_base(tmp_path: Path) -> None:
    # The Python interpreter is a dynamically linked ELF file: it stands in for such a build.
    images = Images()
    choice = provider.choose(images=images, environ={}, which=lambda _: sys.executable,
                             base_image=lambda: "gateway-chaos/base:bookworm")
    assert choice.kind == "binary" and choice.image is not None
    with tarfile.open(fileobj=io.BytesIO(images.built[choice.image])) as tar:
        dockerfile = tar.extractfile("Dockerfile").read().decode()  # type: ignore[union-attr]
    assert dockerfile.startswith("FROM gateway-chaos/base:bookworm")


def test_non_elf_binary_is_skipped_with_a_note(tmp_path: Path) -> None:
    script = tmp_path / "toxiproxy-server"
    script.write_text("#!/bin/sh\necho fake\n")
    choice = provider.choose(images=Images(), environ={}, which=lambda _: str(script))
    assert choice.kind == "embedded" and "not a Linux executable" in choice.name


def test_elf_linking() -> None:
    assert provider.elf_linking(Path(sys.executable)) == "dynamic"
    assert provider.elf_linking(Path(__file__)) is None
    assert provider.elf_linking(Path("/nonexistent/toxiproxy")) is None


def test_unreachable_url_falls_through_and_is_recorded(dead_url: str) -> None:
    choice = provider.choose(images=Images(provider.REAL_IMAGE),
                             environ={"TOXIPROXY_URL": dead_url}, which=_nothing)
    assert choice.kind == "image"
    assert f"TOXIPROXY_URL {dead_url} did not answer" in choice.name


def test_reachable_url_wins_when_the_run_supports_it(live_url: str) -> None:
    choice = provider.choose(images=Images(provider.REAL_IMAGE),
                             environ={"TOXIPROXY_URL": live_url + "/"}, which=_nothing,
                             external_supported=True)
    assert choice.kind == "url" and choice.url == live_url and not choice.starts_container
    assert live_url in choice.name and "2." in choice.name


def test_reachable_url_is_refused_clearly_when_the_run_cannot_use_it(live_url: str) -> None:
    with pytest.raises(EnvironmentProblem, match="Unset TOXIPROXY_URL"):
        provider.choose(images=Images(), environ={"TOXIPROXY_URL": live_url}, which=_nothing)


def test_listen_ports_and_external_addresses() -> None:
    assert provider.listen_ports(["a", "b"]) == {"a": 20000, "b": 20001}
    assert provider.external_listen("172.20.0.1", 20000) == "172.20.0.1:20000"
    assert provider.external_listen("fd00::1", 20000) == "[fd00::1]:20000"
    ips = {"backend": "172.20.0.3"}
    assert provider.external_upstream("backend:8080", ips) == "172.20.0.3:8080"
    assert provider.external_upstream("example:80", ips) == "example:80"


def test_choose_needs_a_store() -> None:
    with pytest.raises(ValueError):
        provider.choose(environ={}, which=_nothing)
