"""File -> validated Scenario, or one ScenarioError naming file, line and key path."""


from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chaos.errors import ScenarioError
from chaos.scenario.build_roots import allowed_roots, outside
from chaos.scenario.checks import cross_check
from chaos.scenario.external import check_external
from chaos.scenario.gateways import apply_gateway
from chaos.scenario.lint import target_fault_warnings
from chaos.scenario.model import Scenario
from chaos.scenario.model_errors import validate_model
from chaos.scenario.overrides import apply_override
from chaos.scenario.references import REFERENCE, bypass_warnings
from chaos.scenario.yaml_marks import MAX_FILE_BYTES, MarkedDocument, load_marked

__all__ = ["REFERENCE", "check_scenario", "load_scenario", "scale_phases", "validate"]


def load_scenario(path: str | Path, overrides: list[str] | None = None,
                  build_roots: Sequence[str | Path] = (), gateway: str | None = None) -> Scenario:
    """Read, override (``--set a.b=c``), validate and cross-check a scenario file."""
    return check_scenario(path, overrides, build_roots, gateway)[0]


def check_scenario(path: str | Path, overrides: list[str] | None = None,
                   build_roots: Sequence[str | Path] = (),
                   gateway: str | None = None) -> tuple[Scenario, list[str]]:
    """load_scenario plus warnings (``file:line: key: warning: ...``) about legal but
    suspicious files, such as traffic that bypasses a proxy. ``build_roots``: folders
    (besides the scenario's own project) that ``build:`` may name (``--build-root``).
    ``gateway``: ``NAME:PROFILE`` (``--gateway``), winning over the file's ``gateway:``."""
    file = str(path)
    doc = load_marked(read_text(Path(path), file), file)
    if not isinstance(doc.data, dict):
        raise ScenarioError("expected a mapping with name, services, load, phases", file, 1)
    for item in overrides or []:
        apply_override(doc, item)
    apply_gateway(doc, gateway)  # before validation: ${proxy.backend} is checked as usual
    scenario = validate(doc)
    cross_check(scenario, doc)
    check_external(scenario, doc)
    check_builds(scenario, doc, allowed_roots(Path(path), build_roots))
    return scenario, bypass_warnings(scenario, doc) + target_fault_warnings(scenario, doc)


def read_text(path: Path, file: str) -> str:
    """The file's text; files above MAX_FILE_BYTES are refused before anything parses them."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"cannot read the file: {exc}", file) from None
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError(f"the file is larger than {MAX_FILE_BYTES >> 20} MB; scenario files "
                            "are small (refused before parsing)", file)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ScenarioError(f"cannot read the file: not UTF-8 ({exc.reason})", file, line) from None


def check_builds(scenario: Scenario, doc: MarkedDocument, roots: list[Path]) -> None:
    """Every build: folder resolves inside an allowed root (symlinks resolved)."""
    for name, service in scenario.services.items():
        if service.build is None:
            continue
        folder = outside(service.build, roots)
        if folder is not None:
            allowed = ", ".join(str(root) for root in roots)
            raise doc.error(("services", name, "build"),
                            f"build folder {folder} is outside the allowed folders ({allowed}); "
                            "name another with --build-root DIR")


def scale_phases(scenario: Scenario, factor: float) -> Scenario:
    """``--duration-scale F``: every phase lasts F times as long.

    Phase durations change, and the `at`/`for` of their faults with them. Reaction-time
    bounds (``recovers_within``, breaker ``opens_within``/``closes_within``), latencies,
    toxic attributes and ``redraw_every`` describe the gateway, not the length of the
    test, so they stay as written.
    """
    if factor <= 0:
        raise ScenarioError(f"--duration-scale must be > 0, got {factor:g}", "--duration-scale")
    phases = [p.model_copy(update={"duration": p.duration * factor,
                                   "faults": [_scaled(f, factor) for f in p.faults]})
              for p in scenario.phases]
    return scenario.model_copy(update={"phases": phases})


def _scaled(fault: Any, factor: float) -> Any:
    """A fault's `at` and `for` are times inside its phase: they scale with it."""
    if fault.at is None and fault.for_ is None:
        return fault
    return fault.model_copy(update={"at": None if fault.at is None else fault.at * factor,
                                    "for_": None if fault.for_ is None else fault.for_ * factor})


def validate(doc: MarkedDocument) -> Scenario:
    return validate_model(doc, Scenario)
