"""The pcap reader, per-hop SYN/FIN/RST counts and RST attribution, on hand-built files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.capture import sockets
from chaos.capture.analysis import analyse, hop_name, load_capture
from chaos.capture.pcap import (
    ACK,
    FIN,
    LINK_ETHERNET,
    LINK_RAW,
    LINK_SLL,
    LINK_SLL2,
    PSH,
    RST,
    SYN,
    Packet,
    PcapError,
    ReadStats,
    parse_frame,
    read_packets,
    tcp_frame,
    write_pcap,
)
from chaos.scenario.model import Assertion
from chaos.scenario.units import parse_comparison
from chaos.verdict.evaluate import Evidence, _rst_from
from chaos.verdict.result import PhaseWindow

CLIENT, GATEWAY, PROXY, BACKEND = "172.30.0.1", "172.30.0.5", "172.30.0.2", "172.30.0.4"
NAMES = {CLIENT: "client", GATEWAY: "gateway", PROXY: "proxy", BACKEND: "backend"}
T0 = 1_700_000_000.0


def conversation(link: int = LINK_ETHERNET) -> list[tuple[float, bytes]]:
    """client->gateway ok; gateway->proxy reset by the proxy; gateway answers the client."""
    f = tcp_frame
    return [
        (T0 + 0.10, f(CLIENT, GATEWAY, 40000, 8000, SYN, link=link)),
        (T0 + 0.11, f(GATEWAY, CLIENT, 8000, 40000, SYN | ACK, link=link)),
        (T0 + 0.12, f(CLIENT, GATEWAY, 40000, 8000, PSH | ACK, b"GET / HTTP/1.1\r\n\r\n", link=link)),
        (T0 + 0.13, f(GATEWAY, PROXY, 50000, 9001, SYN, link=link)),
        (T0 + 0.14, f(PROXY, GATEWAY, 9001, 50000, RST | ACK, link=link)),
        (T0 + 1.20, f(PROXY, GATEWAY, 9001, 50002, RST, link=link)),
        (T0 + 1.30, f(GATEWAY, CLIENT, 8000, 40000, FIN | ACK, link=link)),
        (T0 + 1.31, f(CLIENT, GATEWAY, 40000, 8000, FIN | ACK, link=link)),
    ]


@pytest.mark.parametrize("link", [LINK_ETHERNET, LINK_SLL, LINK_SLL2, LINK_RAW])
def test_reader_parses_every_link_type(tmp_path: Path, link: int) -> None:
    path = tmp_path / "x.pcap"
    write_pcap(path, conversation(link), link)
    stats = ReadStats()
    packets = list(read_packets(path, stats))
    assert stats.packets == stats.tcp == 8 and stats.skipped == 0
    first, payload = packets[0], packets[2]
    assert (first.src, first.dst, first.sport, first.dport) == (CLIENT, GATEWAY, 40000, 8000)
    assert first.syn and not first.rst and first.flag_text() == "S"
    assert payload.payload == len(b"GET / HTTP/1.1\r\n\r\n")
    assert packets[4].rst and packets[4].flag_text() == "R."
    assert abs(packets[1].ts - (T0 + 0.11)) < 1e-6


def test_reader_refuses_other_files_and_tolerates_a_cut_record(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a pcap at all, sorry")
    with pytest.raises(PcapError):
        list(read_packets(bad))
    cut = tmp_path / "cut.pcap"
    write_pcap(cut, conversation())
    cut.write_bytes(cut.read_bytes()[:-10])  # tcpdump stopped mid-write
    stats = ReadStats()
    assert len(list(read_packets(cut, stats))) == 7 and stats.truncated_file


def test_counts_per_second_per_hop_and_rst_attribution() -> None:
    from chaos.capture.pcap import parse_frame

    packets = [parse_frame(LINK_ETHERNET, ts, frame) for ts, frame in conversation()]
    result = analyse({"gateway": [p for p in packets if p]}, NAMES, T0, "gateway", client_resets=0)
    client_hop, proxy_hop = hop_name("client", "gateway", "gateway"), hop_name("gateway", "proxy", "gateway")
    assert client_hop == "client↔gateway" and proxy_hop == "gateway↔proxy"
    assert result.hops[client_hop]["syn"] == 1  # the SYN-ACK is not a connection attempt
    assert result.hops[client_hop]["fin"] == 2 and result.hops[client_hop]["rst"] == 0
    assert result.hops[proxy_hop]["rst"] == 2 and result.hops[proxy_hop]["rst_by"] == {"proxy": 2}
    assert result.seconds[proxy_hop] == {0: [1, 0, 1], 1: [0, 0, 1]}
    assert result.rst_count("proxy", None, 0, 1) == 1
    assert result.rst_count("proxy", "gateway", 0, 10) == 2
    assert result.rst_count("gateway", None, 0, 10) == 0
    assert "No TCP RST reached a client." in result.findings
    assert any("the gateway absorbed them" in line for line in result.findings)
    data = result.to_dict()
    json.dumps(data)  # plain data for result.json
    assert data["rsts_total"] == 2


def test_resets_passed_on_to_the_client_are_blamed_on_the_gateway() -> None:
    from chaos.capture.pcap import parse_frame

    frames = [*conversation(), (T0 + 1.25, tcp_frame(GATEWAY, CLIENT, 8000, 40001, RST | ACK))]
    packets = [p for ts, fr in frames if (p := parse_frame(LINK_ETHERNET, ts, fr))]
    result = analyse({"gateway": packets}, NAMES, T0, "gateway", client_resets=1)
    assert result.hops["client↔gateway"]["rst_by"] == {"gateway": 1}
    assert result.findings[0].startswith("Clients received 1 TCP RST(s): gateway sent 1")
    assert "passed resets on" in result.findings[1] and "proxy→gateway" in result.findings[1]


def test_each_hop_is_counted_from_one_vantage_only() -> None:
    from chaos.capture.pcap import parse_frame

    rst = parse_frame(LINK_ETHERNET, T0 + 2, tcp_frame(PROXY, BACKEND, 50010, 8080, RST))
    assert rst is not None
    result = analyse({"backend": [rst], "toxiproxy": [rst]}, NAMES, T0, "gateway")
    assert result.hops["proxy↔backend"]["rst"] == 1
    assert result.hops["proxy↔backend"]["vantage"] == "backend"
    assert len(result.rsts) == 1


def test_load_capture_reads_ring_buffer_files(tmp_path: Path) -> None:
    folder = tmp_path / "capture"
    (folder / "gateway").mkdir(parents=True)
    frames = conversation()
    write_pcap(folder / "gateway" / "gateway.pcap0", frames[4:])
    write_pcap(folder / "gateway" / "gateway.pcap1", frames[:4])
    packets, files = load_capture(folder, ["gateway"])
    assert [round(p.ts - T0, 2) for p in packets["gateway"]][:2] == [0.1, 0.11]  # time order
    assert {f["file"] for f in files} == {"capture/gateway/gateway.pcap0", "capture/gateway/gateway.pcap1"}


def test_rst_from_assertion_counts_in_the_phase_and_is_inconclusive_without_capture() -> None:
    from chaos.capture.pcap import parse_frame

    packets = [p for ts, fr in conversation() if (p := parse_frame(LINK_ETHERNET, ts, fr))]
    evidence = Evidence([], [PhaseWindow("fault", 0.0, 1.0)], [])
    bound = parse_comparison(0)
    assert _rst_from("fault", "proxy", bound, evidence).status == "inconclusive"
    evidence.capture = analyse({"gateway": packets}, NAMES, T0, "gateway")
    failed = _rst_from("fault", "proxy", bound, evidence)
    assert failed.status == "fail" and failed.observed == "1" and failed.kind == "rst_from.proxy"
    assert _rst_from("fault", "gateway->client", bound, evidence).status == "pass"
    assert Assertion.model_validate({"phase": "fault", "rst_from": {"gateway": 0}}).rst_from


def test_ss_lines_become_rows(tmp_path: Path) -> None:
    rows = sockets.parse_ss_lines(f"{T0 + 1.5} ESTAB=3 TIME-WAIT=2 LISTEN=1\ngarbage\n", "gateway", T0)
    assert rows == [{"t": 1.5, "service": "gateway", "states": {"ESTAB": 3, "TIME-WAIT": 2, "LISTEN": 1}}]
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "ss.txt").write_text(f"{T0} ESTAB=1\n")
    assert sockets.collect(tmp_path, ["gateway"], T0)[0]["states"] == {"ESTAB": 1}
    assert (tmp_path / "sockets.ndjson").read_text().count("\n") == 1


def test_limits_hit_are_noted_and_evidence_builds_without_docker(tmp_path: Path) -> None:
    from chaos.capture.evidence import build, limit_notes
    from chaos.capture.sidecar import RING_FILES, Captured, Limits, start_script

    limits = Limits(max_mb=4, max_seconds=30, ss_interval=1)
    script = start_script("gateway", limits)
    assert f"-C 1 -W {RING_FILES}" in script and "sleep 30;" in script and "ss -tanH" in script
    folder = tmp_path / "capture"
    (folder / "gateway").mkdir(parents=True)
    write_pcap(folder / "gateway" / "gateway.pcap0", conversation())
    captured = Captured(folder, ["gateway"], time_limited=["gateway"])
    files = [{"file": f"capture/gateway/gateway.pcap{i}", "bytes": 1_000_000} for i in range(RING_FILES)]
    notes = limit_notes(captured, limits, files)
    assert any("time limit" in n for n in notes) and any("ring buffer filled" in n for n in notes)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "gateway.log").write_text(
        "2023-11-14T22:13:21.250000000Z gateway GET /x 502 upstream reset\n")
    (tmp_path / "requests.ndjson").write_text(json.dumps(
        {"t": T0 + 1.1, "phase": "fault", "name": "x", "status": 502, "latency_ms": 100,
         "bytes": 10, "outcome": "graceful_error", "detail": "502"}) + "\n")
    windows = [PhaseWindow("fault", 0.0, 2.0)]
    evidence, found = build(tmp_path, T0, windows, [], [{"t": 1, "total": 1, "graceful_error": 1}],
                            "gateway", NAMES, captured, limits, 0)
    assert found is not None and evidence["capture"]["hops"]
    assert evidence["capture"]["notes"][0].startswith("gateway: the capture stopped")
    kinds = {e["kind"] for e in evidence["events"]}
    assert {"phase", "outcome", "rst", "log"} <= kinds
    sample = evidence["samples"][0]
    assert sample["outcome"] == "graceful_error" and "502 upstream reset" in sample["gateway_logs"][0]
    assert any("gateway↔proxy" in p and "[R" in p for p in sample["packets"])
    json.dumps(evidence)


def several_connections() -> list[Packet]:
    """Three client connections to the gateway in the same second, each reset by it, and
    a proxy reset upstream; plus a refused connect (SYN, RST) on a fourth port."""
    f = tcp_frame
    frames = []
    for i, port in enumerate((40001, 40002, 40003)):
        at = T0 + 3.10 + i * 0.01
        frames += [
            (at, f(CLIENT, GATEWAY, port, 8000, SYN)),
            (at + 0.001, f(GATEWAY, CLIENT, 8000, port, SYN | ACK)),
            (at + 0.002, f(CLIENT, GATEWAY, port, 8000, ACK)),  # a pure ACK: not kept
            (at + 0.003, f(CLIENT, GATEWAY, port, 8000, PSH | ACK, b"GET /%d HTTP/1.1\r\n\r\n" % i)),
            (at + 0.200, f(GATEWAY, CLIENT, 8000, port, RST | ACK)),
        ]
    frames += [(T0 + 3.15, f(PROXY, GATEWAY, 9001, 50000, RST)),
               (T0 + 3.16, f(CLIENT, GATEWAY, 40009, 8000, SYN)),
               (T0 + 3.161, f(GATEWAY, CLIENT, 8000, 40009, RST | ACK))]
    packets = [parse_frame(LINK_ETHERNET, ts, frame) for ts, frame in sorted(frames)]
    return [p for p in packets if p is not None]


def record(port: int | None, start: float, latency_ms: float, outcome: str = "reset",
           local: str | None = CLIENT) -> dict[str, object]:
    row: dict[str, object] = {"t": T0 + start, "t_rel": start, "phase": "fault", "name": "x",
                              "status": 0, "latency_ms": latency_ms, "outcome": outcome,
                              "detail": outcome}
    if port is not None:
        row["conn"] = [local, port, GATEWAY, 8000]
    return row


def test_a_sample_holds_the_packets_of_its_own_connection_only() -> None:
    from chaos.capture.timeline import samples

    capture = analyse({"gateway": several_connections()}, NAMES, T0, "gateway")
    assert [round(t, 3) for _, t, _ in capture.connection(CLIENT, 40002, GATEWAY, 8000)] == [
        3.11, 3.111, 3.113, 3.31]  # SYN, SYN-ACK, request, RST; not the pure ACK
    assert capture.connection("172.30.0.99", 40002, GATEWAY, 8000) == []
    # all three connections' requests ran in the same second; each sample gets its own
    got = samples([record(40001, 3.10, 202.0), record(40002, 3.11, 202.0, "read_timeout"),
                   record(40003, 3.12, 202.0, "closed")], {}, T0, "gateway", capture)
    assert [s["match"] for s in got] == ["connection"] * 3
    for sample, port in zip(got, (40001, 40002, 40003), strict=True):
        assert sample["connection"] == {"local": f"{CLIENT}:{port}", "remote": f"{GATEWAY}:8000",
                                        "client_port": port}
        assert len(sample["packets"]) == 4, sample["packets"]
        assert all(f":{port} " in line for line in sample["packets"]), sample["packets"]
        assert sample["packets"][-1].endswith(f"{GATEWAY}:8000 → {CLIENT}:{port} [R.]")
        assert any("[P.] 19 B" in line for line in sample["packets"])
        # the other connections' resets and the upstream one are listed apart, by time
        assert any("RST proxy:9001 → gateway:50000" in line for line in sample["nearby_rsts"])
        assert not any(f":{port}" in line for line in sample["nearby_rsts"])
        assert "exactly this request's connection" in sample["match_note"]


def test_a_refused_connect_matches_by_port_and_unknown_ports_fall_back_to_time() -> None:
    from chaos.capture.timeline import samples

    capture = analyse({"gateway": several_connections()}, NAMES, T0, "gateway")
    got = samples([record(40009, 3.159, 3.0, "refused", local=None), record(None, 3.10, 202.0),
                   record(40077, 3.40, 5.0, "closed")], {}, T0, "gateway", capture)
    by_outcome = {s["outcome"]: s for s in got}
    refused, by_time, absent = by_outcome["refused"], by_outcome["reset"], by_outcome["closed"]
    assert refused["match"] == "connection" and refused["connection"]["local"] == "*:40009"
    assert [line.rsplit("[", 1)[1] for line in refused["packets"]] == ["S]", "R.]"]
    # no client port: every hop's RSTs in the window, other connections' too; said so
    assert by_time["match"] == "time window" and by_time["connection"] is None
    assert {p.split(" → ")[1].split(" ")[0] for p in by_time["packets"] if "[R" in p} >= {
        f"{CLIENT}:40001", f"{CLIENT}:40002", f"{CLIENT}:40003", "172.30.0.5:50000"}
    assert "matched by time only" in by_time["match_note"]
    # a known port the capture never saw: still the connection's (empty), with the reason
    assert absent["match"] == "connection" and absent["packets"] == []
    assert "no packet of this request's connection" in absent["match_note"]
    # without a capture: the connection is still shown, nothing is matched
    bare = samples([record(40001, 3.10, 202.0)], {}, T0, "gateway", None)[0]
    assert bare["match"] is None and bare["packets"] == [] and bare["connection"]["client_port"] == 40001


def test_a_long_connection_keeps_its_last_packets() -> None:
    from chaos.capture.timeline import MAX_PACKETS, samples

    f = tcp_frame
    frames = [(T0 + 1.0, f(CLIENT, GATEWAY, 40100, 8000, SYN))]
    frames += [(T0 + 1.01 + i * 0.01, f(GATEWAY, CLIENT, 8000, 40100, PSH | ACK, b"data: x\n\n"))
               for i in range(40)]
    frames += [(T0 + 1.5, f(GATEWAY, CLIENT, 8000, 40100, RST | ACK))]
    packets = [p for ts, fr in frames if (p := parse_frame(LINK_ETHERNET, ts, fr))]
    capture = analyse({"gateway": packets}, NAMES, T0, "gateway")
    sample = samples([record(40100, 1.0, 500.0, "truncated")], {}, T0, "gateway", capture)[0]
    lines = sample["packets"]
    assert len(lines) == MAX_PACKETS and lines[0].endswith("[S]") and lines[-1].endswith("[R.]")
    assert any("more packets of this connection" in line for line in lines)
