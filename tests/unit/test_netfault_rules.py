"""Network faults without Docker: the rules generated, and what the scenario language accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chaos.errors import ScenarioError
from chaos.faults.netns import (
    CHAIN_PREFIX,
    device_for_ip,
    ifb_name,
    iptables_plan,
    new_chain,
    plan,
    tbf_params,
    tc_handle,
    u32_matches,
)
from chaos.scenario.loader import load_scenario
from chaos.scenario.model import NetFault, parse_rate

CHAIN = "CHAOS-1a2b3c4d"


def fault(**kwargs: object) -> NetFault:
    return NetFault.model_validate({"service": "backend", **kwargs})


def test_firewall_reset_rejects_packets_of_open_connections_with_a_rst():
    rules = iptables_plan(fault(net="firewall_reset", port=8080, probability=0.5), CHAIN, None)
    assert rules.apply == [
        ["iptables", "-w", "-N", f"{CHAIN}-in"],
        ["iptables", "-w", "-A", f"{CHAIN}-in", "!", "-i", "lo", "-p", "tcp", "!", "--syn",
         "-m", "multiport", "--ports", "8080", "-m", "statistic", "--mode", "random",
         "--probability", "0.5", "-j", "REJECT", "--reject-with", "tcp-reset"],
        ["iptables", "-w", "-I", "INPUT", "1", "-j", f"{CHAIN}-in"],
    ]
    assert rules.remove == [
        ["iptables", "-w", "-D", "INPUT", "-j", f"{CHAIN}-in"],
        ["iptables", "-w", "-F", f"{CHAIN}-in"],
        ["iptables", "-w", "-X", f"{CHAIN}-in"],
    ]


def test_blackhole_egress_to_a_peer_drops_everything_including_syn():
    rules = iptables_plan(fault(net="blackhole", direction="egress", peer="db"), CHAIN, "10.0.0.7")
    rule = rules.apply[1]
    assert rule[:4] == ["iptables", "-w", "-A", f"{CHAIN}-out"]
    assert rule[7:9] == ["-d", "10.0.0.7"] and "--syn" not in rule
    assert rule[-2:] == ["-j", "DROP"] and "statistic" not in rule
    assert ["iptables", "-w", "-I", "OUTPUT", "1", "-j", f"{CHAIN}-out"] in rules.apply


def test_both_directions_use_one_chain_per_hook_and_remove_both():
    rules = iptables_plan(fault(net="packet_loss", direction="both", probability=0.05,
                                peer="gateway"), CHAIN, "10.0.0.3")
    chains = {cmd[3] for cmd in rules.apply if cmd[2] == "-N"}
    assert chains == {f"{CHAIN}-in", f"{CHAIN}-out"}
    assert rules.apply[1][7:9] == ["-s", "10.0.0.3"]
    assert rules.apply[4][7:9] == ["-d", "10.0.0.3"]
    assert "0.05" in rules.apply[1]
    removed = {cmd[-1] for cmd in rules.remove if cmd[2] == "-X"}
    assert removed == chains


def test_probability_one_adds_no_statistic_match():
    rules = iptables_plan(fault(net="packet_loss", probability=1), CHAIN, None)
    assert "statistic" not in rules.apply[1]


def test_scripts_stop_on_error_and_removal_is_repeatable_and_verified():
    rules = iptables_plan(fault(net="blackhole"), CHAIN, None)
    assert rules.apply_script().startswith("set -e\n")
    script = rules.remove_script()
    assert script.count("|| true") == len(rules.remove)
    assert f"grep -q -- {CHAIN}" in script and "exit 1" in script


def test_rate_limit_is_a_tbf_root_qdisc_with_its_own_handle():
    rules = plan(fault(net="rate_limit", rate="8mbit"), CHAIN, None, "eth0")
    handle = tc_handle(CHAIN)
    burst, limit = tbf_params(8_000_000)
    assert rules.apply == [["tc", "qdisc", "add", "dev", "eth0", "root", "handle", handle, "tbf",
                            "rate", "8000000", "burst", str(burst), "limit", str(limit)]]
    assert rules.remove == [["tc", "qdisc", "del", "dev", "eth0", "root", "handle", handle]]
    assert f"' {handle} '" in rules.remove_script()


TCP_IHL5 = ["match", "ip", "ihl", "5", "0xf", "match", "ip", "protocol", "6", "0xff"]


def test_peer_scoped_rate_limit_is_an_htb_with_an_unshaped_default_and_a_u32_filter():
    rules = plan(fault(net="rate_limit", rate="8mbit", peer="db"), CHAIN, "10.0.0.7", "eth0")
    h = tc_handle(CHAIN)
    burst, _ = tbf_params(8_000_000)
    assert rules.apply == [
        ["tc", "qdisc", "add", "dev", "eth0", "root", "handle", h, "htb", "default", "1"],
        ["tc", "class", "add", "dev", "eth0", "parent", h, "classid", f"{h}1", "htb",
         "rate", "10gbit", "quantum", "60000"],
        ["tc", "class", "add", "dev", "eth0", "parent", h, "classid", f"{h}2", "htb",
         "rate", "8000000", "ceil", "8000000", "burst", str(burst), "cburst", str(burst),
         "quantum", "60000"],
        ["tc", "filter", "add", "dev", "eth0", "parent", h, "protocol", "ip", "prio", "1", "u32",
         *TCP_IHL5, "match", "ip", "dst", "10.0.0.7/32", "flowid", f"{h}2"],
    ]
    # the whole htb (classes and filters with it) goes by its handle; nothing else is touched
    assert rules.remove == [["tc", "qdisc", "del", "dev", "eth0", "root", "handle", h]]
    assert f"' {h} '" in rules.remove_script()


def test_port_scoped_rate_limit_matches_source_or_destination_port():
    """Like iptables multiport --ports: two filters, one per end."""
    rules = plan(fault(net="rate_limit", rate="1mbit", port=8080), CHAIN, None, "eth1")
    filters = [cmd for cmd in rules.apply if cmd[:3] == ["tc", "filter", "add"]]
    assert [f[f.index("u32") + 1:f.index("flowid")] for f in filters] == [
        [*TCP_IHL5, "match", "ip", "sport", "8080", "0xffff"],
        [*TCP_IHL5, "match", "ip", "dport", "8080", "0xffff"],
    ]
    assert all(f[4] == "eth1" and f[-1] == f"{tc_handle(CHAIN)}2" for f in filters)
    assert "dst" not in filters[0] and "src" not in filters[0]


def test_u32_matches_per_side():
    assert u32_matches("out", None, None) == [["match", "u32", "0", "0"]]
    assert u32_matches("in", "10.0.0.3", None) == [[*TCP_IHL5, "match", "ip", "src", "10.0.0.3/32"]]
    assert u32_matches("out", "10.0.0.3", 80) == [
        [*TCP_IHL5, "match", "ip", "dst", "10.0.0.3/32", "match", "ip", end, "80", "0xffff"]
        for end in ("sport", "dport")]


def test_ingress_rate_limit_redirects_matching_packets_to_an_ifb_of_its_own():
    rules = plan(fault(net="rate_limit", rate="4mbit", direction="ingress", peer="gateway",
                       port=8080), CHAIN, "10.0.0.3", "eth0")
    h, ifb = tc_handle(CHAIN), ifb_name(CHAIN)
    prio = str(int(h.rstrip(":"), 16))
    burst, limit = tbf_params(4_000_000)
    redirect = ["action", "mirred", "egress", "redirect", "dev", ifb]
    assert ifb == "cx1a2b3c4d" and len(ifb) <= 15
    assert rules.apply == [
        ["ip", "link", "add", ifb, "type", "ifb"],
        ["ip", "link", "set", ifb, "up"],
        ["tc", "qdisc", "add", "dev", ifb, "root", "handle", h, "tbf", "rate", "4000000",
         "burst", str(burst), "limit", str(limit)],
        ["tc", "qdisc", "add", "dev", "eth0", "handle", "ffff:", "ingress"],
        *[["tc", "filter", "add", "dev", "eth0", "parent", "ffff:", "protocol", "ip", "prio", prio,
           "u32", *TCP_IHL5, "match", "ip", "src", "10.0.0.3/32", "match", "ip", end, "8080",
           "0xffff", *redirect] for end in ("sport", "dport")],
    ]
    # our filters (by their priority) first, the ingress qdisc only when nobody else's
    # filter is left on it, then the ifb (its tbf goes with it)
    assert rules.remove[0] == ["tc", "filter", "del", "dev", "eth0", "parent", "ffff:",
                               "prio", prio]
    assert rules.remove[1][:2] == ["sh", "-c"] and "grep -q . ||" in rules.remove[1][2]
    assert rules.remove[2] == ["ip", "link", "del", ifb]
    script = rules.remove_script()
    assert f"ip link show {ifb}" in script and f"' pref {prio} '" in script
    assert script.count("exit 1") == 2


def test_rate_limit_both_ways_caps_each_direction_and_removes_both():
    rules = plan(fault(net="rate_limit", rate="2mbit", direction="both", peer="db"), CHAIN,
                 "10.0.0.7", "eth0")
    h = tc_handle(CHAIN)
    assert rules.apply[0][5:9] == ["root", "handle", h, "htb"]  # egress first
    assert ["ip", "link", "add", ifb_name(CHAIN), "type", "ifb"] in rules.apply
    matches = [" ".join(cmd) for cmd in rules.apply if cmd[:3] == ["tc", "filter", "add"]]
    assert len(matches) == 2
    assert "match ip dst 10.0.0.7/32 flowid" in matches[0]
    assert "match ip src 10.0.0.7/32 action mirred" in matches[1]
    assert ["tc", "qdisc", "del", "dev", "eth0", "root", "handle", h] in rules.remove
    assert ["ip", "link", "del", ifb_name(CHAIN)] in rules.remove
    assert rules.remove_script().count("exit 1") == 3 and rules.chain == CHAIN


def test_unscoped_ingress_rate_limit_shapes_every_packet():
    rules = plan(fault(net="rate_limit", rate="1mbit", direction="ingress"), CHAIN, None)
    (only,) = [cmd for cmd in rules.apply if cmd[:3] == ["tc", "filter", "add"]]
    assert only[only.index("u32") + 1:only.index("action")] == ["match", "u32", "0", "0"]
    eth0_qdiscs = [cmd for cmd in rules.apply if cmd[:5] == ["tc", "qdisc", "add", "dev", "eth0"]]
    assert eth0_qdiscs == [["tc", "qdisc", "add", "dev", "eth0", "handle", "ffff:", "ingress"]]


def test_tbf_params_and_handles_stay_in_range():
    for bits in (8_000, 1_000_000, 10_000_000_000):
        burst, limit = tbf_params(bits)
        assert burst >= 16 * 1024 and limit > burst
    for _ in range(50):
        chain = new_chain()
        assert chain.startswith(CHAIN_PREFIX) and len(f"{chain}-out") <= 28
        major = int(tc_handle(chain).rstrip(":"), 16)
        assert 1 <= major <= 0xFFF0


@pytest.mark.parametrize("text, bits", [("1mbit", 1_000_000), ("500kbit", 500_000),
                                        ("2mbps", 16_000_000), ("1.5 gbit", 1_500_000_000)])
def test_parse_rate(text, bits):
    assert parse_rate(text) == bits


@pytest.mark.parametrize("text", ["1mb", "fast", "", "1bit", "100gbit", "-1mbit"])
def test_parse_rate_rejects(text):
    with pytest.raises(ValueError):
        parse_rate(text)


def test_device_for_ip():
    out = ("1: lo    inet 127.0.0.1/8 scope host lo\n"
           "42: eth0@if43    inet 172.21.0.2/16 brd 172.21.255.255 scope global eth0\n")
    assert device_for_ip(out, "172.21.0.2") == "eth0"
    assert device_for_ip(out, "10.9.9.9") is None


def test_flow_defaults_and_description():
    assert fault(net="blackhole").flow == "ingress"
    assert fault(net="rate_limit", rate="1mbit").flow == "egress"
    text = fault(net="firewall_reset", port=8000, probability=0.3, peer="gateway").describe()
    assert text == "firewall_reset ingress on backend port 8000 peer gateway probability=0.3"


# -- the scenario language ------------------------------------------------------------
BASE = {
    "name": "net",
    "services": {"backend": {"build": "docker/backend", "port": 8080},
                 "gateway": {"build": "docker/gateway", "port": 8000}},
    "load": {"target": "gateway", "requests": [{"name": "x", "path": "/"}]},
}


def load_with(tmp_path: Path, net_fault: dict) -> object:
    doc = {**BASE, "phases": [{"name": "fault", "duration": "5s", "faults": [net_fault]}]}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_scenario(path)


def test_a_net_fault_loads_as_its_own_family(tmp_path):
    scenario = load_with(tmp_path, {"service": "backend", "net": "firewall_reset", "port": 8080,
                                    "direction": "ingress", "peer": "gateway",
                                    "probability": 0.5})
    loaded = scenario.phases[0].faults[0]  # type: ignore[attr-defined]
    assert isinstance(loaded, NetFault) and loaded.peer == "gateway"


@pytest.mark.parametrize("net_fault, key, message", [
    ({"service": "db", "net": "blackhole"}, "service", "unknown service 'db'"),
    ({"service": "backend", "net": "blackhole", "peer": "db"}, "peer", "unknown service 'db'"),
    ({"service": "backend", "net": "blackhole", "peer": "backend"}, "peer", "another service"),
    ({"service": "backend", "net": "packet_loss"}, "net", "needs probability"),
    ({"service": "backend", "net": "packet_loss", "probability": 0}, "probability", "greater than 0"),
    ({"service": "backend", "net": "packet_loss", "probability": 1.5}, "probability",
     "less than or equal to 1"),
    ({"service": "backend", "net": "rate_limit"}, "net", "needs rate"),
    ({"service": "backend", "net": "rate_limit", "rate": "fast"}, "rate", "expected a rate"),
    ({"service": "backend", "net": "rate_limit", "rate": "1mbit", "probability": 0.5},
     "probability", "rate_limit takes no probability"),
    ({"service": "backend", "net": "blackhole", "rate": "1mbit"}, "rate", "takes no rate"),
    ({"service": "backend", "net": "jitter"}, "net", "Input should be"),
    ({"service": "backend", "net": "blackhole", "port": 70000}, "port", "less than or equal"),
    ({"service": "backend", "net": "blackhole", "portt": 80}, "portt", "unknown key"),
])
def test_bad_net_faults_name_the_key(tmp_path, net_fault, key, message):
    with pytest.raises(ScenarioError) as caught:
        load_with(tmp_path, net_fault)
    text = str(caught.value)
    assert f"phases[0].faults[0].{key}" in text, text
    assert message in text, text


@pytest.mark.parametrize("extra", [
    {"peer": "gateway"}, {"port": 8080}, {"peer": "gateway", "port": 8080},
    {"direction": "ingress", "peer": "gateway"}, {"direction": "both", "port": 8080},
])
def test_rate_limit_scoped_by_peer_port_and_direction_loads(tmp_path, extra):
    scenario = load_with(tmp_path, {"service": "backend", "net": "rate_limit", "rate": "1mbit",
                                    **extra})
    loaded = scenario.phases[0].faults[0]  # type: ignore[attr-defined]
    assert isinstance(loaded, NetFault)
    assert (loaded.peer, loaded.port) == (extra.get("peer"), extra.get("port"))
    assert loaded.flow == extra.get("direction", "egress")


RATE_LIMIT_TWICE = """\
name: net
services:
  backend: {build: docker/backend, port: 8080}
  gateway: {build: docker/gateway, port: 8000}
