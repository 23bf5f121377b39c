"""Never open a door: what a running run exposes, what its containers may do, what it prints.

One short run of backend-reset, inspected while its fault phase is on: every published
port is bound to 127.0.0.1 only (the Toxiproxy API included; proxy listeners are not
published at all), every container drops all capabilities, cannot gain privileges and
has memory, CPU and pid limits. The run is given secrets through --set; afterwards
they appear nowhere in the console output, events.ndjson, result.json (including the
echoed command line) or any other file of the run.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"services.gateway.env.API_TOKEN": "tok-7f3a9c1e-not-for-logs",
           "services.backend.env.DB_PASSWORD": "hunter2-but-longer"}
ARGS = ["--set", "phases.0.duration=2s", "--set", "phases.1.duration=5s",
        "--set", "phases.2.duration=2s", "--set", "assertions=[]"]
for key, value in SECRETS.items():
    ARGS += ["--set", f"{key}={value}"]
RUN_LINE = re.compile(r"run (\d{8}-\d{6}-[0-9a-f]{4}) of scenario")


def host_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (where an exposed port would answer)."""
    found = set()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))
            found.add(probe.getsockname()[0])
    except OSError:
        pass
    with contextlib.suppress(OSError):
        found.update(socket.gethostbyname_ex(socket.gethostname())[2])
    return sorted(a for a in found if not a.startswith("127."))


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory):
    """Run once; inspect the containers mid-run; return (attrs by service, output, run dir)."""
    client = docker.from_env()
    report_dir = tmp_path_factory.mktemp("security")
    proc = subprocess.Popen([sys.executable, "-m", "chaos.cli", "run", "backend-reset", *ARGS,
                             "--report-dir", str(report_dir)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None
    seen: list[str] = []
    run_id = ""
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        seen.append(line)
        if match := RUN_LINE.search(line):
            run_id = match.group(1)
        if "fault on:" in line or time.monotonic() > deadline:
            break
    assert run_id, "".join(seen)
    containers = client.containers.list(filters={"label": [f"gateway-chaos.run={run_id}"]})
    attrs = {c.labels.get("gateway-chaos.service", c.name): c.attrs for c in containers}
    reachable = {}
    for service, data in attrs.items():
        for bindings in (data["NetworkSettings"]["Ports"] or {}).values():
            for binding in bindings or []:
                for address in host_addresses():
                    reachable[(service, address, binding["HostPort"])] = _connects(
                        address, int(binding["HostPort"]))
    rest, _ = proc.communicate(timeout=240)
    output = "".join(seen) + rest
    assert proc.returncode == 0, output
    run_dir = next(p for p in report_dir.iterdir() if p.is_dir() and not p.is_symlink())
    return attrs, reachable, output, run_dir


def _connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def test_the_run_had_its_containers(observed):
    attrs, _, _, _ = observed
    assert {"toxiproxy", "backend", "gateway"} <= set(attrs), sorted(attrs)


def test_published_ports_bind_to_loopback_only(observed):
    attrs, _, _, _ = observed
    for service, data in attrs.items():
        for port, bindings in (data["HostConfig"]["PortBindings"] or {}).items():
            for binding in bindings or []:
                assert binding["HostIp"] == "127.0.0.1", (service, port, binding)
        for port, bindings in (data["NetworkSettings"]["Ports"] or {}).items():
            for binding in bindings or []:
                assert binding["HostIp"] in ("127.0.0.1", ""), (service, port, binding)
                assert binding["HostIp"] != "0.0.0.0"


def test_toxiproxy_publishes_only_its_api_and_only_on_loopback(observed):
    attrs, reachable, _, _ = observed
    published = {p for p, b in (attrs["toxiproxy"]["NetworkSettings"]["Ports"] or {}).items() if b}
    assert published == {"8474/tcp"}, published  # proxy listeners stay inside the run's network
    exposed = [key for key, ok in reachable.items() if ok]
    assert exposed == [], f"ports answer on a non-loopback address: {exposed}"


def test_containers_have_no_privileges_and_have_limits(observed):
    attrs, _, _, _ = observed
    for service, data in attrs.items():
        host = data["HostConfig"]
        assert host["Privileged"] is False, service
        assert host["CapDrop"] and "ALL" in host["CapDrop"], (service, host["CapDrop"])
        assert not host.get("CapAdd"), (service, host.get("CapAdd"))
        assert any(o.startswith("no-new-privileges") for o in host["SecurityOpt"] or []), service
        assert host["Memory"] > 0, service
        assert host["NanoCpus"] > 0, service
        assert host["PidsLimit"] and host["PidsLimit"] > 0, service
        assert host["NetworkMode"] not in ("host",), service
        assert not host.get("Binds"), (service, host.get("Binds"))


def test_secrets_appear_in_no_output(observed):
    _, _, output, run_dir = observed
    for value in SECRETS.values():
        assert value not in output, "a secret reached the console"
    events = (run_dir / "events.ndjson").read_text()
    result = json.loads((run_dir / "result.json").read_text())
    assert "****" in result["command"], result["command"]
    for value in SECRETS.values():
        assert value not in events
        assert value not in result["command"]
        for path in run_dir.rglob("*"):
            if path.is_file():
                assert value.encode() not in path.read_bytes(), f"a secret is in {path.name}"
