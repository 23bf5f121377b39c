"""The run-scoped test CA (chaos/tls/ca.py): what each certificate kind does to a real TLS
handshake on 127.0.0.1 with Python's ssl module, the client trusting only the run's ca.pem;
and that every file lives in the run's tls folder and goes with remove()."""

from __future__ import annotations

import json
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.tls.ca import CERT_KINDS, WRONG_HOST, Issued, RunCA

HOST = "localhost"


@pytest.fixture()
def ca(tmp_path: Path) -> Iterator[RunCA]:
    authority = RunCA(tmp_path / "run" / "tls")
    yield authority
    authority.remove()


def _serve_once(issued: Issued) -> tuple[int, threading.Thread]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.chain, issued.key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept() -> None:
        with listener:
            conn, _ = listener.accept()
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"hello")
            except (ssl.SSLError, OSError):
                pass  # the client refused the certificate: what some cases expect

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    return port, thread


def _handshake(ca: RunCA, issued: Issued, server_name: str = HOST) -> bytes:
    port, thread = _serve_once(issued)
    client = ssl.create_default_context(cafile=str(ca.bundle))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                client.wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.recv(5)
    finally:
        thread.join(timeout=5)


def test_a_valid_certificate_is_trusted_through_the_run_bundle_alone(ca: RunCA) -> None:
    issued = ca.issue("gateway", (HOST, "127.0.0.1"))
    assert _handshake(ca, issued) == b"hello"
    assert issued.hosts == (HOST, "127.0.0.1")


@pytest.mark.parametrize(("kind", "reason"), [
    ("expired", "certificate has expired"),
    ("wrong_host", "Hostname mismatch"),
    ("untrusted", "unable to get local issuer certificate"),
])
def test_each_bad_kind_fails_verification_with_its_own_reason(ca: RunCA, kind: str,
                                                              reason: str) -> None:
    issued = ca.issue("backend", (HOST,), kind)  # type: ignore[arg-type]
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        _handshake(ca, issued)
    assert reason in caught.value.verify_message
    if kind == "wrong_host":
        assert issued.hosts == (WRONG_HOST,)


def test_every_file_is_in_the_run_folder_and_remove_takes_them_all(tmp_path: Path) -> None:
    run = tmp_path / "run"
    authority = RunCA(run / "tls")
    issued = [authority.issue("backend", (HOST,), kind) for kind in CERT_KINDS]
    written = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert written == {authority.bundle, *(i.chain for i in issued), *(i.key for i in issued)}
    assert all(p.parent == run / "tls" for p in written)
    # the containers run as nobody and mount the folder read-only: readable, not writable
    assert all(stat.S_IMODE(i.key.stat().st_mode) == 0o644 for i in issued)
    authority.remove()
    assert not (run / "tls").exists() and run.exists()
    authority.remove()  # idempotent: the ExitStack may call it after a failed start


@pytest.mark.parametrize(("service", "hosts", "kind"), [
    ("../escape", (HOST,), "valid"), ("backend", (), "valid"), ("backend", (HOST,), "revoked"),
])
def test_bad_requests_are_refused(ca: RunCA, service: str, hosts: tuple[str, ...],
                                  kind: str) -> None:
    with pytest.raises(ValueError):
        ca.issue(service, hosts, kind)  # type: ignore[arg-type]


def test_two_runs_never_trust_each_other(tmp_path: Path) -> None:
    first, second = RunCA(tmp_path / "a" / "tls"), RunCA(tmp_path / "b" / "tls")
    issued = second.issue("gateway", (HOST,))
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(first, issued)


def test_a_service_folder_serves_good_files_and_swaps_them_atomically(ca: RunCA) -> None:
    from chaos.tls.files import ServiceTls

    folder = ServiceTls(ca, "backend", (HOST,))
    names = sorted(p.name for p in folder.folder.iterdir())
    assert names == ["ca.pem", "cert.pem", "key.pem", "tls.json"]  # no partial file left
    good = (folder.folder / "cert.pem").read_bytes()
    assert (folder.folder / "ca.pem").read_bytes() == ca.bundle.read_bytes()
    assert json.loads((folder.folder / "tls.json").read_text()) == {"max_version": None}

    inode = (folder.folder / "cert.pem").stat().st_ino
    folder.serve("expired", "TLSv1")
    assert (folder.folder / "cert.pem").stat().st_ino != inode  # a rename, not a rewrite
    assert (folder.folder / "cert.pem").read_bytes() != good
    assert json.loads((folder.folder / "tls.json").read_text()) == {"max_version": "TLSv1"}
    expired = Issued("backend", "expired", folder.folder / "cert.pem", folder.folder / "key.pem",
                     (HOST,))
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(ca, expired)

    folder.serve("valid", None)
    assert (folder.folder / "cert.pem").read_bytes() == good  # the same good one comes back
    assert sorted(p.name for p in folder.folder.iterdir()) == names


def test_the_scenario_language_names_every_kind_and_a_rotation_is_a_new_key(ca: RunCA) -> None:
    from typing import get_args

    from chaos.scenario.model import TlsFault
    from chaos.tls.files import ServiceTls

    assert get_args(TlsFault.model_fields["tls"].annotation) == CERT_KINDS
    folder = ServiceTls(ca, "gateway", (HOST,))
    keys = set()
    for _ in range(2):
        folder.serve("rotated", None)
        keys.add((folder.folder / "key.pem").read_bytes())
        rotated = Issued("gateway", "rotated", folder.folder / "cert.pem",
                         folder.folder / "key.pem", (HOST,))
        assert _handshake(ca, rotated) == b"hello"  # a good certificate, trusted as before
    folder.serve("valid", None)
    keys.add((folder.folder / "key.pem").read_bytes())
    assert len(keys) == 3
