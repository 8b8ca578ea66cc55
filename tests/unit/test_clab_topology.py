"""containerlab/lbauto.clab.yml, read against containerlab's JSON schema and as containerlab
deploys it, and checked to agree with containerlab/inventory/ (what lbauto connects to).

containerlab cannot run here, and its schema is not part of this project: the rules below are
the ones this topology relies on, as ``schemas/clab.schema.json`` of srl-labs/containerlab
states them (read at commit 39ff2b7, August 2026): allowed keys (every object there has
``additionalProperties: false``), the kinds enum, name and endpoint patterns, value types.
``python -m tests.unit.test_clab_topology /path/to/clab.schema.json`` checks the schema's own
property lists and kinds against the rules here (run it where the schema file is at hand; CI
has no network to fetch it), so a schema change shows up as a failure.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from lbauto.core.model import Inventory
from lbauto.inventory import load_inventory

CLAB = Path(__file__).resolve().parents[2] / "containerlab"
TOPO_FILE = CLAB / "lbauto.clab.yml"

# ---- the schema's rules this topology relies on
TOP_KEYS = {"name", "prefix", "mgmt", "topology", "settings", "debug"}
NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-._]*$")
MGMT_KEYS = {
    "network", "bridge", "ipv4-subnet", "ipv6-subnet", "ipv4-gw", "ipv6-gw", "ipv4-range",
    "ipv6-range", "mtu", "external-access", "skip-when-unused", "driver-opts",
}  # fmt: skip
TOPOLOGY_KEYS = {"nodes", "groups", "kinds", "defaults", "links"}
NODE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-._|]*$")
NODE_KEYS = {
    "aliases", "auto-remove", "binds", "cap-add", "certificate", "cgroup-parent",
    "cgroupns-mode", "cmd", "components", "config", "cpu", "cpu-set", "credentials", "devices",
    "dns", "enforce-startup-config", "entrypoint", "env", "env-files", "exec", "extras", "group",
    "healthcheck", "hostname", "image", "image-pull-policy", "kind", "labels", "license",
    "link-apply-mode", "memory", "mgmt-ipv4", "mgmt-ipv6", "network-mode", "pid-mode", "ports",
    "privileged", "restart-policy", "runtime", "security-opts", "shm-size", "stages",
    "startup-config", "startup-delay", "suppress-startup-config", "sysctls", "tmpfs", "type",
    "user", "volumes",
}  # fmt: skip
#: the kinds used here, all in the schema's enum; "ceos" (the old topology's) is not in it
KINDS = {"linux", "bridge", "arista_ceos"}
SHORT_LINK_KEYS = {"endpoints", "mtu", "ipv4", "ipv6", "vars"}
ENDPOINT = re.compile(r"^\S+:\S+$")
#: Linux interface names (host bridges and their ports): at most 15 characters
IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def topology() -> dict[str, Any]:
    data = yaml.safe_load(TOPO_FILE.read_text())
    assert isinstance(data, dict)
    return data


def nodes() -> dict[str, dict[str, Any]]:
    return {k: v or {} for k, v in topology()["topology"]["nodes"].items()}


def endpoints() -> list[tuple[str, str]]:
    out = []
    for link in topology()["topology"]["links"]:
        for ep in link["endpoints"]:
            node, _, iface = ep.partition(":")
            out.append((node, iface))
    return out


# ------------------------------------------------------------------------- schema


def test_top_level_mgmt_and_topology_keys_are_the_schemas() -> None:
    topo = topology()
    assert {"name", "topology"} <= set(topo) <= TOP_KEYS
    assert NAME.fullmatch(topo["name"])
    assert set(topo["mgmt"]) <= MGMT_KEYS
    assert re.fullmatch(r"^.+/[0-9]{1,2}$", topo["mgmt"]["ipv4-subnet"])
    assert set(topo["topology"]) <= TOPOLOGY_KEYS


def test_nodes_use_only_schema_keys_and_kinds_with_the_right_types() -> None:
    for name, node in nodes().items():
        assert NODE_NAME.fullmatch(name), name
        assert set(node) <= NODE_KEYS, f"{name}: {set(node) - NODE_KEYS}"
        assert node["kind"] in KINDS, f"{name}: kind {node['kind']!r}"
        for key in ("binds", "exec"):  # arrays of strings, minItems 1 (binds unique)
            if key in node:
                assert node[key] and all(isinstance(x, str) for x in node[key]), (name, key)
        for key in ("binds", "cap-add"):
            if key in node:
                assert len(set(node[key])) == len(node[key]), (name, key)
        for key in ("sysctls", "env"):
            for k, v in node.get(key, {}).items():
                assert k and isinstance(v, (str, int, float)), (name, key, k)
        if "mgmt-ipv4" in node:
            ipaddress.IPv4Address(node["mgmt-ipv4"])
        for key in ("image", "startup-config", "cmd"):
            if key in node:
                assert isinstance(node[key], str), (name, key)


def test_links_are_short_form_with_two_endpoints_on_known_nodes() -> None:
    links = topology()["topology"]["links"]
    assert links
    topo_nodes = nodes()
    for link in links:
        assert set(link) <= SHORT_LINK_KEYS
        eps = link["endpoints"]
        assert len(eps) == 2 and len(set(eps)) == 2, eps
        for ep in eps:
            assert ENDPOINT.fullmatch(ep), ep
    # what containerlab checks at deploy: endpoints name existing nodes, each interface once
    used = Counter(endpoints())
    assert [ep for ep, n in used.items() if n > 1] == []
    for node, iface in used:
        assert node in topo_nodes, node
        kind = topo_nodes[node]["kind"]
        if kind == "bridge":
            assert IFNAME.fullmatch(node) and IFNAME.fullmatch(iface), (node, iface)
        else:
            # linux and cEOS containers: eth0 is management, data links are eth1..ethN
            assert re.fullmatch(r"eth[1-9][0-9]*", iface), (node, iface)


def test_files_the_topology_names_exist_or_are_made_by_the_user() -> None:
    user_made = {
        line.strip() for line in (CLAB / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }  # fmt: skip
    for name, node in nodes().items():
        for bind in node.get("binds", []):
            src = bind.split(":")[0]
            assert (CLAB / src).is_file() or src in user_made, f"{name}: bind source {src}"
        if "startup-config" in node:
            assert (CLAB / node["startup-config"]).is_file(), name
    # every project image is built by make clab-images (containerlab/images/Dockerfile.<x>)
    for name, node in nodes().items():
        image = node.get("image", "")
        if image.startswith("lbauto-clab/"):
            flavour = image.split("/")[1].split(":")[0]
            assert (CLAB / "images" / f"Dockerfile.{flavour}").is_file(), (name, image)


def test_the_old_mistakes_are_gone() -> None:
    """The kind `ceos` is not in containerlab's enum; the nodes need their own images."""
    for name, node in nodes().items():
        assert node["kind"] != "ceos"
        if node["kind"] == "linux":
            assert node["image"].startswith("lbauto-clab/"), name
        if node["kind"] == "arista_ceos":
            assert "startup-config" in node, name


