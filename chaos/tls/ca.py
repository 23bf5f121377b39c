"""A run-scoped test certificate authority (issue 22), made with trustme.

Each run that uses TLS gets its own CA, created in the run's folder (`<run>/tls/`) and
nowhere else: the CA certificate clients trust (`ca.pem`), and per service a leaf
certificate chain and its key. Nothing is installed into a trust store; the load
generator is given `ca.pem` explicitly. `RunCA.remove()` deletes the folder, keys and
all; the engine registers it on the run's ExitStack so it goes with the run on success,
failure, Ctrl-C and SIGTERM.

Besides a good certificate, a service can be given another good one (`rotated`: a fresh
key and certificate from the same CA, as a rotation brings) and the bad ones TLS faults
swap in:

- `expired`: valid dates in the past (notAfter a day ago);
- `wrong_host`: issued for a name that is not the service's (`wrong-host.invalid`);
- `untrusted`: signed by a second CA that no client is told to trust.

Keys are readable by every user (0644) in a 0755 folder: the containers run as `nobody`
and get the folder mounted read-only. They are throwaway keys of a CA that exists for
one run, removed with it.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import trustme

CertKind = Literal["valid", "rotated", "expired", "wrong_host", "untrusted"]
CERT_KINDS: tuple[CertKind, ...] = ("valid", "rotated", "expired", "wrong_host", "untrusted")
WRONG_HOST = "wrong-host.invalid"  # RFC 6761: .invalid never resolves to anything
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_ORG = "gateway-chaos run CA"


@dataclass(frozen=True)
class Issued:
    """One service's certificate: files inside the run's tls folder."""

    service: str
    kind: CertKind
    chain: Path  # the leaf, then the CA that signed it (PEM)
    key: Path  # the leaf's private key (PEM)
    hosts: tuple[str, ...]  # the names the certificate is valid for


class RunCA:
    """The CA of one run, with its files under `folder` (created, must not exist)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(mode=0o755, parents=True, exist_ok=False)
        self._ca = trustme.CA(organization_name=_ORG)
        self._stranger = trustme.CA(organization_name="a CA nobody trusts")
        self.bundle = folder / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.bundle))

    def issue(self, service: str, hosts: tuple[str, ...], kind: CertKind = "valid") -> Issued:
        """Write `<service>-<kind>.pem` and `.key` for `hosts` (DNS names or IPs)."""
        if not _SAFE_NAME.match(service):
            raise ValueError(f"service name {service!r} cannot name a certificate file")
        if kind not in CERT_KINDS:
            raise ValueError(f"certificate kind {kind!r} is not one of {', '.join(CERT_KINDS)}")
        if not hosts:
            raise ValueError(f"a certificate for {service!r} needs at least one host name")
        names = (WRONG_HOST,) if kind == "wrong_host" else hosts
        signer = self._stranger if kind == "untrusted" else self._ca
        not_before, not_after = _dates(kind)
        leaf = signer.issue_cert(*names, common_name=names[0], organization_name=_ORG,
                                 not_before=not_before, not_after=not_after)
        chain = self.folder / f"{service}-{kind}.pem"
        key = self.folder / f"{service}-{kind}.key"
        chain.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        key.write_bytes(leaf.private_key_pem.bytes())
        for path in (chain, key):
            os.chmod(path, 0o644)
        return Issued(service, kind, chain, key, tuple(names))

    def remove(self) -> None:
        """Delete the folder and everything in it (idempotent)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _dates(kind: CertKind) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    """(not_before, not_after): trustme's defaults (None) but for an expired certificate."""
    if kind != "expired":
        return None, None
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
