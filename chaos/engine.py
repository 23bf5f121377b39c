"""Run one scenario: environment up, phases with load and faults, verdict, reports, down.

The engine owns teardown: it happens on success, failed assertions, errors,
Ctrl-C and SIGTERM, before the verdict is computed and reports are written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from chaos.errors import ChaosError, Interrupted, ScenarioError
from chaos.llm.analysis import analyse_llm, store_llm
from chaos.llm.providers import providers
from chaos.observe.console import Console
from chaos.observe.events import (
    AssertionEvaluated,
    EventBus,
    LoadWarning,
    Recorder,
    RecoveryMeasured,
    RunFailed,
    RunFinished,
    RunInterrupted,
    RunStarted,
    TeardownFinished,
    TeardownStarted,
)
from chaos.report.derive import environment as report_environment
from chaos.report.listener import ReportWriter
from chaos.report.mask import Masker, masked, secret_values
from chaos.scenario.model import Scenario
from chaos.scenario.yaml_marks import line_of_key
from chaos.session import RunSession
from chaos.session_api import RunSessionLike, SessionFactory, witness_of
from chaos.stack.base import Stack, StackFactory
from chaos.stack.gateway_version import gateway_label
from chaos.verdict.evaluate import Evidence, evaluate, overall, scoped_requests
from chaos.verdict.generator import check_generator
from chaos.verdict.recovery import recovery_line, run_recovery
from chaos.verdict.result import Result
from chaos.verdict.stats import read_records
from chaos.verdict.summary import phase_stats_from
from chaos.verdict.tls_figures import store_tls, tls_figures
from chaos.witness.analysis import findings_for, relabel, store


def new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM becomes Interrupted (SIGINT is KeyboardInterrupt already)."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise Interrupted("terminated by SIGTERM")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Teardown must complete: a second Ctrl-C or SIGTERM does not cut it short."""
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def run_scenario(scenario: Scenario, *, file: str = "", scenario_yaml: str = "",
                 report_root: Path = Path("reports"), quiet: bool = False,
                 command: str = "", bus: EventBus | None = None,
                 baseline: tuple[str, Result, float] | None = None,
                 session_factory: SessionFactory | None = None,
                 stack_factory: StackFactory | None = None) -> Result:
    """Run a validated scenario and return its Result (reports are written too).

    `baseline` (path, old result, tolerance): compare with a previous run before the
    reports are written, so result.json and report.html carry the regression check.
    `stack_factory` is the environment seam: what brings the services and proxies up and
    takes them down (default DockerStack, or ExternalStack for services given by url:;
    chaos.stack.loopback.LoopbackStack runs the reference apps on
    127.0.0.1 without Docker); the phase loop (RunSession) runs over it unchanged.
    `session_factory` replaces the whole run (stack and phases) with something shaped
    like RunSessionLike: tests replay recorded observations through it.
    """
    run_id = new_run_id()
    run_dir = report_root / f"{scenario.name}-{run_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    bus = bus or EventBus()
    recorder = Recorder(run_dir / "events.ndjson")
    # Secrets of service environments are masked in everything a run prints or writes.
    masker = Masker(secret_values(s.env for s in scenario.services.values()))
    console = Console(quiet=quiet, records=run_dir / "requests.ndjson",
                      total=scenario.total_duration())
    bus.subscribe(ReportWriter(masker), critical=True)  # before the console's verdict line
    bus.subscribe(masked(console, masker))
    bus.subscribe(masked(recorder, masker))
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    bus.emit(RunStarted(scenario=scenario.name, run_id=run_id))
    stack: Stack | None = None
    if session_factory is not None:
        session = session_factory(scenario, run_id, run_dir, bus)
    else:
        stack = (stack_factory or _default_stack)(scenario, run_id, run_dir, bus)
        session = RunSession(scenario, run_id, run_dir, bus, stack=stack)
    error: str | None = None
    verdict = ""
    part_failure = None
    try:
        with _signals_raise():
            _run(session, stack, bus, run_id)
    except (KeyboardInterrupt, Interrupted) as exc:
        verdict, error = "interrupted", "the run was interrupted; everything it created was removed"
        bus.emit(RunInterrupted(reason=str(exc) or type(exc).__name__))
    except ScenarioError as exc:
        # Found only once the run knew its environment (a user's Toxiproxy server cannot
        # serve this scenario): bad input all the same, refused before anything started.
        recorder.close()
        console.close()
        if file:
            exc.file = file
            if exc.line is None and exc.key and scenario_yaml:
                exc.line = line_of_key(scenario_yaml, exc.key)
            exc.args = (exc.render(),)
        raise
    except ChaosError as exc:
        verdict, error = "error", str(exc)
        part_failure = getattr(exc, "record", None)  # a harness part died (PartFailed)
        bus.emit(RunFailed(error=error, part=str(getattr(part_failure, "part", "") or "")))
    result = Result(
        scenario=scenario.name, file=file, run_id=run_id, started_at=started_at,
        duration_s=round(time.monotonic() - started, 2), verdict=verdict, exit_code=0,
        description=scenario.description, provider=session.provider, images=session.images,
        command=command, error=error, phases=session.windows, faults=session.fault_records,
        logs={name: masker.log(text) for name, text in session.logs.items()},
        scenario_yaml=scenario_yaml, report_dir=str(run_dir), environment_error=part_failure,
    )
    _judge(scenario, session, result, bus, masker)
    result.environment = report_environment()
    if scenario.gateway is not None:  # a gateway profile ran: name, version line, profile
        result.gateway = scenario.gateway
        result.environment["gateway"] = gateway_label(
            scenario.gateway, getattr(stack, "gateway_version", None))
    result = masker.apply(result)
    if baseline is not None and result.verdict not in ("error", "interrupted"):
        from chaos.verdict.baseline import apply_baseline

        apply_baseline(result, baseline[1], baseline[0], baseline[2], scenario.confidence)
    bus.emit(RunFinished(verdict=result.verdict, exit_code=result.exit_code,
                         report_dir=str(run_dir), result=result,
                         records=session.records_path, t0=session.t0))
    recorder.close()
    console.close()
    return result


