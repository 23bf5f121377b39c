"""The iptables / tc commands of a network fault, built as plain data (no Docker).

Every fault gets its own iptables chains (``CHAOS-<token>-in`` / ``-out``), jumped to
from INPUT / OUTPUT, so removal deletes exactly what was added and nothing else. A
rate cap is tc instead: a root qdisc (and, for ingress, an ifb device and filters of
one priority) whose handle, name and priority derive from the same token, and are
deleted by them. A ``NetPlan`` holds the commands that add one fault and those that
remove exactly it; ``chaos/faults/netns.py`` runs them in a sidecar.
"""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass

from chaos.scenario.model import NetFault, parse_rate

CHAIN_PREFIX = "CHAOS-"
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


def ifb_name(chain: str) -> str:
    """The ifb device of an ingress rate_limit: 'cx' + the chain token (10 of 15 characters)."""
    return "cx" + chain[len(CHAIN_PREFIX):]


UNSHAPED = "10gbit"  # the default class of a scoped egress cap: everything else passes as before
INGRESS = "ffff:"  # the ingress qdisc's fixed handle


def u32_matches(side: str, peer_ip: str | None, port: int | None) -> list[list[str]]:
    """The u32 selectors of one side, one per filter: TCP, the peer's address, and the port
    at either end (two filters, like iptables `multiport --ports`). ihl 5 pins the TCP
    header at offset 20, where u32's `ip sport` / `ip dport` look. Unscoped: every packet,
    like the unscoped egress tbf."""
    if peer_ip is None and port is None:
        return [["match", "u32", "0", "0"]]
    base = ["match", "ip", "ihl", "5", "0xf", "match", "ip", "protocol", "6", "0xff"]
    if peer_ip is not None:
        base += ["match", "ip", "dst" if side == "out" else "src", f"{peer_ip}/32"]
    if port is None:
        return [base]
    return [[*base, "match", "ip", end, str(port), "0xffff"] for end in ("sport", "dport")]


def _tbf(device: str, parent: list[str], handle: str, rate: int) -> list[str]:
    burst, limit = tbf_params(rate)
    return ["tc", "qdisc", "add", "dev", device, *parent, "handle", handle, "tbf",
            "rate", str(rate), "burst", str(burst), "limit", str(limit)]


def _egress(fault: NetFault, handle: str, device: str, peer_ip: str | None) -> NetPlan:
    """What the service sends. Unscoped: a tbf root qdisc. Scoped: an htb root whose default
    class is unshaped, and u32 filters steering matching packets into a class at the rate."""
    rate = parse_rate(fault.rate or "")
    if peer_ip is None and fault.port is None:
        apply = [_tbf(device, ["root"], handle, rate)]
    else:
        burst, _ = tbf_params(rate)
        apply = [
            ["tc", "qdisc", "add", "dev", device, "root", "handle", handle, "htb", "default", "1"],
            ["tc", "class", "add", "dev", device, "parent", handle, "classid", f"{handle}1",
             "htb", "rate", UNSHAPED, "quantum", "60000"],
            ["tc", "class", "add", "dev", device, "parent", handle, "classid", f"{handle}2",
             "htb", "rate", str(rate), "ceil", str(rate), "burst", str(burst),
             "cburst", str(burst), "quantum", "60000"],
        ]
        apply += [["tc", "filter", "add", "dev", device, "parent", handle, "protocol", "ip",
                   "prio", "1", "u32", *match, "flowid", f"{handle}2"]
                  for match in u32_matches("out", peer_ip, fault.port)]
    remove = [["tc", "qdisc", "del", "dev", device, "root", "handle", handle]]
    check = [f"if tc qdisc show dev {shlex.quote(device)} root | grep -q ' {handle} '; then "
             f"echo 'qdisc {handle} still present' >&2; exit 1; fi"]
    return NetPlan("", apply, remove, check)


