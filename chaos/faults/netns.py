"""Faults inside a service's network namespace: firewall resets, black holes, loss, rate caps.

Toxiproxy only reaches traffic that goes through a proxy. These faults act where
real ones happen: a firewall or WAF answering with a TCP RST, a security group that
silently drops packets, a lossy link, a congested uplink. They are applied by a
short-lived sidecar that joins the service's network namespace with NET_ADMIN (the
service itself keeps no capabilities) and runs iptables / tc there.

Every fault gets its own iptables chains (``CHAOS-<token>-in`` / ``-out``), jumped to
from INPUT / OUTPUT, so removal deletes exactly what was added and nothing else. The
sidecar carries the run's labels (and the chain name), so the run's label sweep
removes it at teardown, on interrupt and in ``chaos doctor --sweep``; rules left in
a dead run's namespace vanish with that namespace, whose containers the same sweep
removes. A container that is kept loses its rules through the undo.

This kernel has no netem: delay and jitter come from Toxiproxy toxics, not from here.
"""

from __future__ import annotations

import contextlib
import secrets
import shlex
from dataclasses import dataclass

from docker.errors import APIError, NotFound
from docker.models.containers import Container

from chaos.errors import EnvironmentProblem
from chaos.faults.base import FaultContext, Injected
from chaos.runtime import labels as L
from chaos.scenario.model import NetFault, parse_rate

IMAGE = "netfault"  # docker/netfault, built by the session when a scenario uses net faults
CHAIN_PREFIX = "CHAOS-"
LABEL_CHAIN = "gateway-chaos.netfault.chain"
LABEL_TARGET = "gateway-chaos.netfault.target"
HOOKS = {"in": "INPUT", "out": "OUTPUT"}


@dataclass(frozen=True)
class NetPlan:
    """The commands that add one fault, and those that remove exactly it."""

    chain: str
    apply: list[list[str]]
    remove: list[list[str]]
    check_gone: list[str]  # a shell test that succeeds only when nothing of ours is left

    def apply_script(self) -> str:
        return "set -e\n" + "\n".join(shlex.join(cmd) for cmd in self.apply) + "\n"

    def remove_script(self) -> str:
        """Every step tolerates 'not there' (removal must be safe to repeat); then verify."""
        steps = [shlex.join(cmd) + " 2>/dev/null || true" for cmd in self.remove]
        return "\n".join([*steps, *self.check_gone]) + "\n"


def new_chain() -> str:
    return CHAIN_PREFIX + secrets.token_hex(4)  # CHAOS-1a2b3c4d-out: 19 of 28 characters


def _match(fault: NetFault, side: str, peer_ip: str | None) -> list[str]:
    """The match part of a rule on one side (in: packets arriving, out: packets leaving)."""
    args = ["!", "-i", "lo"] if side == "in" else ["!", "-o", "lo"]
    if peer_ip is not None:
        args += ["-s" if side == "in" else "-d", peer_ip]
    args += ["-p", "tcp"]
    if fault.net == "firewall_reset":
        # Packets of open connections only: a RST answering a SYN reads as "connection
        # refused"; a RST answering the request is what a WAF or firewall reset looks like.
        args += ["!", "--syn"]
    if fault.port is not None:
        args += ["-m", "multiport", "--ports", str(fault.port)]  # source or destination port
    if fault.probability is not None and fault.probability < 1:
        args += ["-m", "statistic", "--mode", "random", "--probability", f"{fault.probability:g}"]
    return args


def _target(fault: NetFault) -> list[str]:
    if fault.net == "firewall_reset":
        return ["-j", "REJECT", "--reject-with", "tcp-reset"]
    return ["-j", "DROP"]


def _sides(fault: NetFault) -> list[str]:
    return {"ingress": ["in"], "egress": ["out"], "both": ["in", "out"]}[fault.flow]


def iptables_plan(fault: NetFault, chain: str, peer_ip: str | None) -> NetPlan:
    """firewall_reset, blackhole, packet_loss: one chain per side, one rule in each."""
    apply: list[list[str]] = []
    remove: list[list[str]] = []
    names = []
    for side in _sides(fault):
        name, hook = f"{chain}-{side}", HOOKS[side]
        names.append(name)
        apply += [
            ["iptables", "-w", "-N", name],
            ["iptables", "-w", "-A", name, *_match(fault, side, peer_ip), *_target(fault)],
            ["iptables", "-w", "-I", hook, "1", "-j", name],
        ]
        remove += [
            ["iptables", "-w", "-D", hook, "-j", name],
            ["iptables", "-w", "-F", name],
            ["iptables", "-w", "-X", name],
        ]
    check = [f"if iptables -w -S | grep -q -- {shlex.quote(chain)}; then "
             f"echo 'chain {chain} still present' >&2; exit 1; fi"]
    return NetPlan(chain, apply, remove, check)


