"""Build images with docker-py: the project's own kept by content hash, others per run.

Python packages enter images from a wheelhouse made on the host, because
containers here cannot reach PyPI over TLS; npm packages (a folder with a
package-lock.json) likewise from an npm cache fetched on the host. The project's own images (the
folders under its ``docker/``) are tagged by a hash of their content and kept:
an image whose inputs did not change is not rebuilt. An image a scenario builds
from any other folder belongs to one run, as Testcontainers does it
(``ImageFromDockerfile`` deletes on exit by default): it is tagged
``gateway-chaos-run/<name>:<run id>``, carries the run's labels (run id,
scenario, created-at, owner), is written to the run's ledger before the build,
and is removed at teardown; after a SIGKILL, ``chaos doctor --sweep`` removes it.
Its layers shared with other images stay in Docker's build cache.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import BuildError, ImageNotFound

from chaos.errors import EnvironmentProblem
from chaos.runtime import labels as L
from chaos.runtime.base_image import BaseImage
from chaos.runtime.bootstrap import _log
from chaos.runtime.ledger import Ledger
from chaos.runtime.paths import project_root, shared_modules, state_dir

IMAGE_LABEL = "gateway-chaos.image"
RUN_IMAGE_REPO = "gateway-chaos-run"


@dataclass(frozen=True)
class ImageSpec:
    """What goes into one image: a folder with a Dockerfile, plus extra files."""

    name: str
    context_dir: Path
    extra_files: dict[str, Path] = field(default_factory=dict)  # arcname -> source

    def files(self) -> dict[str, Path]:
        found = {
            str(p.relative_to(self.context_dir)): p
            for p in sorted(self.context_dir.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        }
        found.update(self.extra_files)
        return dict(sorted(found.items()))


def toxiproxy_spec() -> ImageSpec:
    """The project's Toxiproxy-API server: only the embedded package, not the harness."""
    root = project_root()
    embedded = root / "chaos" / "proxy" / "embedded"
    extra = {
        "chaos/__init__.py": root / "chaos" / "__init__.py",
        "chaos/proxy/__init__.py": root / "chaos" / "proxy" / "__init__.py",
    }
    for src in sorted(embedded.glob("*.py")):
        extra[f"chaos/proxy/embedded/{src.name}"] = src
    return ImageSpec("toxiproxy", root / "docker" / "toxiproxy", extra)


# The reference services' images get docker/shared/*.py (e.g. tls_serving.py) beside their
# own modules, flat in the build context as their Dockerfiles `COPY *.py /app/`.
SHARED_MODULES_FOR = ("backend", "gateway", "llm-provider")


def spec_for_build_dir(build_dir: Path) -> ImageSpec:
    if not (build_dir / "Dockerfile").is_file():
        raise EnvironmentProblem(f"{build_dir} has no Dockerfile")
    extra: dict[str, Path] = {}
    if build_dir.name in SHARED_MODULES_FOR and is_project_image(build_dir):
        extra = {src.name: src for src in sorted(shared_modules().glob("*.py"))}
    return ImageSpec(_repo_name(build_dir.name), build_dir, extra)


def _repo_name(name: str) -> str:
    """A folder name as a Docker repository component (lower case, [a-z0-9._-])."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip(".-_")
    return cleaned or "image"


def is_project_image(build_dir: Path) -> bool:
    """A folder under the project's own docker/: its image is kept by content hash."""
    return build_dir.resolve().is_relative_to((project_root() / "docker").resolve())


def image_for_build(client: docker.DockerClient, build_dir: Path, base: BaseImage,
                    run_labels: dict[str, str], ledger: Ledger | None) -> str:
    """The tag to run for a service's ``build:`` folder (see the module docstring)."""
    spec = spec_for_build_dir(build_dir)
    if is_project_image(build_dir):
        return ensure_image(client, spec, base)
    tag = f"{RUN_IMAGE_REPO}/{spec.name}:{run_labels[L.RUN]}"
    if ledger is not None:
        ledger.intend("image", tag, folder=str(build_dir))
    _build(client, spec, base, tag, {**run_labels, IMAGE_LABEL: spec.name})
    return tag


