"""The base image every project image is built FROM.

With registry access a user can pass ``python:3.12-slim`` (CHAOS_BASE_IMAGE);
without one (this project's CI), the base is made from Debian packages with
debootstrap and imported, so nothing is pulled.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import ImageNotFound

from chaos.errors import EnvironmentProblem
from chaos.runtime.bootstrap import _log, install_debian_packages

DEBOOTSTRAP_TAG = "gateway-chaos/base:bookworm"
DEBOOTSTRAP_PACKAGES = ["python3", "python3-pip", "ca-certificates", "iproute2", "procps"]
DEFAULT_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class BaseImage:
    """The chosen base: its tag and the Python version of its interpreter."""

    tag: str
    python_version: str  # "3.11"; selects the wheelhouse's ABI


def _has_image(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False


def apt_mirror() -> str:
    """The machine's own Debian mirror (deb822 or one-line sources)."""
    candidates = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in candidates:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            line = line.strip()
            if line.startswith("URIs:") and "debian" in line and "security" not in line:
                return line.split()[1]
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "debian" in line and "security" not in line:
                url = parts[2] if parts[1].startswith("[") else parts[1]
                return url
    return DEFAULT_MIRROR


def build_debootstrap_base(client: docker.DockerClient) -> None:
    install_debian_packages(["debootstrap"])
    rootfs = Path(tempfile.mkdtemp(prefix="chaos-rootfs-"))
    try:
        mirror = apt_mirror()
        _log(f"debootstrap bookworm from {mirror} (about a minute)")
        cmd = [
            "debootstrap", "--variant=minbase", "--include=" + ",".join(DEBOOTSTRAP_PACKAGES),
            "bookworm", str(rootfs), mirror,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise EnvironmentProblem(f"debootstrap failed:\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
        _trim_rootfs(rootfs)
        _log(f"importing rootfs as {DEBOOTSTRAP_TAG}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        repo, tag = DEBOOTSTRAP_TAG.split(":")
        client.api.import_image(
            src=tar.stdout, repository=repo, tag=tag, stream_src=True,
            changes=["ENV PIP_BREAK_SYSTEM_PACKAGES=1", "ENV PYTHONDONTWRITEBYTECODE=1",
                     'CMD ["python3"]'],
        )
        if tar.wait() != 0:
            raise EnvironmentProblem("tar of the debootstrap rootfs failed")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def _trim_rootfs(rootfs: Path) -> None:
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
        target = rootfs / sub
        if target.is_dir():
            for child in target.iterdir():
                if child.is_file():
                    child.unlink()
                elif child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)


def ensure_base(client: docker.DockerClient) -> BaseImage:
    """Pick the base image: CHAOS_BASE_IMAGE, a local python:3.12-slim, or debootstrap."""
    wanted = os.environ.get("CHAOS_BASE_IMAGE")
    if wanted:
        if not _has_image(client, wanted):
            raise EnvironmentProblem(f"CHAOS_BASE_IMAGE={wanted} is not present locally")
        return BaseImage(wanted, _python_version_of(client, wanted))
    if _has_image(client, "python:3.12-slim"):
        return BaseImage("python:3.12-slim", "3.12")
    if not _has_image(client, DEBOOTSTRAP_TAG):
        build_debootstrap_base(client)
    return BaseImage(DEBOOTSTRAP_TAG, "3.11")


def _python_version_of(client: docker.DockerClient, tag: str) -> str:
    out = client.containers.run(
        tag, ["python3", "-c", "import sys;print('%d.%d'%sys.version_info[:2])"], remove=True
    )
    return out.decode().strip()
