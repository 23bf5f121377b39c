"""From packets to answers: SYN/FIN/RST per second per hop, and who sent the resets.

A hop is a pair of endpoints named after services (the load generator on the host is
"client", the Toxiproxy container is "proxy"). A hop may be seen from both of its
ends' captures; each hop is counted from one vantage point only (the first capture,
in the order captures were asked for, that saw it), so a packet is never counted twice.
SYN counts connection attempts (SYN without ACK); FIN and RST count every packet carrying
the flag. Traffic from the host to a service that is not the load target (health checks,
probes) also shows as "client". `connection()` picks the packets of one TCP connection
(its 4-tuple), for a failed request whose client port the load generator recorded.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.capture.pcap import ACK, Packet, PcapError, ReadStats, read_packets

CLIENT = "client"
PROXY = "proxy"
MAX_RST_LISTED = 200


@dataclass(frozen=True)
class Rst:
    t: float  # seconds since the first phase started
    sender: str
    receiver: str
    sport: int
    dport: int


@dataclass
class CaptureAnalysis:
    """Everything derived from a run's pcaps (kept whole in memory for the assertions)."""

    hops: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, dict[int, list[int]]] = field(default_factory=dict)  # hop -> s -> syn,fin,rst
    rsts: list[Rst] = field(default_factory=list)
    packets: dict[str, list[tuple[float, Packet]]] = field(default_factory=dict)  # hop -> (t, p)
    files: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    # (client port, server ip, server port) -> (hop, t, packet), built on first use
    _by_conn: dict[tuple[int, str, int], list[tuple[str, float, Packet]]] | None = field(
        default=None, repr=False, compare=False)

    def connection(self, local_ip: str | None, local_port: int, remote_ip: str,
                   remote_port: int) -> list[tuple[str, float, Packet]]:
        """The kept packets (SYN/FIN/RST or data; pure ACKs are not kept) of one TCP
        connection, both directions, in time order, each with its hop. local_ip None:
        any client address (the kernel no longer reports it for a refused connect)."""
        if self._by_conn is None:
            index: dict[tuple[int, str, int], list[tuple[str, float, Packet]]] = defaultdict(list)
            for hop, packets in self.packets.items():
                for t, p in packets:
                    index[(p.sport, p.dst, p.dport)].append((hop, t, p))  # p sent by the client
                    if (p.dport, p.src, p.sport) != (p.sport, p.dst, p.dport):
                        index[(p.dport, p.src, p.sport)].append((hop, t, p))  # sent to it
            self._by_conn = dict(index)
        found = self._by_conn.get((local_port, remote_ip, remote_port), [])
        if local_ip is not None:
            found = [item for item in found
                     if (item[2].src, item[2].sport) == (local_ip, local_port)
                     or (item[2].dst, item[2].dport) == (local_ip, local_port)]
        return sorted(found, key=lambda item: item[1])

    def rst_count(self, sender: str, receiver: str | None, start: float, end: float) -> int:
        return sum(1 for r in self.rsts if r.sender == sender and start <= r.t < end
                   and (receiver is None or r.receiver == receiver))

    def to_dict(self) -> dict[str, Any]:
        rows = [{"t": s, "hop": hop, "syn": v[0], "fin": v[1], "rst": v[2]}
                for hop, per in self.seconds.items() for s, v in sorted(per.items())]
        return {
            "hops": list(self.hops.values()),
            "seconds": rows,
            "rsts": [{"t": round(r.t, 3), "from": r.sender, "to": r.receiver, "sport": r.sport,
                      "dport": r.dport} for r in self.rsts[:MAX_RST_LISTED]],
            "rsts_total": len(self.rsts),
            "files": self.files,
            "notes": self.notes,
            "findings": self.findings,
        }


def tier(name: str, target: str) -> tuple[int, str]:
    """client first, then the load target, the proxy, then the rest: hops read left to right."""
    order = {CLIENT: 0, target: 1, PROXY: 2}
    return order.get(name, 3), name


def hop_name(a: str, b: str, target: str) -> str:
    first, second = sorted((a, b), key=lambda n: tier(n, target))
    return f"{first}↔{second}"


