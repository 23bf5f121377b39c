"""Make a Docker engine available: use a running one, or install and start Debian's.

A fresh CI machine has the docker CLI at most, no engine and no registry; the
harness must get from there to a working engine by itself (``make setup``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import docker
from docker.errors import DockerException

from chaos.errors import EnvironmentProblem
from chaos.runtime.paths import state_dir


def connect(timeout: float = 5.0) -> docker.DockerClient:
    """A client to a running engine (DOCKER_HOST or the default socket), else EnvironmentProblem."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except DockerException as exc:
        raise EnvironmentProblem(
            f"no Docker engine answers ({exc}); run `make setup` or `chaos setup` to "
            "install and start one"
        ) from exc


def engine_running() -> bool:
    try:
        connect()
        return True
    except EnvironmentProblem:
        return False


def _log(msg: str) -> None:
    print(f"[setup] {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str]) -> None:
    _log(" ".join(cmd))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EnvironmentProblem(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )


def install_debian_packages(packages: list[str]) -> None:
    """apt-get install the packages that are missing (root on Debian only)."""
    missing = [p for p in packages if not _dpkg_installed(p)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise EnvironmentProblem(
            f"packages {missing} are needed; install them (Debian: apt-get install {' '.join(missing)})"
        )
    _run(["apt-get", "update"])
    _run(["apt-get", "install", "-y", "--no-install-recommends", *missing])


def _dpkg_installed(package: str) -> bool:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return proc.returncode == 0 and "install ok installed" in proc.stdout


def start_dockerd(wait: float = 60.0) -> Path:
    """Start dockerd in the background with its log in .chaos/dockerd.log and wait for it."""
    log_path = state_dir() / "dockerd.log"
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EnvironmentProblem("dockerd is not installed")
    _log(f"starting dockerd (log: {log_path})")
    with open(log_path, "ab") as log:
        subprocess.Popen(
            [dockerd], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if engine_running():
            return log_path
        time.sleep(0.5)
    tail = log_path.read_text(errors="replace").splitlines()[-20:]
    lines = "\n".join(tail)
    raise EnvironmentProblem(f"dockerd did not answer within {wait:g}s:\n{lines}")


def ensure_engine() -> docker.DockerClient:
    """Return a client to a working engine, installing and starting one if needed."""
    if engine_running():
        return connect()
    if os.environ.get("DOCKER_HOST"):
        return connect()  # the user chose an engine: report it, do not start another
    if not shutil.which("dockerd"):
        install_debian_packages(["docker.io"])
    start_dockerd()
    return connect()
