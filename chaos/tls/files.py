"""The TLS files one service reads (issue 22), and swapping them during a run.

Each service that serves TLS gets a folder `<run>/tls/<service>/`, mounted read-only into
its container at MOUNT (a folder, not single files: a bind-mounted file would keep the
inode it was mounted with and never see a swap). The folder holds what the service
serves and what it trusts:

- `cert.pem`: its certificate chain; `key.pem`: the key;
- `ca.pem`: the run's CA, for verifying upstreams that serve TLS;
- `tls.json`: `{"max_version": null | "TLSv1" | ...}`, the newest TLS version it offers.

A service re-reads them on SIGHUP (the reference services do; a third-party gateway's
profile names its own reload). A TLS fault swaps the files (each by an atomic rename,
`tls.json` last) and signals the reload; undoing it swaps the good ones back.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from chaos.tls.ca import CertKind, Issued, RunCA

MOUNT = "/run/chaos-tls"  # where the folder appears inside the container
ENV = {"TLS_DIR": MOUNT}  # how a reference service learns it serves TLS
TlsVersion = Literal["TLSv1", "TLSv1_1", "TLSv1_2", "TLSv1_3"]


@dataclass
class ServiceTls:
    """One service's folder: the certificates issued to it so far, and what it serves."""

    ca: RunCA
    service: str
    hosts: tuple[str, ...]
    folder: Path = field(init=False)
    serving: CertKind = field(init=False, default="valid")
    max_version: TlsVersion | None = field(init=False, default=None)
    _issued: dict[CertKind, Issued] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.folder = self.ca.folder / self.service
        self.folder.mkdir(mode=0o755)
        shutil.copyfile(self.ca.bundle, self.folder / "ca.pem")
        os.chmod(self.folder / "ca.pem", 0o644)
        self.serve("valid", None)

    def serve(self, kind: CertKind, max_version: TlsVersion | None) -> None:
        """Put `kind`'s certificate and `max_version` in place (the service must reload)."""
        issued = self._issued.get(kind)
        if issued is None or kind == "rotated":  # a rotation brings a new key every time
            issued = self._issued[kind] = self.ca.issue(self.service, self.hosts, kind)
        _replace(self.folder / "cert.pem", issued.chain.read_bytes())
        _replace(self.folder / "key.pem", issued.key.read_bytes())
        _replace(self.folder / "tls.json",
                 json.dumps({"max_version": max_version}).encode("utf-8"))
        self.serving, self.max_version = kind, max_version


def _replace(path: Path, data: bytes) -> None:
    """Write `data` to `path` by an atomic rename: a reader sees the old or the new file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.chmod(partial, 0o644)
    os.replace(partial, path)
