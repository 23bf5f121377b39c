"""Run Locust as a subprocess for one scenario run.

Locust is never imported here: it monkey-patches the process with gevent.
The process is bounded by -t, stopped with SIGTERM at the end of the run, and
killed if it does not stop in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from chaos.load import arrivals
from chaos.runtime.ledger import Ledger, process_env
from chaos.scenario.model import Load

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


class LocustProcess:
    """One headless Locust run writing per-request NDJSON records."""

    def __init__(self, load: Load, target_url: str, run_dir: Path, max_seconds: float,
                 ledger: Ledger | None = None, tls: dict[str, str] | None = None) -> None:
        self.ledger = ledger
        self.tls = tls  # load.tls: {"ca", "server_hostname"} (chaos.tls.run.RunTls.load)
        self.load = load
        self.target_url = target_url
        self.run_dir = run_dir
        self.max_seconds = max_seconds
        self.records = run_dir / "requests.ndjson"
        self.phase_file = run_dir / "phases.tsv"
        self.log_path = run_dir / "locust.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _config(self) -> dict[str, object]:
        return {
            "records": str(self.records), "phase_file": str(self.phase_file),
            "retry_header": self.load.retry_header, "timeout": self.load.timeout,
            "request_id": self.load.request_id.model_dump(),
            "rate": self.load.rate, "users": self.load.users,
            "connect_timeout": self.load.connect_timeout, "wait": self.load.wait,
            "requests": [r.model_dump(by_alias=True) for r in self.load.requests],
            "arrival": arrivals.mode(self.load), "schedulers": arrivals.schedulers(self.load),
            "pool": arrivals.pool_size(self.load),
            "dropped": str(self.run_dir / arrivals.DROPPED_FILE),
            "status_dir": str(self.run_dir / arrivals.STATUS_DIR),
            "tls": self.tls,
            "requests_per_connection": self.load.requests_per_connection,
        }

    def _users(self) -> list[str]:
        """Open-loop: one arrival scheduler per process, all started at once (each holds
        its share of the max_in_flight pool); closed-loop: `users` users at `spawn_rate`."""
        if arrivals.mode(self.load) == "open":
            count = str(arrivals.schedulers(self.load))
            return ["-u", count, "-r", count]
        return ["-u", str(self.load.users), "-r", str(self.load.spawn_rate)]

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            *self._users(), "-t", f"{int(self.max_seconds) + 1}s", "-H", self.target_url,
            "--only-summary", "--exit-code-on-error", "0", "--stop-timeout", "2",
            "--loglevel", "WARNING",
        ] + (["--processes", str(self.load.processes)] if self.load.processes > 1 else []) \
          + self._master_args()

    def _master_args(self) -> list[str]:
        if not self.load.expect_workers:
            return []
        host, _, port = self.load.master_bind.rpartition(":")
        return ["--master", "--expect-workers", str(self.load.expect_workers),
                "--master-bind-host", host.strip("[]"), "--master-bind-port", port]

    def worker_command(self) -> list[str]:
        """What a forwarding worker runs (on this or another machine) to join the master."""
        host, _, port = self.load.master_bind.rpartition(":")
        return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
                "--master-host", host.strip("[]"), "--master-port", port, "--loglevel", "WARNING"]

    def start(self) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.run_dir / "load.json"
        config_path.write_text(json.dumps(self._config(), indent=1))
        self.phase_file.write_text("")
        self.records.touch()
        env = dict(os.environ, CHAOS_LOAD_CONFIG=str(config_path), PYTHONUNBUFFERED="1")
        if self.ledger is not None:
            # recorded first; the marker in its environment lets `chaos doctor` find the
            # process group even if the harness dies before the pid reaches the ledger
            env.update(process_env(self.ledger.run_id))
            self.ledger.intend("process", "locust", config=str(config_path))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True,
            )
        if self.ledger is not None:
            self.ledger.update("process", "locust", pid=self.proc.pid, pgid=self.proc.pid)
        return self.proc.pid

    def set_phase(self, name: str, at: float | None = None) -> None:
        with open(self.phase_file, "a") as handle:
            handle.write(f"{at if at is not None else time.time():.4f}\t{name}\n")

    def wait_for_traffic(self, timeout: float = 20.0) -> bool:
        """True once the first request records reach disk (Locust is generating load)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.records.stat().st_size > 0:
                return True
            if self.proc is not None and self.proc.poll() is not None:
                return False
            time.sleep(0.1)
        return False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to Locust (its master stops its workers and flushes), then SIGKILL the group.

        The group kill also catches worker processes that outlived their master.
        """
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)
        if self.ledger is not None and self.proc.poll() is not None:
            self.ledger.removed("process", "locust")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