def rules_match_the_schema_file(path: Path) -> None:
    """The rules above against containerlab's schema file (not collected by pytest)."""
    schema = json.loads(path.read_text())
    defs = schema["definitions"]
    assert set(schema["properties"]) == TOP_KEYS
    assert set(schema["properties"]["mgmt"]["properties"]) == MGMT_KEYS
    assert set(schema["properties"]["topology"]["properties"]) == TOPOLOGY_KEYS
    assert set(defs["node-config"]["properties"]) == NODE_KEYS
    assert defs["node-config"]["additionalProperties"] is False
    enum = set(defs["node-config"]["properties"]["kind"]["enum"])
    assert enum >= KINDS and "ceos" not in enum
    assert set(defs["link-config-short"]["properties"]) == SHORT_LINK_KEYS
    pattern = defs["link-config-short"]["properties"]["endpoints"]["prefixItems"][0]["pattern"]
    assert pattern == ENDPOINT.pattern


# ------------------------------------------------------------------------- inventory


def inventory() -> Inventory:
    return load_inventory(CLAB / "inventory")


def addresses(node: dict[str, Any], dev: str) -> list[str]:
    """Addresses the node's exec lines put on ``dev`` (``ip addr add A dev DEV``)."""
    out = []
    for line in node.get("exec", []):
        m = re.fullmatch(r"ip addr add (\S+) dev (\S+)", line)
        if m and m.group(2) == dev:
            out.append(m.group(1))
    return out