def content_hash(spec: ImageSpec, base: BaseImage, base_id: str) -> str:
    digest = hashlib.sha256()
    digest.update(f"{base.tag}\0{base_id}\0".encode())
    for arcname, path in spec.files().items():
        digest.update(arcname.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def wheelhouse(requirements: Path, python_version: str) -> Path:
    """Download wheels for requirements.txt once per (content, Python version)."""
    req_hash = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    target = state_dir() / "wheelhouse" / f"py{python_version}" / req_hash
    marker = target / ".complete"
    if marker.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    _log(f"downloading wheels for {requirements} (Python {python_version})")
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
        "--python-version", python_version, "-d", str(target), "-r", str(requirements),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EnvironmentProblem(f"pip download for {requirements} failed:\n{proc.stderr[-2000:]}")
    marker.touch()
    return target


def npm_cache(lockfile: Path) -> Path:
    """Fetch every package a package-lock.json names into an npm cache, once per lock.

    ``npm ci`` on the host (scripts off) downloads each tarball and checks it against the
    lock's integrity hash; the image then runs ``npm ci --offline`` from this cache, the way
    wheels come from the wheelhouse (containers cannot reach the npm registry either)."""
    lock_hash = hashlib.sha256(lockfile.read_bytes()).hexdigest()[:12]
    target = state_dir() / "npm-cache" / lock_hash
    marker = target / ".complete"
    if marker.exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise EnvironmentProblem(f"{lockfile} needs npm on the host to fetch its packages")
    _log(f"fetching npm packages for {lockfile}")
    with tempfile.TemporaryDirectory(prefix="npm-fetch-") as work:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(lockfile.parent / name, Path(work) / name)
        cmd = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error",
               "--cache", str(target / "cache")]
        try:
            proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            raise EnvironmentProblem(f"npm ci for {lockfile} took over 600 s") from None
    if proc.returncode != 0:
        raise EnvironmentProblem(f"npm ci for {lockfile} failed:\n{proc.stderr[-2000:]}")
    marker.touch()
    return target


def _context_tar(spec: ImageSpec, wheels: Path | None,
                 npm: Path | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for arcname, path in spec.files().items():
            tar.add(str(path), arcname=arcname)
        if npm is not None:  # the npm cache's content, beside the lock it was fetched for
            tar.add(str(npm / "cache"), arcname="npm-cache")
        wheel_dir = tarfile.TarInfo("wheels")
        wheel_dir.type = tarfile.DIRTYPE
        wheel_dir.mode = 0o755
        tar.addfile(wheel_dir)
        if wheels is not None:
            for whl in sorted(wheels.glob("*.whl")):
                tar.add(str(whl), arcname=f"wheels/{whl.name}")
    buf.seek(0)
    return buf


def ensure_image(client: docker.DockerClient, spec: ImageSpec, base: BaseImage) -> str:
    """Return the tag of the image for spec, building it only if its content changed."""
    base_id = client.images.get(base.tag).id
    tag = f"gateway-chaos/{spec.name}:{content_hash(spec, base, base_id)}"
    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:
        pass
    _build(client, spec, base, tag, {IMAGE_LABEL: spec.name})
    return tag


def _build(client: docker.DockerClient, spec: ImageSpec, base: BaseImage, tag: str,
           labels: dict[str, str]) -> None:
    requirements = spec.context_dir / "requirements.txt"
    wheels = wheelhouse(requirements, base.python_version) if requirements.is_file() else None
    lockfile = spec.context_dir / "package-lock.json"
    npm = npm_cache(lockfile) if lockfile.is_file() else None
    _log(f"building {tag}")
    try:
        client.images.build(
            fileobj=_context_tar(spec, wheels, npm), custom_context=True, tag=tag, rm=True,
            forcerm=True, buildargs={"BASE": base.tag}, labels=labels,
        )
    except BuildError as exc:
        lines = [str(item.get("stream", item.get("error", ""))).rstrip() for item in exc.build_log]
        tail = "\n".join(line for line in lines if line)[-3000:]
        raise EnvironmentProblem(f"building {tag} failed: {exc.msg}\n{tail}") from exc