def _default_stack(scenario: Scenario, run_id: str, run_dir: Path, bus: EventBus) -> Stack:
    """Services given by url: are already running (external); otherwise Docker runs them."""
    from chaos.scenario.external import is_external

    if is_external(scenario):
        from chaos.stack.external import ExternalStack

        return ExternalStack(scenario, run_id, run_dir, bus)
    from chaos.stack.docker import DockerStack

    return DockerStack(scenario, run_id, run_dir, bus)


def _run(session: RunSessionLike, stack: Stack | None, bus: EventBus, run_id: str) -> None:
    """Stack up, phases, then down on every path: the session's load and probes first,
    then everything the stack made (also when its bring-up failed half-way)."""
    resources = contextlib.ExitStack()
    try:
        if stack is not None:
            resources.push(stack.__exit__)  # also a bring-up that fails half-way
            stack.open()
        session.run()
    finally:
        with shielded():
            bus.emit(TeardownStarted(run_id=run_id))
            session.teardown()
            resources.close()
            bus.emit(TeardownFinished(run_id=run_id))


_EXIT = {"pass": 0, "fail": 1, "error": 3, "inconclusive": 4, "interrupted": 130}


def _judge(scenario: Scenario, session: RunSessionLike, result: Result, bus: EventBus,
           masker: Masker) -> None:
    end = session.windows[-1].end if session.windows else 0.0
    result.witness = witness_of(session)  # which witness saw the upstream side, and how much
    result.breaker = [(round(t - session.t0, 3), v) for t, v in session.breaker_samples]
    result.upstream = [(round(t - session.t0, 3), v) for t, v in session.upstream_samples]
    probe = scenario.probes.breaker
    # the provider journals joined first: requests.ndjson gets served_by (and truncated_success)
    llm = analyse_llm(session.run_dir, session.records_path, session.t0, session.windows,
                      sorted(set(providers(scenario).values())))
    findings = findings_for(session.run_dir, session.records_path, session.t0, session.windows,
                            {r.name for r in scenario.load.requests if r.idempotent},
                            result.witness)  # chaos.witness: what the upstream saw, joined
    records = read_records(session.records_path, session.t0)
    evidence = Evidence(records if findings is None else relabel(records, findings.index),
                        session.windows, result.breaker, result.upstream,
                        probe.open_value if probe else 1.0, faults=session.fault_records,
                        requests=scoped_requests(scenario), witness=findings,
                        witness_note=str(result.witness.get("note", "")),
                        witness_kind=str(result.witness.get("kind", "")), llm=llm)
    store(result, findings)
    store_llm(result, llm)
    store_tls(result, tls_figures(session.records_path, session.t0, end,  # handshakes (issue 22)
                                  [w.name for w in session.windows]))
    result.timeline = evidence.aggregate.timeline(end)
    result.phase_stats = phase_stats_from(evidence.aggregate, session.windows)
    generator = check_generator(scenario.load, session.records_path, session.t0,
                                session.windows, result)
    for text in result.load_warnings:
        bus.emit(LoadWarning(text=text))
    _recovery(scenario, session, result, evidence, bus, end)
    evidence.capture = _collect_evidence(scenario, session, result, evidence, masker)
    if result.verdict:  # error or interrupted: no judgement on partial data
        result.exit_code = _EXIT[result.verdict]
        return
    result.assertions = evaluate(scenario, evidence) + generator
    for item in result.assertions:
        bus.emit(AssertionEvaluated(phase=item.phase, check=f"{item.label} {item.bound}",
                                    passed=item.passed, status=item.status,
                                    message=item.message or f"observed {item.observed}"))
    result.verdict = overall(result.assertions)
    result.exit_code = _EXIT[result.verdict]


def _recovery(scenario: Scenario, session: RunSessionLike, result: Result, evidence: Evidence,
              bus: EventBus, end: float) -> None:
    """The run's recovery, measured once here: result.json, the report and the console show it."""
    result.recovery = run_recovery(evidence.aggregate.slots, session.fault_records, end,
                                   scenario.confidence)
    if result.recovery is None:
        return
    result.recovery_s, result.recovered = result.recovery.seconds, result.recovery.recovered
    bus.emit(RecoveryMeasured(text=recovery_line(result.recovery),
                              seconds=result.recovery.seconds))


def _collect_evidence(scenario: Scenario, session: RunSessionLike, result: Result,
                      evidence: Evidence, masker: Masker) -> object:
    """result.evidence (chaos.capture.evidence); the capture analysis for rst_from, if any."""
    from chaos.capture.evidence import build
    from chaos.capture.sidecar import Limits

    spec = scenario.capture_spec()
    limits = None if spec is None else Limits(spec.max_mb, spec.max_seconds, spec.ss_interval)
    try:
        result.evidence, found = build(
            session.run_dir, session.t0, session.windows, session.fault_records, result.timeline,
            scenario.load.target, session.capture_names, session.captured, limits,
            evidence.aggregate.whole.count("reset"))
    except Exception as exc:  # noqa: BLE001 - evidence must never cost the verdict
        result.evidence = {"error": f"could not assemble the evidence: {exc}"}
        return None
    for row in result.evidence.get("events", []):
        if row.get("kind") == "log":
            row["text"] = masker.log(row["text"])
    for sample in result.evidence.get("samples", []):
        sample["gateway_logs"] = [masker.log(x) for x in sample["gateway_logs"]]
    return found