def test_every_router_is_a_node_of_its_kind_at_its_management_address() -> None:
    inv, topo_nodes, lab = inventory(), nodes(), topology()["name"]
    assert {r.name for r in inv.routers} == {
        n
        for n, v in topo_nodes.items()
        if v["kind"] == "arista_ceos" or "frr" in v.get("image", "")
    }
    for router in inv.routers:
        node = topo_nodes[router.name]
        assert router.hostname == node["mgmt-ipv4"], router.name
        if router.platform == "frr":
            assert node["kind"] == "linux" and node["image"].startswith("lbauto-clab/frr")
            # reached with docker exec into the container containerlab names clab-<lab>-<node>
            assert router.optional_args["transport"] == "docker"
            assert router.optional_args["container"] == f"clab-{lab}-{router.name}"
        else:
            assert router.platform == "eos" and node["kind"] == "arista_ceos"
            assert router.optional_args.get("transport") == "https"  # eAPI
            assert router.password_env, "cEOS credentials come from an environment variable"


def test_routers_are_on_both_segments_with_the_addresses_their_configs_give() -> None:
    cfg = {
        "frr1": (CLAB / "frr" / "frr1.conf").read_text(),
        "ceos1": (CLAB / "ceos" / "ceos1.cfg").read_text(),
    }
    bridge_of = {}
    for link in topology()["topology"]["links"]:
        (a, ai), (b, _) = (ep.split(":") for ep in link["endpoints"])
        bridge_of[(a, ai)] = b
    client = ipaddress.ip_network("203.0.113.0/24")
    server = ipaddress.ip_network("198.51.100.0/24")
    for router in inventory().routers:
        assert bridge_of[(router.name, "eth1")] == "lbauto-cl"
        assert bridge_of[(router.name, "eth2")] == "lbauto-sw"
        found = [
            ipaddress.ip_interface(a)
            for a in re.findall(r"^\s*ip address (\S+)$", cfg[router.name], re.M)
        ]
        assert {i.network for i in found} >= {client, server}, router.name


def test_agent_node_matches_agents_yaml_and_its_config() -> None:
    inv, topo_nodes = inventory(), nodes()
    (agent,) = inv.agents
    node = topo_nodes[agent.name]
    assert node["image"].startswith("lbauto-clab/agent")
    api = re.fullmatch(r"http://([0-9.]+):(\d+)", agent.api)
    assert api and api.group(1) == node["mgmt-ipv4"]
    assert [ipaddress.ip_interface(a).ip for a in addresses(node, "eth1")] == [agent.address]
    conf = yaml.safe_load((CLAB / "agent" / "agent.yaml").read_text())
    assert conf["listen"] == node["mgmt-ipv4"] and str(conf["port"]) == api.group(2)
    assert conf["interface"] == "eth1" and ("agent1", "eth1") in endpoints()
    targets = {b.split(":")[1] for b in node["binds"]}
    assert {"/etc/lbauto/agent.yaml", conf["token_file"]} <= targets
    assert agent.token_env and "token" not in conf  # the token lives in the bound file only


def test_vips_are_on_their_dips_and_one_of_them_bypasses() -> None:
    inv, topo_nodes = inventory(), nodes()
    dip_nodes = {n: v for n, v in topo_nodes.items() if v.get("env", {}).get("DIP_NAME")}
    dip_addr = {
        ipaddress.ip_interface(addresses(v, "eth1")[0]).ip: name for name, v in dip_nodes.items()
    }
    for vip in inv.vips:
        for dip in vip.dips:
            node = dip_nodes[dip_addr[dip]]  # every DIP is a DIP node
            # direct server return: the VIP is on the DIP's loopback
            assert f"{vip.address}/32" in addresses(node, "lo"), (vip.name, dip)
    assert any(len(v.dips) == 1 for v in inv.vips), "no single-DIP VIP: no bypass would show"
    assert any(len(v.dips) > 1 for v in inv.vips)


if __name__ == "__main__":
    import sys

    rules_match_the_schema_file(Path(sys.argv[1]))
    print("the rules here match", sys.argv[1])
