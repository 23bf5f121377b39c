"""Which cells a matrix has, in which order, and the hash of each cell's inputs.

A cell is one scenario on one gateway profile. Its inputs hash covers everything that can
change its verdict from the harness's side: the scenario file's bytes, the bytes of the
profile's folder (and of its build folder when gateway.yaml names another), the harness
version and a hash of chaos/'s source, and the --set args. A finished cell recorded
with the same hash is not run again (resume).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos.errors import ScenarioError

if TYPE_CHECKING:
    from chaos.scenario.gateways import GatewayProfile

_SPEC = re.compile(r"^([a-z0-9][a-z0-9_.-]*):([a-z0-9][a-z0-9_.-]*)$")


@dataclass(frozen=True)
class Profile:
    """One gateway's folder and the config names its gateway.yaml declares."""

    name: str
    folder: Path  # where gateway.yaml is
    build: Path  # its build folder (`build:` relative to gateway.yaml; default the same)
    profiles: tuple[str, ...]
    spec: GatewayProfile  # its gateway.yaml as read (api: llm runs only LLM scenarios)


@dataclass(frozen=True)
class Cell:
    """One `chaos run`: a scenario file on one gateway profile."""

    scenario: str  # the file's stem: the row
    file: Path
    gateway: str  # NAME:PROFILE, the column
    folder: Path  # the profile's folder
    inputs: str  # sha256 of the inputs
    not_applicable: str | None = None  # why this gateway cannot carry the scenario's load

    @property
    def slug(self) -> str:
        """The cell's folder under the matrix: <scenario>/<name>-<profile>."""
        return f"{self.scenario}/{self.gateway.replace(':', '-')}"


def discover() -> dict[str, Profile]:
    """Every profile under docker/gateways/*/gateway.yaml, read and checked by the loader
    `chaos run` uses (a broken gateway.yaml is exit 2 naming its file, line and key)."""
    from chaos.scenario.gateways import build_folder, load_profile, profile_files

    found: dict[str, Profile] = {}
    for file in profile_files():
        profile = load_profile(file)
        found[profile.name] = Profile(profile.name, file.parent, build_folder(file, profile),
                                      tuple(profile.profiles), profile)
    return found


def gateways(specs: list[str], profiles: dict[str, Profile]) -> list[tuple[str, Profile]]:
    """The columns: each --gateway NAME:PROFILE checked; none (or `all`) means every
    discovered profile, in name order."""
    if not specs or specs == ["all"]:
        every = [(f"{p.name}:{c}", p) for p in profiles.values() for c in p.profiles]
        if not every:
            raise ScenarioError("no gateway profiles found (docker/gateways/*/gateway.yaml)",
                                "--gateway")
        return every
    columns: list[tuple[str, Profile]] = []
    for spec in specs:
        match = _SPEC.match(spec)
        if not match:
            raise ScenarioError(f"{spec!r}: expected NAME:PROFILE, e.g. haproxy:hardened",
                                "--gateway")
        name, config = match.groups()
        if name not in profiles:
            raise ScenarioError(f"{spec!r}: no gateway named {name!r}; known: "
                                f"{', '.join(sorted(profiles))}", "--gateway")
        if config not in profiles[name].profiles:
            raise ScenarioError(f"{spec!r}: {name} has no profile {config!r}; it has: "
                                f"{', '.join(profiles[name].profiles)}", "--gateway")
        if spec not in [c for c, _ in columns]:
            columns.append((spec, profiles[name]))
    return columns


def scenario_files(args: list[str], root: Path) -> list[Path]:
    """The rows: the files named (a path or a library name), or the whole library, sorted."""
    if not args:
        files = sorted((root / "scenarios").glob("*.yaml"))
        if not files:
            raise ScenarioError("no scenarios in the library", str(root / "scenarios"))
        return files
    rows: list[Path] = []
    for arg in args:
        path = Path(arg)
        if not path.exists():
            path = root / "scenarios" / f"{arg}.yaml"
        if not path.exists():
            raise ScenarioError(f"no such scenario file or library name {arg!r}; "
                                "`chaos list` shows the library", arg)
        if path not in rows:
            rows.append(path)
    return rows


def folder_hash(*folders: Path) -> str:
    """sha256 over every file's relative path and bytes, in sorted order, folder by folder."""
    digest = hashlib.sha256()
    for folder in dict.fromkeys(folders):
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and
                           "__pycache__" not in p.parts):
            digest.update(str(path.relative_to(folder)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@cache
def harness_hash() -> str:
    """The harness's version and the hash of chaos/'s source: a changed judge reruns cells."""
    import chaos

    return f"{chaos.__version__}+{folder_hash(Path(chaos.__file__).parent)[:16]}"


def inputs_hash(file: Path, folder_digest: str, sets: list[str]) -> str:
    """sha256 of the cell's inputs, each part hashed on its own so none can bleed into another."""
    digest = hashlib.sha256()
    for part in (file.read_bytes(), folder_digest.encode(), harness_hash().encode(),
                 "\0".join(sets).encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def plan(files: list[Path], columns: list[tuple[str, Profile]], sets: list[str]) -> list[Cell]:
    """Cells in a deterministic order: row by row (scenarios as given or sorted), each row
    across the columns in the order given."""
    folders = {p.folder: folder_hash(p.folder, p.build) for _, p in columns}  # each once
    read = cache(_scenario_data)  # a file read once, whatever the columns ask
    return [Cell(f.stem, f, spec, profile.folder, inputs_hash(f, folders[profile.folder], sets),
                 _not_applicable(f, profile, read))
            for f in files for spec, profile in columns]


def _scenario_data(file: Path) -> dict[str, Any] | None:
    """The scenario file's YAML as data (None: unreadable; its own validation says why)."""
    from chaos.scenario.yaml_marks import load_marked

    try:
        data = load_marked(file.read_text(encoding="utf-8"), str(file)).data
    except (OSError, ScenarioError):
        return None
    return data if isinstance(data, dict) else None


def _not_applicable(file: Path, profile: Profile,
                    read: Callable[[Path], dict[str, Any] | None]) -> str | None:
    """An `api: llm` gateway on a scenario whose load it does not route, or a profile
    without `tls: true` on a scenario with TLS: the cell is n/a, in words, not a run that
    fails on 404s or is refused (chaos.scenario.gateways.not_routed, no_tls)."""
    if profile.spec.api != "llm" and profile.spec.tls:
        return None  # it carries any load and any TLS: its scenario file is not read here
    from chaos.scenario.gateways import no_tls, not_routed

    data = read(file)
    if data is None:
        return None
    return not_routed(profile.spec, data) or no_tls(profile.spec, data)
