"""The FRR driver's pure getter parsers on the cases the recorded lab data does not have
(peer groups, VRFs, lldpd, several JSON documents, hostnames), checked against NAPALM's models."""

from __future__ import annotations

from typing import Any

from napalm.base import models
from napalm.base.test.helpers import test_model as napalm_model_ok

from napalm_frr import getters as g

BGP_RUNNING = """frr version 8.4.4
hostname vm
!
router bgp 64500
 neighbor SPINES peer-group
 neighbor SPINES remote-as 64500
 neighbor SPINES update-source lo
 neighbor 192.0.2.1 peer-group SPINES
 neighbor 192.0.2.1 description spine 1
 neighbor 192.0.2.2 peer-group SPINES
 neighbor 192.0.2.2 password s3cret
 neighbor 203.0.113.9 remote-as 64511
 !
 address-family ipv4 unicast
  neighbor SPINES route-map IN in
  neighbor 203.0.113.9 route-map EDGE-OUT out
 exit-address-family
exit
!
end
"""


def test_bgp_config_groups_members_and_policies() -> None:
    conf = g.bgp_config(BGP_RUNNING)
    assert set(conf) == {"SPINES", "_"}
    spines = conf["SPINES"]
    assert spines["type"] == "internal" and spines["remote_as"] == 64500
    assert spines["local_address"] == "lo" and spines["import_policy"] == "IN"
    assert set(spines["neighbors"]) == {"192.0.2.1", "192.0.2.2"}
    one, two = spines["neighbors"]["192.0.2.1"], spines["neighbors"]["192.0.2.2"]
    assert one["description"] == "spine 1" and one["remote_as"] == 64500
    assert two["authentication_key"] == "<removed>"  # never the key itself
    edge = conf["_"]["neighbors"]["203.0.113.9"]
    assert edge["remote_as"] == 64511 and edge["export_policy"] == "EDGE-OUT"
    for group in conf.values():
        assert napalm_model_ok(models.BGPConfigGroupDict, group)
        for peer in group["neighbors"].values():
            assert napalm_model_ok(models.BGPConfigNeighborDict, peer)
    assert set(g.bgp_config(BGP_RUNNING, group="SPINES")) == {"SPINES"}
    assert g.bgp_config("frr version 8.4.4\nend\n") == {}


def test_network_instances_with_a_vrf() -> None:
    frr = {
        "eth0": {"vrfName": "default"},
        "eth1": {"vrfName": "blue"},
        "blue": {"vrfName": "blue"},
    }
    out = g.network_instances(frr, [{"ifname": "blue"}])
    assert out["default"]["interfaces"]["interface"] == {"eth0": {}}
    assert out["blue"]["type"] == "L3VRF"
    assert out["blue"]["interfaces"]["interface"] == {"eth1": {}}
    for instance in out.values():
        assert napalm_model_ok(models.NetworkInstanceDict, instance)


def test_neighbors_skip_entries_without_mac_and_shape_v6() -> None:
    entries: list[dict[str, Any]] = [
        {"dst": "198.51.100.9", "dev": "srv", "state": ["FAILED"]},
        {"dst": "2001:db8::1", "dev": "srv", "lldpaddr": "x", "state": ["INCOMPLETE"]},
        {
            "dst": "2001:db8::2",
            "dev": "srv",
            "lladdr": "02:00:00:00:00:02",
            "updated": 7,
            "state": ["REACHABLE"],
        },
    ]
    (row,) = g.neighbors(entries, 6)
    assert row == {
        "interface": "srv",
        "mac": "02:00:00:00:00:02",
        "ip": "2001:db8::2",
        "age": 7.0,
        "state": "reachable",
    }
    assert napalm_model_ok(models.IPV6NeighborDict, row)


def test_loads_all_reads_back_to_back_documents() -> None:
    assert g.loads_all('{"a": 1}\n{"b": 2}\n') == [{"a": 1}, {"b": 2}]
    assert g.loads_all("") == []
    assert g.loads_all('{"a": 1} junk') == [{"a": 1}]


def test_hostname_prefers_frr_conf_then_running() -> None:
    assert g.hostname("hostname r1\n", "hostname vm\n") == "r1"
    assert g.hostname("! no hostname\n", "hostname vm\n") == "vm"
    assert g.hostname("", "") == ""


def test_environment_cpu_memory_thermal() -> None:
    meminfo = "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\n"
    cpu = "cpu0 100 0 100 800 0 0 0 0 0 0\n--\ncpu0 150 0 150 900 0 0 0 0 0 0\n"
    env = g.environment(meminfo, cpu, "x86_pkg_temp 45000\nbogus line\n")
    assert env["memory"] == {"available_ram": 1024000, "used_ram": 614400}
    assert env["cpu"] == {0: {"%usage": 50.0}}
    assert env["temperature"]["x86_pkg_temp"]["temperature"] == 45.0
    assert napalm_model_ok(models.MemoryDict, env["memory"])
    assert napalm_model_ok(models.CPUDict, env["cpu"][0])
    assert napalm_model_ok(models.TemperatureDict, env["temperature"]["x86_pkg_temp"])


def test_lldp_neighbors_from_lldpctl_json() -> None:
    data = {
        "lldp": {
            "interface": {
                "eth0": {
                    "chassis": {"sw1": {"id": {}}},
                    "port": {"id": {"type": "ifname", "value": "Gi0/1"}},
                }
            }
        }
    }
    assert g.lldp_neighbors(data) == {"eth0": [{"hostname": "sw1", "port": "Gi0/1"}]}
    assert g.lldp_neighbors({}) == {}


def test_bgp_neighbors_down_peer_and_vrf() -> None:
    data = {
        "default": {"vrfId": 0, "vrfName": "default"},
        "blue": {
            "vrfId": 5,
            "vrfName": "blue",
            "192.0.2.7": {
                "remoteAs": 64511,
                "localAs": 64500,
                "bgpState": "Active",
                "localRouterId": "192.0.2.254",
                "remoteRouterId": "0.0.0.0",
            },
        },
    }
    out = g.bgp_neighbors(data)
    assert out["global"] == {"router_id": "", "peers": {}}
    peer = out["blue"]["peers"]["192.0.2.7"]
    assert not peer["is_up"] and peer["is_enabled"] and peer["uptime"] == -1
    assert out["blue"]["router_id"] == "192.0.2.254"
    assert napalm_model_ok(models.PeerDict, peer)
