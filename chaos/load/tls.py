"""TLS as the client saw it (issue 22): how long each handshake took, whether a failure
came during it, and why a handshake was refused.

One hook into urllib3 2.x (what requests, hence Locust's HttpUser, runs on):
``urllib3.connection._ssl_wrap_socket_and_match_hostname``, the function an HTTPS
connection calls after its TCP connect to run the handshake and check the host name.
Its time and whether it raised land in a slot per greenlet, like chaos.load.connections;
the locustfile takes them with ``take()`` for the request that opened the connection (a
request on a reused connection made no handshake: nothing is in the slot).

A reset after the handshake: Python's ssl reports a peer's TCP RST as the end of the
stream (an EOF, suppressed or raised as SSLEOFError), which would read as a close. So
install() also makes the SSL sockets of the process check, when a read ends, whether
the kernel saw a reset (TCP_INFO: the connection is CLOSE after an RST, CLOSE_WAIT after
a FIN), and raise ConnectionResetError then: a reset under TLS is a reset.

``refusal(error)`` reads why a handshake failed: a certificate that did not verify (the
verifier's own words: "certificate has expired", "Hostname mismatch, ...", "unable to get
local issuer certificate") or an alert or protocol error ("tlsv1 alert protocol version",
"unsupported protocol"). A reset or a close during the handshake is not a refusal: the
classifier keeps those as reset/closed and says "during the TLS handshake".
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import urllib3.connection
from greenlet import getcurrent

_ORIGINAL: dict[str, Any] = {}
_OPENSSL_TEXT = re.compile(r"\]\s*(?P<text>.+?)\s*\(_ssl\.c:\d+\)")
TCP_CLOSE = 7  # include/net/tcp_states.h: the state after a RST (a FIN leaves CLOSE_WAIT, 8)


@dataclass(frozen=True)
class Handshake:
    """One TLS handshake a request ran: its time (ms) and whether it raised."""

    ms: float
    failed: bool


_SLOT: dict[Any, Handshake] = {}


def take() -> Handshake | None:
    """The handshake the current greenlet's last request ran (and forget it)."""
    return _SLOT.pop(getcurrent(), None)


def _timed_handshake(*args: Any, **kwargs: Any) -> Any:
    started = time.perf_counter()
    try:
        wrapped = _ORIGINAL["wrap"](*args, **kwargs)
    except BaseException:
        _SLOT[getcurrent()] = Handshake((time.perf_counter() - started) * 1000.0, True)
        raise
    _SLOT[getcurrent()] = Handshake((time.perf_counter() - started) * 1000.0, False)
    return wrapped


def was_reset(sock: socket.socket) -> bool:
    """The kernel saw the peer reset this TCP connection (Linux TCP_INFO's state)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)
    except OSError:
        return False
    return bool(info) and info[0] == TCP_CLOSE


def _reset_aware(base: type[ssl.SSLSocket]) -> type[ssl.SSLSocket]:
    """`base` (ssl's SSLSocket, or gevent's under Locust) whose reads say a reset is one."""

    class ResetAwareSSLSocket(base):  # type: ignore[valid-type,misc]
        def recv_into(self, buffer: Any, *args: Any, **kwargs: Any) -> int:
            # the caller's arguments as given: gevent reads nbytes=0 as 0 bytes, ssl as all
            try:
                got = int(super().recv_into(buffer, *args, **kwargs))
            except ssl.SSLEOFError:
                if was_reset(self):
                    raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer "
                                               "(seen under TLS)") from None
                raise
            if got == 0 and was_reset(self):
                raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer "
                                           "(seen under TLS)")
            return got

    return ResetAwareSSLSocket


def install() -> None:
    """Put the hooks in place (idempotent)."""
    if _ORIGINAL:
        return
    _ORIGINAL["wrap"] = urllib3.connection._ssl_wrap_socket_and_match_hostname
    _ORIGINAL["socket_class"] = ssl.SSLContext.sslsocket_class
    urllib3.connection._ssl_wrap_socket_and_match_hostname = _timed_handshake
    ssl.SSLContext.sslsocket_class = _reset_aware(_ORIGINAL["socket_class"])


def uninstall() -> None:
    """Undo install() (for tests that share a process with other requests users)."""
    if not _ORIGINAL:
        return
    urllib3.connection._ssl_wrap_socket_and_match_hostname = _ORIGINAL.pop("wrap")
    ssl.SSLContext.sslsocket_class = _ORIGINAL.pop("socket_class")
    _SLOT.clear()


def refusal(chain: Iterable[BaseException]) -> str | None:
    """Why the handshake was refused, if an error of the chain says it was: a certificate
    verification failure or a TLS alert/protocol error. None for an EOF or a reset."""
    for error in chain:
        if isinstance(error, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {error.verify_message}"
        if isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return None
        if isinstance(error, ssl.SSLError):
            match = _OPENSSL_TEXT.search(str(error))
            return match["text"] if match else (error.reason or type(error).__name__)
    return None
