"""Faults inside a service's network namespace: firewall resets, black holes, loss, rate caps.

Toxiproxy only reaches traffic that goes through a proxy. These faults act where
real ones happen: a firewall or WAF answering with a TCP RST, a security group that
silently drops packets, a lossy link, a congested uplink. They are applied by a
short-lived sidecar that joins the service's network namespace with NET_ADMIN (the
service itself keeps no capabilities) and runs iptables / tc there.

The commands themselves are built in ``chaos/faults/netrules.py`` (pure, no Docker);
this module runs them: it starts the sidecar, applies the plan, and removes both. The
sidecar carries the run's labels (and the chain name), so the run's label sweep removes
it at teardown, on interrupt and in ``chaos doctor --sweep``;
rules left in a dead run's namespace vanish with that namespace, whose containers the
same sweep removes. A container that is kept loses its rules through the undo.

This kernel has no netem: delay and jitter come from Toxiproxy toxics, not from here.
"""

from __future__ import annotations

import contextlib

from docker.errors import APIError, NotFound
from docker.models.containers import Container

from chaos.errors import EnvironmentProblem
from chaos.faults.base import FaultContext, Injected
from chaos.faults.netrules import (
    CHAIN_PREFIX,
    HOOKS,
    INGRESS,
    UNSHAPED,
    NetPlan,
    device_for_ip,
    ifb_name,
    iptables_plan,
    kernel_hint,
    new_chain,
    plan,
    tbf_params,
    tc_handle,
    tc_plan,
    u32_matches,
)
from chaos.runtime import labels as L
from chaos.scenario.model import NetFault

__all__ = [  # the rule builders stay importable from here, where they used to live
    "CHAIN_PREFIX", "HOOKS", "IMAGE", "INGRESS", "LABEL_CHAIN", "LABEL_TARGET", "UNSHAPED",
    "NetPlan", "device_for_ip", "ifb_name", "inject_net_fault", "iptables_plan", "kernel_hint",
    "new_chain", "plan", "tbf_params", "tc_handle", "tc_plan", "u32_matches",
]

IMAGE = "netfault"  # docker/netfault, built by the session when a scenario uses net faults
LABEL_CHAIN = "gateway-chaos.netfault.chain"
LABEL_TARGET = "gateway-chaos.netfault.target"


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
        except EnvironmentProblem as exc:
            _sh(sidecar, rules.remove_script())
            raise EnvironmentProblem(f"{exc}{kernel_hint(fault, str(exc))}") from exc
    except (EnvironmentProblem, APIError):
        _remove_sidecar(sidecar)
        raise

    def undo() -> None:
        try:
            _sh(sidecar, rules.remove_script())
        finally:
            _remove_sidecar(sidecar)

    return Injected(f"{fault.describe()} ({chain})", undo=undo)
