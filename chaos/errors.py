"""The exception tree of gateway-chaos, documented in one place.

Every error the harness raises on purpose derives from ChaosError, and each
subclass maps to one exit code so that the CLI never shows a traceback for a
problem the user can fix.
"""

from __future__ import annotations


class ChaosError(Exception):
    """Base of every error raised on purpose by the harness."""

    exit_code = 1


class ScenarioError(ChaosError):
    """A scenario file (or an override) is invalid: names file, line and key path."""

    exit_code = 2

    def __init__(self, message: str, file: str = "<scenario>", line: int | None = None,
                 key: str = "") -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        super().__init__(self.render())

    def render(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class SyntaxProblem(ScenarioError):
    """The text is not YAML at all (as opposed to YAML the guards refuse)."""


class UsageError(ChaosError):
    """The command line itself is wrong."""

    exit_code = 2


class EnvironmentProblem(ChaosError):
    """Docker missing, an image that cannot be built, a port that cannot be bound."""

    exit_code = 3


class ServiceNotReady(EnvironmentProblem):
    """A service did not become healthy in time; carries its last log lines."""

    def __init__(self, service: str, detail: str, logs: str = "") -> None:
        self.service = service
        self.logs = logs
        text = f"service {service!r} did not become ready: {detail}"
        if logs:
            text += "\n--- last log lines of " + service + " ---\n" + logs
        super().__init__(text)


class PartFailed(EnvironmentProblem):
    """A part of the harness itself (the proxy server, Locust, a sidecar) died mid-run.

    The traffic after that measures the harness, not the gateway: the run ends with
    exit 3 and names the part, how it died, and when (seconds since the first phase).
    """

    def __init__(self, part: str, how: str, detail: str = "", at: float | None = None) -> None:
        self.part = part
        self.how = how
        self.detail = detail
        self.at = at
        self.record: object | None = None  # the watchdog's PartFailure, for result.json
        when = "" if at is None else f" at {at:.1f}s"
        text = f"harness part failed{when}: {part}: {how}; the run's verdict is void"
        if detail:
            text += f"\n--- last lines of {part} ---\n{detail}"
        super().__init__(text)


class FaultNotApplied(EnvironmentProblem):
    """The engine could not carry out a fault action (Docker refused it).

    For example ``unpause`` of a container that is not paused. The run cannot test what
    the scenario describes, so it ends with exit 3 naming the action and Docker's reason,
    not with a verdict on the gateway.
    """

    def __init__(self, action: str, reason: str) -> None:
        self.action = action
        self.reason = reason
        super().__init__(f"fault could not be applied: {action}: {reason}")


class ProxyError(ChaosError):
    """The Toxiproxy API refused or failed a request.

    ``status`` is the HTTP status the server answered (None when no answer came: a
    refused connection, a timeout), so that callers decide on it, not on the text.
    """

    exit_code = 3

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ReportInputError(ChaosError):
    """A result.json that cannot be read (missing, not JSON, or from a newer version)."""

    exit_code = 2


class PcapError(ValueError):
    """Not a classic pcap file (or cut short inside its global header).

    A ValueError, not a ChaosError: a capture file that cannot be read is noted in the
    evidence and the run goes on; it never ends a command.
    """


class ScenarioFailed(Exception):
    """A scenario item under pytest: the verdict was not pass, or the file is invalid.

    Not a ChaosError: it is pytest's failure of one test item, rendered by the plugin.
    """


class CellStopped(Exception):
    """Ctrl-C or SIGTERM reached `chaos matrix` while a cell ran; the cell's run has been
    stopped (its own teardown ran) and its record is the argument. Not a ChaosError: the
    matrix catches it, writes matrix.json and exits 130 itself."""


class Interrupted(ChaosError):
    """The run was interrupted by SIGINT or SIGTERM; teardown still happened."""

    exit_code = 130
