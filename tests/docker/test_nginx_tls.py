"""The nginx profile serves TLS from the run's folder and reloads it on SIGHUP (issue 22):
the container is started as the harness starts it (read-only root, /tmp tmpfs, no
capabilities, the folder mounted read-only at /run/chaos-tls), answers /healthz over
https verified against the run's CA by its service name, and after the folder's
certificate is rotated and the container sent SIGHUP (what the `tls` fault does) new
handshakes get the new certificate from the same nginx, which keeps running. About 5 s
once the image is built."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from chaos.runtime.base_image import ensure_base
from chaos.runtime.environment import RunEnvironment
from chaos.runtime.images import ensure_image, spec_for_build_dir
from chaos.tls.ca import RunCA
from chaos.tls.files import MOUNT, ServiceTls

pytestmark = pytest.mark.docker

FOLDER = Path(__file__).resolve().parents[2] / "docker" / "gateways" / "nginx"
HOSTS = ("gateway", "toxiproxy", "localhost", "127.0.0.1")


def _serving(tls: ServiceTls) -> bytes:
    """The DER of the leaf in the folder's cert.pem (the chain's first block)."""
    chain = tls.folder.joinpath("cert.pem").read_text()
    end = "-----END CERTIFICATE-----"
    return ssl.PEM_cert_to_DER_cert(chain[: chain.index(end) + len(end)])


def _peer_cert(port: int, ca: Path) -> bytes:
    """The DER certificate nginx serves on a new connection, verified as `gateway`."""
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="gateway") as tls,
    ):
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
        answer = tls.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[RunEnvironment, ServiceTls, int]]:
    client = docker.from_env(timeout=120)
    client.ping()
    image = ensure_image(client, spec_for_build_dir(FOLDER), ensure_base(client))
    ca = RunCA(tmp_path / "tls")
    tls = ServiceTls(ca, "gateway", HOSTS)
    run = RunEnvironment(client, f"test-nginx-tls-{int(time.time())}", "test-nginx-tls")
    try:
        run.create_network()
        service = run.start(
            "gateway",
            image,
            8000,
            {
                "GATEWAY_PROFILE": "stock",
                "UPSTREAM_URL": "http://127.0.0.1:9",
                "TLS_DIR": MOUNT,
                "TLS_CA": f"{MOUNT}/ca.pem",
            },
            writable=("/tmp",),
            scheme="https",
            volumes={str(tls.folder.resolve()): {"bind": MOUNT, "mode": "ro"}},
        )
        yield run, tls, service.host_port
    finally:
        run.teardown()
        ca.remove()


def test_serves_the_runs_certificate_and_reloads_it_on_sighup(
    nginx: tuple[RunEnvironment, ServiceTls, int],
) -> None:
    run, tls, port = nginx
    deadline = time.monotonic() + 30
    while True:
        try:
            first = _peer_cert(port, tls.ca.bundle)
            break
        except OSError:  # ssl.SSLError included: not listening yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert first == _serving(tls)
    assert _peer_cert(port, tls.ca.bundle) == first  # no reload: the same certificate

    tls.serve("rotated", None)
    container = run.services["gateway"].container
    container.kill(signal="SIGHUP")
    deadline = time.monotonic() + 10
    while (now := _peer_cert(port, tls.ca.bundle)) == first:
        assert time.monotonic() < deadline, "nginx still serves the first certificate"
        time.sleep(0.2)
    assert now == _serving(tls)  # the rotated certificate (a new key), from the folder
    container.reload()
    assert container.status == "running", container.logs()[-2000:]
    assert container.attrs["RestartCount"] == 0
    assert b"emerg" not in container.logs(), container.logs()[-2000:]
