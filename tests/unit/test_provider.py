"""Provider order (issue 4): TOXIPROXY_URL, the real image, a binary on PATH, embedded.

Docker is replaced by a tiny in-memory ``ImageStore``; the URL probe talks to a
real embedded server on loopback (and to a closed port for the unreachable case).
"""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.errors import EnvironmentProblem
from chaos.proxy import external, provider
from chaos.proxy.embedded import ServerThread
from tests.fixtures.scenarios import write_scenario


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
    assert external.listen_address("172.20.0.1", 20000) == "172.20.0.1:20000"
    assert external.listen_address("fd00::1", 20000) == "[fd00::1]:20000"
    ips = {"backend": "172.20.0.3"}
    assert external.upstream_address("backend:8080", ips) == "172.20.0.3:8080"
    assert external.upstream_address("example:80", ips) == "example:80"


def test_choose_needs_a_store() -> None:
    with pytest.raises(ValueError):
        provider.choose(environ={}, which=_nothing)


# --- a user's own server (TOXIPROXY_URL): the pure parts -----------------------------------


def _scenario(tmp_path: Path, fault: str, extra: str = "") -> object:
    from chaos.scenario.loader import load_scenario

    return load_scenario(write_scenario(tmp_path, "ext.yaml", fault=fault, extra=extra))


def test_external_names_are_unique_per_run_and_recognised() -> None:
    name = external.proxy_name("20261126-235959-ab12", "backend")
    assert name == "chaos-20261126-235959-ab12-backend"
    assert external.owned_by_run(name, "20261126-235959-ab12")
    assert not external.owned_by_run(name, "20261126-235959-ab13")  # another run's
    assert not external.owned_by_run("backend", "20261126-235959-ab12")  # the user's own
    assert not external.owned_by_run("chaos-20261126-235959-ab12-", "20261126-235959-ab12")
    assert external.proxy_name("r1", "a") != external.proxy_name("r2", "a")


def test_upstream_service_and_placeholder() -> None:
    services = {"backend": object(), "gateway": object()}
    assert external.upstream_service("backend:8080", services) == "backend"
    assert external.upstream_service("example:80", services) is None
    assert external.upstream_service("backend", services) is None
    host, port = external.PLACEHOLDER_UPSTREAM.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0  # refused on the host: nothing leaves it


def test_external_conflicts_name_the_scenario_key(tmp_path: Path) -> None:
    ok = _scenario(tmp_path, "{proxy: backend, toxic: {type: latency, attributes: {latency: 10}}}")
    assert external.conflicts(ok) == []  # type: ignore[arg-type]
    peer = _scenario(tmp_path, "{service: backend, net: firewall_reset, peer: toxiproxy}")
    conflicts = external.conflicts(peer)  # type: ignore[arg-type]
    assert [key for key, _ in conflicts] == ["phases[1].faults[0].peer"]
    assert "TOXIPROXY_URL" in conflicts[0][1]
    other_peer = _scenario(tmp_path, "{service: backend, net: firewall_reset, peer: gateway}")
    assert external.conflicts(other_peer) == []  # type: ignore[arg-type]
    capture = _scenario(tmp_path, "{container: backend, action: kill}",
                        "capture: {services: [gateway, toxiproxy]}\n")
    assert [k for k, _ in external.conflicts(capture)] == [  # type: ignore[arg-type]
        "capture.services[1]"]


def test_choose_order_with_a_live_url_still_comes_first(live_url: str, tmp_path: Path) -> None:
    binary = _static_elf(tmp_path / "toxiproxy-server")
    choice = provider.choose(images=Images(provider.REAL_IMAGE), which=lambda _: str(binary),
                             environ={"TOXIPROXY_URL": live_url.removeprefix("http://")},
                             external_supported=True)
    assert choice.kind == "url" and choice.name.startswith(f"TOXIPROXY_URL {live_url} ")


def test_scoped_client_maps_names_and_resets_only_its_own(live_url: str) -> None:
    from chaos.proxy.client import ToxiproxyClient

    with ToxiproxyClient(live_url) as plain, ToxiproxyClient(
            live_url, names={"backend": "chaos-run1-backend"}) as scoped:
        plain.create_proxy("users-own", "127.0.0.1:0", "127.0.0.1:1")
        try:
            plain.add_toxic("users-own", "latency", attributes={"latency": 5})
            created = scoped.create_proxy("backend", "127.0.0.1:0", external.PLACEHOLDER_UPSTREAM)
            assert created.name == "chaos-run1-backend" and created.port > 0
            scoped.add_toxic("backend", "reset_peer", attributes={"timeout": 0}, name="rst")
            assert [t["name"] for t in plain.get_proxy("chaos-run1-backend").toxics] == ["rst"]
            moved = scoped.update_proxy("backend", upstream="127.0.0.1:2")
            assert moved.upstream == "127.0.0.1:2" and moved.port == created.port
            assert [t["name"] for t in moved.toxics] == ["rst"]  # toxics survive an update
            scoped.set_enabled("backend", False)
            scoped.reset()
            again = scoped.get_proxy("backend")
            assert again.enabled and again.toxics == []
            assert len(plain.get_proxy("users-own").toxics) == 1  # the user's proxy untouched
            assert scoped.stats("backend") is not None
        finally:
            for name in ("users-own", "chaos-run1-backend"):
                with contextlib.suppress(Exception):
                    plain.delete_proxy(name)


def test_ledger_proxy_remover_deletes_only_the_runs_proxies(live_url: str,
                                                            tmp_path: Path) -> None:
    from chaos.proxy.cleanup import proxy_remover
    from chaos.proxy.client import ToxiproxyClient
    from chaos.runtime.ledger import Ledger

    run_id = "20261127-000000-beef"
    mine = external.proxy_name(run_id, "backend")
    with ToxiproxyClient(live_url) as client:
        for name in (mine, "users-own", external.proxy_name("20261127-000000-dead", "x")):
            client.create_proxy(name, "127.0.0.1:0", "127.0.0.1:1")
        ledger = Ledger(run_id, "ext", folder=tmp_path)
        ledger.intend("proxy", mine, api=live_url, external=True, proxy="backend")
        ledger.intend("proxy", "users-own", api=live_url, external=True)  # a bare name: never
        ledger.intend("proxy", "backend", api=live_url)  # inside a run's container: not here
        ledger.intend("proxy", external.proxy_name(run_id, "gone"), api=live_url,
                      external=True)  # never created (the run died first): 404 is fine
        assert ledger.unwind(proxy_remover(run_id)) == []
        assert ledger.close()
        left = set(client.list_proxies())
        assert mine not in left
        assert {"users-own", external.proxy_name("20261127-000000-dead", "x")} <= left
        for name in left:
            client.delete_proxy(name)


def test_ledger_proxy_remover_keeps_the_entry_when_the_server_is_gone(dead_url: str,
                                                                      tmp_path: Path) -> None:
    from chaos.proxy.cleanup import proxy_remover
    from chaos.runtime.ledger import Ledger

    ledger = Ledger("r9", "ext", folder=tmp_path)
    ledger.intend("proxy", external.proxy_name("r9", "backend"), api=dead_url, external=True)
    problems = ledger.unwind(proxy_remover("r9", timeout=1.0))
    assert len(problems) == 1 and "chaos-r9-backend" in problems[0]
    assert not ledger.close()  # left for `chaos doctor`
