"""The load generator's TLS hook (chaos/load/tls.py) on real handshakes over 127.0.0.1:
requests through urllib3 2.x, a server made with Python's ssl and the run-scoped CA. The
handshake time is noted for the request that opened the connection, not for one that
reused it; a refused handshake says why in the verifier's or OpenSSL's own words; a
reset during the handshake is not a refusal."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from chaos.load import tls
from chaos.load.classify import _causes, classify_exception, in_handshake
from chaos.outcomes import CLOSED, RESET, TLS_HANDSHAKE_FAILED
from chaos.tls.ca import Issued, RunCA


@pytest.fixture()
def ca(tmp_path: Path) -> Iterator[RunCA]:
    authority = RunCA(tmp_path / "tls")
    tls.install()
    yield authority
    tls.uninstall()
    authority.remove()


def _server(issued: Issued, tune: Callable[[ssl.SSLContext], None] | None = None,
            reset_at_hello: bool = False, answers: int = 1) -> int:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.chain, issued.key)
    if tune is not None:
        tune(context)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            if reset_at_hello:
                conn.recv(64)  # the ClientHello, then an RST
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                return
            try:
                with context.wrap_socket(conn, server_side=True) as stream:
                    for _ in range(answers):
                        stream.recv(4096)
                        stream.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            except (ssl.SSLError, OSError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    return int(listener.getsockname()[1])


def _get(session: requests.Session, ca: RunCA, port: int) -> requests.Response:
    return session.get(f"https://localhost:{port}/", verify=str(ca.bundle), timeout=5)


def test_the_opening_request_notes_its_handshake_and_a_reusing_one_none(ca: RunCA) -> None:
    port = _server(ca.issue("gateway", ("localhost",)), answers=2)
    with requests.Session() as session:
        assert _get(session, ca, port).text == "ok"
        first = tls.take()
        assert _get(session, ca, port).text == "ok"
        second = tls.take()
    assert first is not None and not first.failed and 0.0 < first.ms < 5000.0
    assert second is None  # keep-alive: no handshake made


def _tls10_only(context: ssl.SSLContext) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ALL:@SECLEVEL=0")


@pytest.mark.parametrize(("kind", "tune", "reason"), [
    ("expired", None, "certificate verify failed: certificate has expired"),
    ("wrong_host", None, "certificate verify failed: Hostname mismatch"),
    ("untrusted", None, "certificate verify failed: unable to get local issuer certificate"),
    ("valid", _tls10_only, "tlsv1 alert protocol version"),
])
def test_a_refused_handshake_says_why(ca: RunCA, kind: str, tune: Callable | None,
                                      reason: str) -> None:
    port = _server(ca.issue("backend", ("localhost",), kind), tune)  # type: ignore[arg-type]
    with requests.Session() as session, pytest.raises(requests.exceptions.SSLError) as caught:
        _get(session, ca, port)
    said = tls.refusal(_causes(caught.value))
    assert said is not None and said.startswith(reason), said
    handshake = tls.take()
    assert handshake is not None and handshake.failed
    outcome, detail = in_handshake(*classify_exception(caught.value), caught.value, handshake)
    assert (outcome, detail) == (TLS_HANDSHAKE_FAILED, said)


def test_a_reset_during_the_handshake_is_no_refusal_but_is_marked_as_in_it(ca: RunCA) -> None:
    port = _server(ca.issue("backend", ("localhost",)), reset_at_hello=True)
    with requests.Session() as session, pytest.raises(requests.exceptions.ConnectionError) as caught:
        _get(session, ca, port)
    chain = list(_causes(caught.value))
    assert any(isinstance(e, ConnectionResetError) for e in chain)
    assert tls.refusal(chain) is None
    handshake = tls.take()
    assert handshake is not None and handshake.failed
    outcome, detail = in_handshake(*classify_exception(caught.value), caught.value, handshake)
    assert outcome == RESET and detail.endswith("during the TLS handshake"), detail
    # the same reset on a connection that was already past its handshake says nothing more
    assert in_handshake(RESET, "ConnectionResetError", caught.value, None) == (
        RESET, "ConnectionResetError")


def test_a_close_during_the_handshake_is_closed_not_a_refusal(ca: RunCA) -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            conn.settimeout(0.3)
            with contextlib.suppress(TimeoutError):
                while conn.recv(4096):  # the whole ClientHello: unread bytes would send an RST
                    pass
            conn.close()  # a FIN in the middle of the handshake (limit_data does this)

    threading.Thread(target=serve, daemon=True).start()
    with requests.Session() as session, pytest.raises(requests.exceptions.SSLError) as caught:
        _get(session, ca, int(listener.getsockname()[1]))
    handshake = tls.take()
    outcome, detail = in_handshake(*classify_exception(caught.value), caught.value, handshake)
    assert (outcome, detail) == (CLOSED, "closed during the TLS handshake (no alert)")


def test_uninstall_puts_urllib3_back() -> None:
    import urllib3.connection
    original = urllib3.connection._ssl_wrap_socket_and_match_hostname
    tls.install()
    tls.install()  # idempotent
    assert urllib3.connection._ssl_wrap_socket_and_match_hostname is not original
    tls.uninstall()
    assert urllib3.connection._ssl_wrap_socket_and_match_hostname is original


def _answer_then(ca: RunCA, issued: Issued, rst: bool) -> int:
    """A TLS server that reads one request, then resets (RST) or closes (FIN) unanswered."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.chain, issued.key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            stream = context.wrap_socket(conn, server_side=True)
            stream.recv(4096)
            if rst:
                stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                stream.close()
            else:
                with contextlib.suppress(OSError):  # the client may be gone before its reply
                    stream.unwrap()  # close_notify
                stream.close()  # then a FIN

    threading.Thread(target=serve, daemon=True).start()
    return int(listener.getsockname()[1])


@pytest.mark.parametrize(("rst", "expected"), [(True, RESET), (False, CLOSED)])
def test_after_the_handshake_a_reset_is_a_reset_and_a_close_a_close(
        ca: RunCA, rst: bool, expected: str) -> None:
    # Python's ssl alone reports the RST as an end of stream (RemoteDisconnected: "closed")
    port = _answer_then(ca, ca.issue("gateway", ("localhost",)), rst)
    with requests.Session() as session, pytest.raises(requests.ConnectionError) as caught:
        _get(session, ca, port)
    handshake = tls.take()
    assert handshake is not None and not handshake.failed
    outcome, _detail = in_handshake(*classify_exception(caught.value), caught.value, handshake)
    assert outcome == expected


def test_under_gevent_reads_are_whole(ca: RunCA) -> None:
    """Locust runs on gevent, whose SSLSocket reads nbytes=0 as nothing: the hook must pass
    the caller's arguments on as given (it once read every answer as an empty close)."""
    script = f"""
import gevent.monkey
gevent.monkey.patch_all()
import requests
from chaos.load import tls
tls.install()
print(requests.get("https://localhost:{{}}/", verify={str(ca.bundle)!r}, timeout=5).text)
"""
    port = _server(ca.issue("gateway", ("localhost",)))
    proc = subprocess.run([sys.executable, "-c", script.format(port)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"