def analyse(packets_by_vantage: dict[str, Iterable[Packet]], names: dict[str, str], t0: float,
            target: str, client_resets: int | None = None) -> CaptureAnalysis:
    """Count per hop from one vantage each; attribute every RST to its sender."""
    result = CaptureAnalysis()
    owner: dict[str, str] = {}  # hop -> the vantage it is counted from
    counters: dict[str, Counter[str]] = defaultdict(Counter)
    for vantage, packets in packets_by_vantage.items():
        for p in packets:
            src, dst = names.get(p.src, p.src), names.get(p.dst, p.dst)
            hop = hop_name(src, dst, target)
            if owner.setdefault(hop, vantage) != vantage:
                continue
            t = p.ts - t0
            second = math.floor(t)
            row = result.seconds.setdefault(hop, {}).setdefault(second, [0, 0, 0])
            keep = p.syn  # SYN-ACKs too: a connection's evidence shows its handshake
            if p.syn and not p.flags & ACK:
                row[0] += 1
                counters[hop]["syn"] += 1
                keep = True
            if p.fin:
                row[1] += 1
                counters[hop]["fin"] += 1
                keep = True
            if p.rst:
                row[2] += 1
                counters[hop]["rst"] += 1
                counters[hop]["rst_by:" + src] += 1
                result.rsts.append(Rst(t, src, dst, p.sport, p.dport))
                keep = True
            counters[hop]["packets"] += 1
            if keep or p.payload:
                result.packets.setdefault(hop, []).append((t, p))
    for hop, count in sorted(counters.items(), key=lambda kv: [tier(n, target)
                                                              for n in kv[0].split("↔")]):
        a, b = hop.split("↔")
        result.hops[hop] = {
            "hop": hop, "a": a, "b": b, "vantage": owner[hop], "packets": count["packets"],
            "syn": count["syn"], "fin": count["fin"], "rst": count["rst"],
            "rst_by": {k[len("rst_by:"):]: v for k, v in count.items() if k.startswith("rst_by:")},
        }
    result.rsts.sort(key=lambda r: r.t)
    result.findings = findings(result, target, client_resets)
    return result


def findings(analysis: CaptureAnalysis, target: str, client_resets: int | None) -> list[str]:
    """Plain sentences answering: which hop sent the resets the client saw?"""
    to_client = [r for r in analysis.rsts if r.receiver == CLIENT]
    others = [r for r in analysis.rsts if r.receiver != CLIENT and r.sender != CLIENT]
    out: list[str] = []
    if to_client:
        by = Counter(r.sender for r in to_client)
        senders = ", ".join(f"{n} sent {c}" for n, c in by.most_common())
        out.append(f"Clients received {len(to_client)} TCP RST(s): {senders} "
                   f"(hop {hop_name(CLIENT, by.most_common(1)[0][0], target)}).")
        seconds = {math.floor(r.t) for r in to_client}
        near = [r for r in others if {math.floor(r.t) - 1, math.floor(r.t),
                                      math.floor(r.t) + 1} & seconds]
        if near:
            upstream = Counter(f"{r.sender}→{r.receiver}" for r in near)
            out.append("In the same seconds, upstream: " + ", ".join(
                f"{k} {v} RST(s)" for k, v in upstream.most_common())
                + f": the {target} passed resets on instead of answering with an error.")
    elif client_resets:
        out.append(f"Clients counted {client_resets} reset(s) but the capture holds no RST sent "
                   "to a client: the connection was closed (FIN) before a response, or the "
                   "capture did not cover that moment (see the notes).")
    else:
        out.append("No TCP RST reached a client.")
    if others and not to_client:
        upstream = Counter(f"{r.sender}→{r.receiver}" for r in others)
        out.append("Resets seen elsewhere: " + ", ".join(
            f"{k} {v}" for k, v in upstream.most_common())
            + f"; none crossed the client↔{target} hop: the {target} absorbed them.")
    from_client = [r for r in analysis.rsts if r.sender == CLIENT]
    if from_client:
        out.append(f"The client itself sent {len(from_client)} RST(s) (it aborts connections "
                   "after its own timeouts; these are not failures of the system under test).")
    return out


def load_capture(folder: Path, vantages: list[str]) -> tuple[dict[str, list[Packet]], list[dict[str, Any]]]:
    """Every pcap under folder/<service>/, packets sorted by time; and a list of the files."""
    packets: dict[str, list[Packet]] = {}
    files: list[dict[str, Any]] = []
    for vantage in vantages:
        found: list[Packet] = []
        for path in sorted((folder / vantage).glob("*.pcap*")):
            stats = ReadStats()
            try:
                found.extend(read_packets(path, stats))
            except PcapError as exc:
                files.append({"file": str(path.relative_to(folder.parent)), "error": str(exc)})
                continue
            files.append({"file": str(path.relative_to(folder.parent)), "bytes": path.stat().st_size,
                          "packets": stats.packets, "tcp": stats.tcp,
                          "truncated": stats.truncated_file})
        found.sort(key=lambda p: p.ts)
        packets[vantage] = found
    return packets, files