def _ingress(fault: NetFault, chain: str, handle: str, device: str,
             peer_ip: str | None) -> NetPlan:
    """What the service receives. An ingress qdisc has no queue to shape in, so matching
    packets are redirected (tc mirred) to an ifb device of our own, whose tbf root qdisc
    shapes them before they reach the service's stack. Our filters carry a priority
    derived from the handle; the ingress qdisc is deleted only once no filter is left on it."""
    ifb, prio = ifb_name(chain), str(int(handle.rstrip(":"), 16))
    apply = [
        ["ip", "link", "add", ifb, "type", "ifb"],
        ["ip", "link", "set", ifb, "up"],
        _tbf(ifb, ["root"], handle, parse_rate(fault.rate or "")),
        ["tc", "qdisc", "add", "dev", device, "handle", INGRESS, "ingress"],
    ]
    apply += [["tc", "filter", "add", "dev", device, "parent", INGRESS, "protocol", "ip",
               "prio", prio, "u32", *match, "action", "mirred", "egress", "redirect",
               "dev", ifb] for match in u32_matches("in", peer_ip, fault.port)]
    dev = shlex.quote(device)
    remove = [
        ["tc", "filter", "del", "dev", device, "parent", INGRESS, "prio", prio],
        ["sh", "-c", f"tc filter show dev {dev} parent {INGRESS} | grep -q . "
                     f"|| tc qdisc del dev {dev} handle {INGRESS} ingress"],
        ["ip", "link", "del", ifb],
    ]
    check = [
        f"if ip link show {ifb} >/dev/null 2>&1; then "
        f"echo 'device {ifb} still present' >&2; exit 1; fi",
        f"if tc filter show dev {dev} parent {INGRESS} 2>/dev/null | grep -q ' pref {prio} '; "
        f"then echo 'ingress filters pref {prio} still present' >&2; exit 1; fi",
    ]
    return NetPlan("", apply, remove, check)


def tc_plan(fault: NetFault, chain: str, device: str, peer_ip: str | None = None) -> NetPlan:
    """rate_limit: tc on the service's interface, egress and/or ingress, scoped by u32."""
    assert fault.rate is not None
    handle = tc_handle(chain)
    parts = []
    if fault.flow in ("egress", "both"):
        parts.append(_egress(fault, handle, device, peer_ip))
    if fault.flow in ("ingress", "both"):
        parts.append(_ingress(fault, chain, handle, device, peer_ip))
    return NetPlan(chain, [cmd for p in parts for cmd in p.apply],
                   [cmd for p in parts for cmd in p.remove],
                   [test for p in parts for test in p.check_gone])


def plan(fault: NetFault, chain: str, peer_ip: str | None, device: str = "eth0") -> NetPlan:
    if fault.net == "rate_limit":
        return tc_plan(fault, chain, device, peer_ip)
    return iptables_plan(fault, chain, peer_ip)


def device_for_ip(ip_addr_output: str, ip: str) -> str | None:
    """From `ip -o -4 addr show`, the interface holding ip (the run network's)."""
    for line in ip_addr_output.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "inet" and parts[3].split("/")[0] == ip:
            return parts[1].split("@")[0]
    return None


def kernel_hint(fault: NetFault, error: str) -> str:
    """What the host's kernel lacks, when a command's error says so (else "")."""
    if "ifb" in error and fault.net == "rate_limit" and fault.flow != "egress":
        return ("\nan ingress rate_limit needs the host kernel's ifb module (`modprobe ifb` "
                "on the Docker host), or use direction: egress on the peer instead")
    if "Unknown" in error and ("qdisc" in error or "filter" in error):
        return ("\nthe host kernel lacks a traffic-control module this rate_limit needs "
                "(htb, tbf, u32 or mirred)")
    if "iptables" in error and ("No chain" in error or "Couldn't load" in error):
        return "\nthe host kernel lacks an iptables module this fault needs"
    return ""
