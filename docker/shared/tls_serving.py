"""TLS for the reference services (issue 22): serve what $TLS_DIR holds, re-read it on
SIGHUP, and trust $TLS_CA (the run's CA) for upstreams that serve TLS.

The harness (chaos/tls/files.py) mounts a folder read-only at $TLS_DIR with `cert.pem`,
`key.pem`, `ca.pem` and `tls.json` ({"max_version": null | "TLSv1" | "TLSv1_1" | ...}).
A TLS fault swaps those files and sends SIGHUP; the one server context is changed in
place, so every handshake after the signal uses the new certificate and versions and no
connection is dropped (OpenSSL copies a context's certificate and version bounds into each
new connection). A reload that fails (a half-written pair) keeps what was served and logs
why; the next SIGHUP tries again.

TLS_RELOAD (hot): `drop` makes a reload reset every open client connection, as a service
that rotates its certificate by restarting would (the mutant of gateway-cert-rotation).

This module is copied into each reference image beside app.py (chaos.runtime.images) and
found on PYTHONPATH by the loopback stack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import ssl
from pathlib import Path
from typing import Any

# isort: split
# Sibling module: copied flat beside app.py, as this one is.
from connections import Tracker, install, max_requests

LOG = logging.getLogger("tls")
# What a service serves unless a fault says otherwise: TLS 1.2 and newer, OpenSSL's default
# ciphers at security level 2 (Debian's own default). A fault's max_version of TLS 1.0 or
# 1.1 pins the minimum to it too and lowers the level to 0, where OpenSSL 3 allows them.
_CIPHERS = "DEFAULT:@SECLEVEL=2"
_OLD_CIPHERS = "DEFAULT:@SECLEVEL=0"
_OLD = ("TLSv1", "TLSv1_1")


def folder() -> Path | None:
    """$TLS_DIR, or None when the service serves plain HTTP."""
    value = os.environ.get("TLS_DIR", "")
    return Path(value) if value else None


def server_context() -> ssl.SSLContext | None:
    """The context to serve with (None without $TLS_DIR); SIGHUP re-reads it once
    `reload_on_sighup` is called from the running loop."""
    where = folder()
    if where is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    load(context, where)
    return context


def client_context() -> ssl.SSLContext | None:
    """For requests to https:// upstreams: trust $TLS_CA alone (the run's CA; None when
    unset: the system's trust store)."""
    cafile = os.environ.get("TLS_CA", "")
    return ssl.create_default_context(cafile=cafile) if cafile else None


def load(context: ssl.SSLContext, where: Path) -> str:
    """Put the folder's certificate and version bounds into `context`; say what it serves."""
    settings = json.loads((where / "tls.json").read_text(encoding="utf-8"))
    newest = settings.get("max_version")
    context.load_cert_chain(str(where / "cert.pem"), str(where / "key.pem"))
    if newest in _OLD:
        context.set_ciphers(_OLD_CIPHERS)
        context.minimum_version = ssl.TLSVersion[newest]
        context.maximum_version = ssl.TLSVersion[newest]
    else:
        context.set_ciphers(_CIPHERS)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.maximum_version = (ssl.TLSVersion[newest] if newest
                                   else ssl.TLSVersion.MAXIMUM_SUPPORTED)
    return f"serving {where / 'cert.pem'} up to {newest or 'the newest TLS'}"


def reload_on_sighup(context: ssl.SSLContext | None, tracker: Tracker | None = None) -> None:
    """From inside the running event loop: SIGHUP re-reads $TLS_DIR into `context`; with
    TLS_RELOAD=drop (a gateway that rotates by restarting: the rotation mutant) it also
    resets every open client connection."""
    where = folder()
    if context is None or where is None:
        return
    drop = os.environ.get("TLS_RELOAD", "hot") == "drop"

    def reload() -> None:
        try:
            LOG.info("TLS reloaded: %s", load(context, where))
        except (OSError, ValueError, ssl.SSLError) as exc:
            LOG.warning("TLS reload failed, still serving the previous certificate: %s", exc)
        if drop and tracker is not None:
            LOG.info("TLS_RELOAD=drop: reset %d open connections", tracker.reset_all())

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)


def serve(app: Any) -> ssl.SSLContext | None:
    """For an aiohttp app about to run: its connections' keep-alive cap (KEEPALIVE_MAX_REQUESTS,
    connections.py), and the context to pass as run_app's ssl_context (None without
    $TLS_DIR), with SIGHUP re-reading it once the app's loop runs."""
    tracker = Tracker()
    install(app, tracker, max_requests())
    context = server_context()

    async def on_startup(_app: Any) -> None:
        reload_on_sighup(context, tracker)

    if context is not None:
        app.on_startup.append(on_startup)
    return context
