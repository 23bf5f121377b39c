"""Never open a door: what a running run exposes, what its containers may do, what it prints.

One short run of backend-reset, inspected while its fault phase is on: every published
port is bound to 127.0.0.1 only, the Toxiproxy container publishes nothing, and from a
service container its API cannot be reached (it listens on the run's control network
only) while its proxy listeners can; every container drops all capabilities, cannot
gain privileges, has memory, CPU and pid limits and a read-only root filesystem.
The run is given secrets through --set; afterwards
they appear nowhere in the console output, events.ndjson, result.json (including the
echoed command line) or any other file of the run.
"""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path

import docker
import pytest

from tests.fixtures.runs_live import run_until

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"services.gateway.env.API_TOKEN": "tok-7f3a9c1e-not-for-logs",
           "services.backend.env.DB_PASSWORD": "hunter2-but-longer"}
ARGS = ["--set", "phases.0.duration=2s", "--set", "phases.1.duration=5s",
        "--set", "phases.2.duration=2s", "--set", "assertions=[]"]
for key, value in SECRETS.items():
    ARGS += ["--set", f"{key}={value}"]


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
    proc, run_id, seen = run_until(["backend-reset", *ARGS], report_dir, timeout=240)
    containers = client.containers.list(filters={"label": [f"gateway-chaos.run={run_id}"]})
    attrs = {c.labels.get("gateway-chaos.service", c.name): c.attrs for c in containers}
    probes = {c.labels.get("gateway-chaos.service"): _probe_from(c, attrs["toxiproxy"], run_id)
              for c in containers if c.labels.get("gateway-chaos.service") in ("gateway", "backend")}
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
    return attrs, reachable, output, run_dir, probes


PROBE = """
import json, socket, sys
def reach(host, port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        return "open"
    except socket.timeout:
        return "timeout"
    except OSError as exc:
        return type(exc).__name__
    finally:
        s.close()
try:
    open("/chaos-probe", "w")
    rootfs = "writable"
except OSError as exc:
    rootfs = exc.strerror
print(json.dumps({"api_control": reach(sys.argv[1], 8474), "api_run": reach("toxiproxy", 8474),
                  "listener": reach("toxiproxy", 20000), "rootfs": rootfs}))
"""


def _probe_from(container, proxy_attrs: dict, run_id: str) -> dict[str, str]:
    """From inside a service container: the Toxiproxy API, a proxy listener, the root fs."""
    networks = proxy_attrs["NetworkSettings"]["Networks"]
    control = networks.get(f"chaos-{run_id}-control") or next(iter(networks.values()))
    control_ip = control["IPAddress"]  # (before the control network: its only address)
    code, out = container.exec_run(["python3", "-c", PROBE, control_ip])
    assert code == 0, out
    return json.loads(out.decode().strip().splitlines()[-1])


def _connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def test_the_run_had_its_containers(observed):
    attrs, _, _, _, _ = observed
    assert {"toxiproxy", "backend", "gateway"} <= set(attrs), sorted(attrs)


def test_published_ports_bind_to_loopback_only(observed):
    attrs, _, _, _, _ = observed
    for service, data in attrs.items():
        for port, bindings in (data["HostConfig"]["PortBindings"] or {}).items():
            for binding in bindings or []:
                assert binding["HostIp"] == "127.0.0.1", (service, port, binding)
        for port, bindings in (data["NetworkSettings"]["Ports"] or {}).items():
            for binding in bindings or []:
                assert binding["HostIp"] in ("127.0.0.1", ""), (service, port, binding)
                assert binding["HostIp"] != "0.0.0.0"


def test_toxiproxy_publishes_nothing(observed):
    attrs, reachable, _, _, _ = observed
    published = {p for p, b in (attrs["toxiproxy"]["NetworkSettings"]["Ports"] or {}).items() if b}
    assert published == set(), published  # API on the control network, listeners on the run's
    exposed = [key for key, ok in reachable.items() if ok]
    assert exposed == [], f"ports answer on a non-loopback address: {exposed}"


def test_containers_have_no_privileges_and_have_limits(observed):
    attrs, _, _, _, _ = observed
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
    _, _, output, run_dir, _ = observed
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


def test_services_cannot_reach_the_toxiproxy_api_but_reach_its_listeners(observed):
    attrs, _, _, _, probes = observed
    networks = attrs["toxiproxy"]["NetworkSettings"]["Networks"]
    assert len(networks) == 2, sorted(networks)  # the run network and its control network
    assert {"gateway", "backend"} <= set(probes), probes
    for service, seen in probes.items():
        assert seen["api_control"] in ("timeout", "ConnectionRefusedError"), (service, seen)
        assert seen["api_run"] == "ConnectionRefusedError", (service, seen)
        assert seen["listener"] == "open", (service, seen)
    for service, data in attrs.items():
        if service != "toxiproxy":
            assert not any(n.endswith("-control") for n in data["NetworkSettings"]["Networks"])


def test_root_filesystems_are_read_only(observed):
    attrs, _, _, _, probes = observed
    for service, seen in probes.items():
        assert seen["rootfs"] == "Read-only file system", (service, seen)
    for service, data in attrs.items():
        assert data["HostConfig"]["ReadonlyRootfs"] is True, service