def tbf_params(rate_bits: int) -> tuple[int, int]:
    """(burst bytes, queue limit bytes) for a tbf at rate_bits: ~10 ms of burst, >= 16 KiB
    (tbf needs at least rate/HZ and one full packet), and a 100 ms queue."""
    per_second = rate_bits // 8
    burst = max(16 * 1024, per_second // 50)
    limit = max(burst + 16 * 1024, per_second // 5)
    return burst, limit


def tc_handle(chain: str) -> str:
    """A qdisc handle derived from the chain token, so removal deletes only our qdisc."""
    major = int(chain[len(CHAIN_PREFIX):][:4], 16) % 0xFFF0 + 1
    return f"{major:x}:"


def tc_plan(fault: NetFault, chain: str, device: str) -> NetPlan:
    """rate_limit: a tbf root qdisc on the service's interface (what the service sends)."""
    assert fault.rate is not None
    burst, limit = tbf_params(parse_rate(fault.rate))
    handle = tc_handle(chain)
    apply = [["tc", "qdisc", "add", "dev", device, "root", "handle", handle, "tbf",
              "rate", str(parse_rate(fault.rate)), "burst", str(burst), "limit", str(limit)]]
    remove = [["tc", "qdisc", "del", "dev", device, "root", "handle", handle]]
    check = [f"if tc qdisc show dev {shlex.quote(device)} root | grep -q ' {handle} '; then "
             f"echo 'qdisc {handle} still present' >&2; exit 1; fi"]
    return NetPlan(chain, apply, remove, check)


def plan(fault: NetFault, chain: str, peer_ip: str | None, device: str = "eth0") -> NetPlan:
    if fault.net == "rate_limit":
        return tc_plan(fault, chain, device)
    return iptables_plan(fault, chain, peer_ip)


def device_for_ip(ip_addr_output: str, ip: str) -> str | None:
    """From `ip -o -4 addr show`, the interface holding ip (the run network's)."""
    for line in ip_addr_output.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "inet" and parts[3].split("/")[0] == ip:
            return parts[1].split("@")[0]
    return None


def _sh(sidecar: Container, script: str) -> str:
    code, output = sidecar.exec_run(["sh", "-c", script], demux=False)
    text = (output or b"").decode(errors="replace").strip()
    if code != 0:
        raise EnvironmentProblem(f"network fault command failed in {sidecar.name}: {text}")
    return text


def _remove_sidecar(sidecar: Container) -> None:
    with contextlib.suppress(NotFound):
        sidecar.remove(force=True)


def inject_net_fault(fault: NetFault, ctx: FaultContext, index: int) -> Injected:
    """Start a sidecar in the service's namespace, add the rules; the undo removes both."""
    env = ctx.env
    image = env.tool_images.get(IMAGE)
    if image is None:
        raise EnvironmentProblem("the netfault image was not built for this run")
    service = env.services[fault.service]
    peer_ip = None
    if fault.peer is not None:
        peer_ip = env.services[fault.peer].network_ip(env.prefix)
        if peer_ip is None:
            raise EnvironmentProblem(f"peer {fault.peer} has no address on {env.prefix}")
    chain = new_chain()
    sidecar = env.start_sidecar(
        f"netfault-{fault.service}-{chain[len(CHAIN_PREFIX):]}", image, service.container,
        ["NET_ADMIN"], {L.SERVICE: f"netfault-{fault.service}", LABEL_CHAIN: chain,
                        LABEL_TARGET: fault.service},
    )
    try:
        device = "eth0"
        own_ip = service.network_ip(env.prefix)
        if fault.net == "rate_limit" and own_ip is not None:
            device = device_for_ip(_sh(sidecar, "ip -o -4 addr show"), own_ip) or device
        rules = plan(fault, chain, peer_ip, device)
        try:
            _sh(sidecar, rules.apply_script())
        except EnvironmentProblem:
            _sh(sidecar, rules.remove_script())
            raise
    except (EnvironmentProblem, APIError):
        _remove_sidecar(sidecar)
        raise

    def undo() -> None:
        try:
            _sh(sidecar, rules.remove_script())
        finally:
            _remove_sidecar(sidecar)

    return Injected(f"{fault.describe()} ({chain})", undo=undo)