load: {target: gateway, requests: [{name: x, path: /}]}
phases:
  - name: fault
    duration: 5s
    faults:
      - {service: backend, net: rate_limit, rate: 1mbit, peer: gateway}
      - {service: gateway, net: rate_limit, rate: 1mbit}
      - {service: backend, net: rate_limit, rate: 2mbit, direction: ingress}
      - {service: backend, net: rate_limit, rate: 3mbit, direction: both, port: 8080}
      - {service: backend, net: rate_limit, rate: 1mbit, probability: 0.5}
"""


def test_rate_limit_errors_name_file_line_and_key(tmp_path):
    path = tmp_path / "s.yaml"
    text = RATE_LIMIT_TWICE
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    line = text.splitlines().index(next(x for x in text.splitlines() if "probability" in x)) + 1
    assert caught.value.render() == (
        f"{path}:{line}: phases[0].faults[4].probability: rate_limit takes no probability: "
        "it shapes every matching packet (packet_loss drops a random share)")

    text = text.replace(", probability: 0.5", "")  # now a second cap on backend's egress
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    line = text.splitlines().index(next(x for x in text.splitlines() if "3mbit" in x)) + 1
    assert caught.value.render() == (
        f"{path}:{line}: phases[0].faults[3].service: backend already has a rate_limit on "
        "egress in this phase (faults[0]); an interface holds one egress qdisc: scope one "
        "fault with peer/port, or use two phases")

    # one per service and direction: egress + ingress on backend, egress on gateway
    dropped = ("3mbit", "{service: backend, net: rate_limit, rate: 1mbit}")
    path.write_text("".join(line for line in text.splitlines(True)
                            if not any(d in line for d in dropped)))
    scenario = load_scenario(path)
    assert len(scenario.phases[0].faults) == 3


def test_toxiproxy_is_a_peer_only_when_proxies_exist(tmp_path):
    with pytest.raises(ScenarioError, match="unknown service 'toxiproxy'"):
        load_with(tmp_path, {"service": "gateway", "net": "blackhole", "peer": "toxiproxy"})


@pytest.mark.parametrize("name", ["waf-reset", "lossy-link", "firewall-blackhole"])
def test_library_scenarios_validate_and_name_a_mutant(name):
    path = Path(__file__).resolve().parents[2] / "scenarios" / f"{name}.yaml"
    scenario = load_scenario(path)
    assert any(isinstance(f, NetFault) for p in scenario.phases for f in p.faults)
    mutant = [line for line in path.read_text().splitlines() if line.startswith("# mutant:")]
    assert len(mutant) == 1 and "--set" in mutant[0]
    setting = mutant[0].split("--set", 1)[1].split()[0]
    load_scenario(path, [setting])  # the mutant is itself a valid scenario


def test_a_missing_kernel_module_is_named_in_the_error() -> None:
    from chaos.faults.netns import kernel_hint

    ingress = NetFault(service="backend", net="rate_limit", rate="1mbit", direction="ingress")
    egress = NetFault(service="backend", net="rate_limit", rate="1mbit")
    error = "RTNETLINK answers: Operation not supported\nip link add cxab12 type ifb"
    assert "modprobe ifb" in kernel_hint(ingress, error)
    assert kernel_hint(egress, "exit 1: device busy") == ""
    assert "traffic-control module" in kernel_hint(egress, 'Unknown qdisc "htb"')
