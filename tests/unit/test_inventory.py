"""Inventory loading: the example, every validation rule (file, line, entry), inheritance as
Nornir resolves it, secrets, hostile input (symlinks, alias bombs, huge files, floods of
errors), and the fast YAML reader agreeing with PyYAML."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nornir import InitNornir
from yaml import CSafeLoader as _Loader

from lbauto.core.addresses import parse_address
from lbauto.core.model import BypassPolicy, Method, Mode
from lbauto.errors import InventoryError
from lbauto.inventory import Limits, load_inventory, nornir_config
from lbauto.inventory._fastyaml import UnsupportedError
from lbauto.inventory._fastyaml import parse as fast_parse
from lbauto.inventory._linemap import YMap, YSeq
from lbauto.inventory._yaml import YamlFile
from lbauto.inventory.problems import Problems
from lbauto.inventory.routers import resolved_settings
from lbauto.inventory.schema import PLATFORM_FIX
from lbauto.platforms import PLATFORMS
from tests.properties import examples

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "inventories" / "example"
DATA = Path(__file__).parent / "data" / "inventories"
PLATFORM_LIST = ", ".join(PLATFORMS)

AGENTS = """\
agents:
  - name: lb1
    api: https://lb1.example.net:8443
    address: 198.51.100.10
    address6: 2001:db8:100::10
    token_env: LBAUTO_TOKEN_LB1
"""
VIPS = """\
vips:
  - name: web
    address: 192.0.2.10
    dips: [198.51.100.21, 198.51.100.22]
"""


def write(root: Path, **files: str | None) -> Path:
    """An inventory in ``root``: the given files (name without .yaml), plus a valid
    agents.yaml and vips.yaml unless given (pass None to leave one out)."""
    files = {"agents": AGENTS, "vips": VIPS, **files}
    for name, text in files.items():
        if text is not None:
            (root / f"{name}.yaml").write_text(textwrap.dedent(text))
    return root


def problems_of(root: Path, **kwargs: Any) -> list[str]:
    with pytest.raises(InventoryError) as info:
        load_inventory(root, **kwargs)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def expect(root: Path, file: str, line: int | None, entry: str, *fragments: str) -> str:
    """The one problem reported for ``file:line: entry:`` that contains every fragment."""
    where = f"{root / file}:{line}" if line is not None else str(root / file)
    prefix = f"{where}: {entry}: " if entry else f"{where}: "
    found = [p for p in problems_of(root) if p.startswith(prefix)]
    assert found, f"no problem starting {prefix!r} in {problems_of(root)}"
    matching = [p for p in found if all(f in p for f in fragments)]
    assert matching, f"{fragments} not in {found}"
    assert "\n" not in matching[0]
    return matching[0]


# ------------------------------------------------------------------------------- the example


def test_example_inventory_loads() -> None:
    inv = load_inventory(EXAMPLE)
    assert [r.name for r in inv.routers] == ["r1", "r2", "r3", "r4", "r5"]
    assert {r.platform for r in inv.routers} == set(PLATFORMS)
    r2 = inv.router("r2")
    assert (r2.platform, r2.method, r2.ingress) == ("eos", Method.PBR, ("Ethernet1",))
    assert inv.router("r5").platform == "junos"
    assert inv.router("r5").method is Method.STATIC
    assert inv.router("r1").optional_args["pathspace"] == "r1"
    assert all(r.tag == 4242 and r.lb_distance == 200 for r in inv.routers)
    (lb1,) = inv.agents
    assert lb1.api == "https://lb1.example.net:8443"
    assert lb1.address == ipaddress.ip_address("198.51.100.10")
    assert lb1.address6 == ipaddress.ip_address("2001:db8:100::10")
    assert lb1.token_env == "LBAUTO_TOKEN_LB1"
    modes = {v.name: v.mode for v in inv.vips}
    assert modes == {
        "web": Mode.MULTI, "api": Mode.SINGLE, "idle": Mode.EMPTY, "legacy": Mode.MULTI,
        "shop": Mode.SINGLE, "blog": Mode.MULTI, "mail": Mode.SINGLE, "v6web": Mode.SINGLE,
        "new": Mode.SINGLE,
    }  # fmt: skip
    legacy = inv.vips[3]
    assert legacy.bypass is BypassPolicy.NEVER and len(legacy.dips) == 1
    assert inv.vips[0].dips == tuple(ipaddress.ip_address(f"198.51.100.{i}") for i in (21, 22, 23))
    assert inv.vips[7].address == ipaddress.ip_address("2001:db8:10::10")
    assert inv.state_dir == EXAMPLE / ".lbauto" and inv.template_dir is None


def test_example_uses_documentation_addresses_only() -> None:
    docs = [ipaddress.ip_network(n) for n in (
        "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]  # fmt: skip
    inv = load_inventory(EXAMPLE)
    addresses = [v.address for v in inv.vips] + [d for v in inv.vips for d in v.dips]
    addresses += [a for agent in inv.agents for a in (agent.address, agent.address6) if a]
    addresses += [ipaddress.ip_address(r.hostname) for r in inv.routers]
    assert all(any(a in n for n in docs) for a in addresses)


# ---------------------------------------------------------- one problem per case: the table

_ROUTER = "r1:\n  hostname: 203.0.113.1\n  platform: frr\n  data:\n"
_AGENT_LB1 = "agents:\n  - name: lb1\n    api: http://lb1:8080\n    address: 198.51.100.10\n"

#: (files, file, line, entry, fragments): loading ``files`` reports a problem at
#: ``file:line: entry:`` containing every fragment.
CASES: dict[str, tuple[dict[str, str], str, int | None, str, tuple[str, ...]]] = {
    "unusable DIP on its own line": (
        {"vips": "vips:\n  - name: web\n    address: 192.0.2.10\n    dips:\n"
                 "      - 198.51.100.21\n      - 224.0.0.1\n"},
        "vips.yaml", 6, "vips[0] 'web'", ("DIP '224.0.0.1' is a multicast address",)),
    "DIP equal to the VIP": (
        {"vips": "vips:\n  - name: ok\n    address: 192.0.2.9\n  - name: web\n"
                 "    address: 192.0.2.10\n    dips: [198.51.100.21, 192.0.2.10]\n"},
        "vips.yaml", 6, "vips[1] 'web'", ("DIP 192.0.2.10 equals the VIP address",)),
    "duplicate DIP": (
        {"vips": "vips:\n  - name: web\n    address: 2001:db8:10::10\n    dips:\n"
                 "      - 2001:db8:100::21\n      - 2001:DB8:100:0::21\n"},
        "vips.yaml", 6, "vips[0] 'web'", ("DIP 2001:db8:100::21 is listed twice",)),
    "mixed families": (
        {"vips": "vips:\n  - name: web\n    address: 192.0.2.10\n"
                 "    dips: [198.51.100.21, 2001:db8:100::21]\n"},
        "vips.yaml", 4, "vips[0] 'web'",
        ("DIP 2001:db8:100::21 is IPv6 but the VIP is IPv4", "share one address family")),
    "duplicate VIP name": (
        {"vips": "vips:\n  - {name: web, address: 192.0.2.10}\n  - name: web\n"
                 "    address: 192.0.2.11\n  - {name: api, address: 192.0.2.10}\n"},
        "vips.yaml", 3, "vips[1] 'web'", ("duplicate VIP name 'web', first at line 2",)),
    "duplicate VIP address": (
        {"vips": "vips:\n  - {name: web, address: 192.0.2.10}\n  - name: web\n"
                 "    address: 192.0.2.11\n  - {name: api, address: 192.0.2.10}\n"},
        "vips.yaml", 5, "vips[2] 'api'", ("VIP address 192.0.2.10 is also VIP 'web' at line 2",)),
    "bypass value": (
        {"vips": "vips:\n  - name: web\n    address: 192.0.2.10\n    bypass: sometimes\n"},
        "vips.yaml", 4, "vips[0] 'web'", ("bypass 'sometimes'", "auto, never")),
    "method value": (
        {"vips": "vips:\n  - name: web\n    address: 192.0.2.10\n    method: bgp\n"},
        "vips.yaml", 4, "vips[0] 'web'", ("method 'bgp'", "static, pbr")),
    "VIP name missing": (
        {"vips": "vips:\n  - address: 192.0.2.10\n    dip: [198.51.100.21]\n"},
        "vips.yaml", 2, "vips[0]", ("name is missing",)),
    "VIP unknown key": (
        {"vips": "vips:\n  - address: 192.0.2.10\n    dip: [198.51.100.21]\n"},
        "vips.yaml", 3, "vips[0]",
        ("unknown key 'dip'", "allowed: name, address, dips, bypass, method")),
    "too many DIPs": (
        {"vips": "vips:\n  - name: web\n    address: 192.0.2.10\n    dips: ["
                 + ", ".join(f"198.51.{100 + i // 250}.{i % 250 + 1}" for i in range(1025))
                 + "]\n"},
        "vips.yaml", 4, "vips[0] 'web'", ("dips lists 1025 DIPs, more than an agent accepts",)),
    "unsafe router name": (
        {"hosts": '"r1;x":\n  hostname: 203.0.113.1\n  platform: frr\n'},
        "hosts.yaml", 1, "host 'r1;x'", ("router name 'r1;x'", "not allowed")),
    "unsafe agent name": (
        {"agents": 'agents:\n  - name: "lb 1"\n    api: http://lb1:8080\n'
                   "    address: 198.51.100.10\n    token_env: T\n"},
        "agents.yaml", 2, "agents[0]", ("name 'lb 1' contains characters",)),
    "agent needs address6 for an IPv6 VIP": (
        {"vips": "vips:\n  - {name: v4, address: 192.0.2.1}\n"
                 "  - {name: v6, address: 2001:db8:10::1}\n",
         "agents": _AGENT_LB1 + "    token_env: T\n"},
        "agents.yaml", 2, "agents[0] 'lb1'",
        ("address6 is missing but VIP 'v6' (2001:db8:10::1) is IPv6",)),
    "address6 of the wrong family": (
        {"vips": "vips:\n  - {name: v4, address: 192.0.2.1}\n",
         "agents": "agents:\n  - name: lb2\n    api: http://lb2:8080\n"
                   "    address6: 198.51.100.11\n    token_file: lb2.token\n"},
        "agents.yaml", 4, "agents[0] 'lb2'", ("address6 198.51.100.11 is not an IPv6",)),
    "agent needs address for an IPv4 VIP": (
        {"vips": "vips:\n  - {name: v4, address: 192.0.2.1}\n",
         "agents": "agents:\n  - name: lb2\n    api: http://lb2:8080\n"
                   "    address6: 198.51.100.11\n    token_file: lb2.token\n"},
        "agents.yaml", 2, "agents[0] 'lb2'",
        ("address is missing but VIP 'v4' (192.0.2.1) is IPv4",)),
    "agent without token": (
        {"agents": _AGENT_LB1},
        "agents.yaml", 2, "agents[0] 'lb1'", ("no token_env or token_file",)),
    "agent with two tokens": (
        {"agents": _AGENT_LB1 + "    token_env: LB2\n    token_file: lb2.token\n"},
        "agents.yaml", 2, "agents[0] 'lb1'", ("both token_env and token_file",)),
    "agent token_env name": (
        {"agents": _AGENT_LB1 + "    token_env: 2BAD\n"},
        "agents.yaml", 5, "agents[0] 'lb1'", ("token_env '2BAD'",)),
    "duplicate agents": (
        {"agents": "agents:\n" + "  - {name: lb1, api: 'http://a:1', address: 198.51.100.10, "
                   "token_env: T}\n" * 2},
        "agents.yaml", 3, "agents[1] 'lb1'", ("duplicate agent name 'lb1'",)),
    "empty agent list": (
        {"agents": "agents: []\n"}, "agents.yaml", 1, "", ("agents must be a non-empty list",)),
    "unknown platform": (
        {"hosts": "r1:\n  hostname: 203.0.113.1\n  platform: vyos\n"},
        "hosts.yaml", 3, "host 'r1'", ("platform 'vyos' is not valid", PLATFORM_LIST)),
    "hostname missing": (
        {"hosts": "r1:\n  port: 22\n"}, "hosts.yaml", 1, "host 'r1'", ("hostname is missing",)),
    "platform missing": (
        {"hosts": "r1:\n  port: 22\n"},
        "hosts.yaml", 1, "host 'r1'", ("platform is missing", PLATFORM_LIST[:8])),
    "pbr router without ingress": (
        {"hosts": _ROUTER + "    lbauto_method: pbr\n"},
        "hosts.yaml", 1, "host 'r1'",
        ("method pbr needs ingress interfaces", "data.lbauto_ingress")),
    "unknown host key": (
        {"hosts": "r1:\n  hostname: 203.0.113.1\n  platform: frr\n  site: x\n"},
        "hosts.yaml", 4, "host 'r1'",
        ("unknown key 'site'",
         "hostname, port, username, platform, groups, data, connection_options")),
    "groups in defaults": (
        {"defaults": "groups: [a]\n"}, "defaults.yaml", 1, "defaults", ("unknown key 'groups'",)),
    "unknown settings key": (
        {"lbauto": "state: x\n"}, "lbauto.yaml", 1, "",
        ("unknown key 'state'", "template_dir, state_dir")),
    "unknown group": (
        {"groups": "a:\n  groups: [b]\nb:\n  groups: [a]\n",
         "hosts": "r1:\n  hostname: 203.0.113.1\n  platform: frr\n  groups: [a, nope]\n"},
        "hosts.yaml", 1, "host 'r1'", ("group 'nope' is not in groups.yaml", "groups: a, b")),
    "cyclic groups": (
        {"groups": "a:\n  groups: [b]\nb:\n  groups: [a]\n",
         "hosts": "r1:\n  hostname: 203.0.113.1\n  platform: frr\n  groups: [a, nope]\n"},
        "groups.yaml", 1, "group 'a'", ("inherits from itself",)),
    "groups given as one name": (
        {"groups": "a: {}\n",
         "hosts": "r1:\n  hostname: 203.0.113.1\n  platform: frr\n  groups: a\n"},
        "hosts.yaml", 4, "host 'r1'", ("groups must be a list",)),
    "empty connection option": (
        {"hosts": "r1:\n  hostname: 203.0.113.1\n  platform: frr\n  connection_options:\n"
                  "    napalm:\n"},
        "hosts.yaml", 5, "host 'r1'", ("connection_options.napalm is empty",)),
    "nested data.lbauto": (
        {"hosts": _ROUTER + "    lbauto:\n      method: pbr\n"},
        "hosts.yaml", 5, "host 'r1'", ("data.lbauto is not read", "lbauto_method")),
    "empty lbauto key": (
        {"hosts": _ROUTER + "    lbauto_tag:\n"},
        "hosts.yaml", 5, "host 'r1'", ("lbauto_tag is empty", "Nornir stops at an empty key")),
    "duplicate YAML keys": (
        {"hosts": "r1: {hostname: a, platform: frr}\nr1: {hostname: b, platform: frr}\n"},
        "hosts.yaml", 2, "", ("duplicate key 'r1', first at line 1",)),
    "vips.yaml without vips": (
        {"vips": "- web\n"}, "vips.yaml", None, "", ("no top-level `vips:` list",)),
    "hosts.yaml as a list": (
        {"hosts": "- r1\n"}, "hosts.yaml", None, "", ("must be a mapping of host names",)),
    "token in plugin options": (
        {"lbauto": "inventory:\n  plugin: SimpleInventory\n  options:\n    nb_token: abc\n"},
        "lbauto.yaml", 4, "", ("a literal 'nb_token' is not allowed",)),
    "unknown plugin option": (
        {"lbauto": "inventory:\n  options: {host_fle: x.yaml}\n",
         "hosts": "r1: {hostname: 203.0.113.1, platform: frr}\n"},
        "hosts.yaml", None, "", ("inventory plugin 'SimpleInventory' refused its options",)),
    "template_dir outside the inventory": (
        {"lbauto": "template_dir: ../elsewhere\n"}, "lbauto.yaml", 1, "",
        ("template_dir is outside the inventory directory", "--allow-outside-inventory")),
}  # fmt: skip


@pytest.mark.parametrize(("files", "file", "line", "entry", "fragments"), CASES.values(), ids=CASES)
def test_reported_problem(
    tmp_path: Path,
    files: dict[str, str],
    file: str,
    line: int | None,
    entry: str,
    fragments: tuple[str, ...],
) -> None:
    write(tmp_path, **files)
    expect(tmp_path, file, line, entry, *fragments)


# ------------------------------------------------------------------------------- VIP rules


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("192.0.2.300", "is not a valid IPv4 or IPv6 address"),
        ("web.example.net", "is not a valid IPv4 or IPv6 address"),
        ("192.0.2.0/24", "is a network, not a single address"),
        ("0.0.0.0", "is the unspecified address"),
        ("::", "is the unspecified address"),
        ("127.0.0.1", "is a loopback address"),
        ("::1", "is a loopback address"),
        ("224.0.0.5", "is a multicast address"),
        ("ff02::1", "is a multicast address"),
        ("169.254.1.1", "is a link-local address"),
        ("255.255.255.255", "is the broadcast address"),
        ("010.0.0.1", "is not a valid IPv4 or IPv6 address"),
        ("::ffff:127.0.0.1", "is an IPv4-mapped IPv6 address"),
    ],
)
def test_unusable_vip_address(tmp_path: Path, address: str, reason: str) -> None:
    write(tmp_path, vips=f'vips:\n  - name: web\n    address: "{address}"\n')
    expect(tmp_path, "vips.yaml", 3, "vips[0] 'web'", f"VIP {address!r} {reason}")


def test_empty_vips_list_and_no_routers_files(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, vips="vips: []\n"))
    assert inv.vips == () and inv.routers == () and len(inv.agents) == 1
    write(tmp_path, vips="vips:\n  - name: idle\n    address: 192.0.2.10\n    dips:\n")
    assert load_inventory(tmp_path).vips[0].dips == ()


def test_vips_keep_file_order_and_types(tmp_path: Path) -> None:
    inv = load_inventory(
        write(
            tmp_path,
            vips="""\
        vips:
          - {name: z, address: 192.0.2.30, dips: [198.51.100.1]}
          - name: a
            address: 192.0.2.20
            dips: 198.51.100.2
            method: pbr
            bypass: never
        """,
        )
    )
    assert [v.name for v in inv.vips] == ["z", "a"]
    assert inv.vips[1].dips == (ipaddress.IPv4Address("198.51.100.2"),)
    assert inv.vips[1].method is Method.PBR and inv.vips[1].bypass is BypassPolicy.NEVER


# ------------------------------------------------------------------------ injection / names


@pytest.mark.parametrize(
    "name",
    ["web\nip route 0.0.0.0/0 1.2.3.4", "web;reload", "web!", 'we"b', "we'b", "web site",
     "x" * 64, ""],
)  # fmt: skip
def test_unsafe_vip_names_are_rejected(tmp_path: Path, name: str) -> None:
    quoted = yaml.safe_dump(name).strip().removesuffix("...").strip()
    write(tmp_path, vips=f"vips:\n  - name: {quoted}\n    address: 192.0.2.10\n")
    problems = problems_of(tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'vips.yaml'}:2: vips[0]: name ")
    assert "\n" not in problems[0]


@pytest.mark.parametrize("interface", ["eth1; reload", "eth1!", "eth 1", 'eth"1', "eth1\nend"])
def test_unsafe_interface_names_are_rejected(tmp_path: Path, interface: str) -> None:
    quoted = yaml.safe_dump(interface).strip().removesuffix("...").strip()
    write(
        tmp_path,
        hosts=f"""\
        r1:
          hostname: 203.0.113.1
          platform: frr
          data:
            lbauto_method: pbr
            lbauto_ingress:
              - eth0
              - {quoted}
        """,
    )
    line = expect(tmp_path, "hosts.yaml", 8, "host 'r1'", "ingress interface", "not allowed")
    assert "A-Z a-z 0-9 _ . / : -" in line


def test_interface_names_of_every_platform_are_accepted(tmp_path: Path) -> None:
    write(
        tmp_path,
        hosts="""\
        r1:
          hostname: 203.0.113.1
          platform: junos
          data:
            lbauto_method: pbr
            lbauto_ingress: [ge-0/0/1.100, Ethernet1/1, eth1, Port-Channel10]
        """,
    )
    router = load_inventory(tmp_path).routers[0]
    assert router.ingress == ("ge-0/0/1.100", "Ethernet1/1", "eth1", "Port-Channel10")


# --------------------------------------------------------------------------------- agents


@pytest.mark.parametrize(
    ("api", "reason"),
    [
        ("ftp://lb1.example.net", "is not an http:// or https:// URL"),
        ("lb1.example.net:8443", "is not an http:// or https:// URL"),
        ("https://", "has no host"),
        ("https://lb1:99999", "is not a valid URL"),
        ("https://lb1 :80", "contains spaces"),
    ],
)
def test_agent_api_must_be_http_url(tmp_path: Path, api: str, reason: str) -> None:
    write(
        tmp_path,
        agents=f'agents:\n  - name: lb1\n    api: "{api}"\n    address: 198.51.100.10\n'
        "    token_env: T\n",
    )
    expect(tmp_path, "agents.yaml", 3, "agents[0] 'lb1'", f"api {api!r} {reason}")


def test_agent_paths_are_relative_to_the_inventory(tmp_path: Path) -> None:
    write(
        tmp_path,
        agents="""\
        agents:
          - name: lb1
            api: https://lb1:8443
            address: 198.51.100.10
            token_file: secrets/lb1.token
            ca_file: /etc/ssl/ca.pem
          - name: lb2
            api: https://lb2:8443
            address: 198.51.100.11
            token_env: LB2
        """,
    )
    lb1, lb2 = load_inventory(tmp_path).agents
    assert lb1.token_file == tmp_path / "secrets" / "lb1.token"
    assert lb1.ca_file == Path("/etc/ssl/ca.pem") and lb1.token_env is None
    assert lb2.token_env == "LB2" and lb2.token_file is None


# -------------------------------------------------------------------------------- routers


def test_vip_pbr_override_needs_ingress_on_every_router(tmp_path: Path) -> None:
    write(
        tmp_path,
        vips="""\
            vips:
              - {name: web, address: 192.0.2.10, dips: [198.51.100.21], method: pbr}
            """,
        hosts="""\
            r1: {hostname: 203.0.113.1, platform: frr}
            r2:
              hostname: 203.0.113.2
              platform: ios
              data: {lbauto_ingress: [Gi1]}
            """,
    )
    problems = problems_of(tmp_path)
    assert problems == [
        f"{tmp_path / 'hosts.yaml'}:1: host 'r1': VIP 'web' (192.0.2.10) uses method pbr, which "
        "needs ingress interfaces on every router (set data.lbauto_ingress to the interfaces "
        "where VIP traffic arrives, e.g. [eth1])"
    ]


def test_vip_pbr_override_with_bypass_never_needs_no_ingress(tmp_path: Path) -> None:
    write(
        tmp_path,
        vips="vips:\n  - {name: web, address: 192.0.2.10, method: pbr, bypass: never}\n",
        hosts="r1: {hostname: 203.0.113.1, platform: frr}\n",
    )
    assert load_inventory(tmp_path).routers[0].method is Method.STATIC


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("lbauto_tag: 0", "tag must be an integer from 1 to 4294967295, got 0"),
        ("lbauto_tag: 4294967296", "tag must be an integer from 1 to 4294967295"),
        ("lbauto_tag: true", "tag must be an integer from 1 to 4294967295, got True"),
        ("lbauto_lb_distance: 256", "lb_distance must be an integer from 1 to 255, got 256"),
        ("lbauto_bypass_distance: 0", "bypass_distance must be an integer from 1 to 255, got 0"),
        ("lbauto_method: ospf", "method 'ospf' is not valid"),
        ("lbauto_password_env: 'MY PASS'", "password_env 'MY PASS' contains characters"),
        ("lbauto_color: blue", "unknown key 'lbauto_color'"),
    ],
)
def test_router_setting_ranges(tmp_path: Path, setting: str, fragment: str) -> None:
    write(tmp_path, hosts=_ROUTER + f"    {setting}\n")
    expect(tmp_path, "hosts.yaml", 5, "host 'r1'", fragment)


def test_bypass_distance_must_be_below_lb_distance(tmp_path: Path) -> None:
    write(
        tmp_path,
        defaults="data:\n  lbauto_lb_distance: 10\n",
        hosts="""\
            r1: {hostname: 203.0.113.1, platform: frr}
            r2:
              hostname: 203.0.113.2
              platform: frr
              data: {lbauto_bypass_distance: 10}
            """,
    )
    assert problems_of(tmp_path) == [
        f"{tmp_path / 'hosts.yaml'}:2: host 'r2': bypass_distance 10 is not below lb_distance 10"
        " (the bypass must win over the LB route: make bypass_distance smaller)"
    ]


@pytest.mark.parametrize(
    ("alias", "platform"),
    [("arista_eos", "eos"), ("eos", "eos"), ("cisco_ios", "ios"), ("ios", "ios"),
     ("nxos", "nxos"), ("nxos_ssh", "nxos"), ("cisco_nxos", "nxos"), ("junos", "junos"),
     ("juniper_junos", "junos"), ("frr", "frr"), ("Arista_EOS", "eos"), ("cisco-nxos", "nxos")],
)  # fmt: skip
def test_nornir_platform_names_map_to_lbauto_platforms(
    tmp_path: Path, alias: str, platform: str
) -> None:
    write(tmp_path, hosts=f"r1:\n  hostname: 203.0.113.1\n  platform: {alias}\n")
    assert load_inventory(tmp_path).routers[0].platform == platform


# ---------------------------------------------------------------------------- inheritance


def test_group_and_default_inheritance() -> None:
    inv = load_inventory(DATA / "inherit")
    plain, both, reversed_, own = inv.routers
    # only defaults
    assert (plain.platform, plain.username, plain.port, plain.tag) == ("frr", "ops", 2222, 100)
    assert (plain.method, plain.lb_distance, plain.bypass_distance) == (Method.STATIC, 150, 1)
    assert plain.optional_args == {"key_file": "/keys/default"}
    # groups in order: arista (static, eos) before edge (pbr) and edge's parent base
    assert (both.platform, both.method, both.ingress) == ("eos", Method.STATIC, ("eth1", "eth2"))
    assert (both.port, both.tag, both.bypass_distance) == (22, 200, 5)
    # edge first: its pbr wins over arista's static; base (edge's parent) before arista
    assert (reversed_.method, reversed_.platform) == (Method.PBR, "eos")
    # the host's own settings win, key by key (every lbauto_* data key on its own)
    assert (own.platform, own.method, own.ingress, own.tag) == (
        "junos",
        Method.PBR,
        ("ge-0/0/1",),
        7,
    )
    assert own.optional_args == {"pathspace": "own"}
    assert inv.agents[0].token_file == DATA / "inherit" / "secrets" / "lb1.token"


@pytest.mark.parametrize("inventory", [DATA / "inherit", EXAMPLE], ids=["inherit", "example"])
def test_plain_nornir_reads_the_same_routers(inventory: Path) -> None:
    """``InitNornir`` on the same files, knowing nothing of lbauto, sees every lbauto setting
    with the value lbauto uses, host by host."""
    nr = InitNornir(
        inventory={
            "plugin": "SimpleInventory",
            "options": {
                "host_file": str(inventory / "hosts.yaml"),
                "group_file": str(inventory / "groups.yaml"),
                "defaults_file": str(inventory / "defaults.yaml"),
            },
        },
        logging={"enabled": False},
    )
    routers = load_inventory(inventory).routers
    assert [r.name for r in routers] == list(nr.inventory.hosts)
    assert list(InitNornir(**nornir_config(inventory)).inventory.hosts) == list(nr.inventory.hosts)
    for router in routers:
        host = nr.inventory.hosts[router.name]
        napalm = host.get_connection_parameters("napalm")
        assert router.hostname == host.hostname == napalm.hostname
        assert router.port == host.port and router.username == host.username
        assert router.platform == PLATFORMS[router.platform].name
        assert str(host.platform).lower() in (router.platform, *PLATFORMS[router.platform].aliases)
        assert router.method.value == host.get("lbauto_method", "static")
        assert router.ingress == tuple(host.get("lbauto_ingress") or ())
        assert router.tag == host.get("lbauto_tag", 4242)
        assert router.lb_distance == host.get("lbauto_lb_distance", 200)
        assert router.bypass_distance == host.get("lbauto_bypass_distance", 1)
        assert router.password_env == host.get("lbauto_password_env")
        assert dict(router.optional_args) == (napalm.extras or {}).get("optional_args", {})
        assert resolved_settings(host)["lbauto_tag"] == host.get("lbauto_tag")


def test_other_nornir_inventory_plugins_by_configuration(tmp_path: Path) -> None:
    """``inventory.plugin`` in lbauto.yaml names any registered Nornir inventory plugin; its
    hosts are validated like SimpleInventory's, their problems named by plugin and host."""
    from nornir.core.inventory import Defaults, Groups, Host, Hosts, Inventory
    from nornir.core.plugins.inventory import InventoryPluginRegister

    class TestInventory:
        def __init__(self, tag: int) -> None:
            self.tag = tag

        def load(self) -> Inventory:
            data = {"lbauto_tag": self.tag, "lbauto_method": "static"}
            hosts = Hosts(
                r1=Host("r1", hostname="203.0.113.1", platform="arista_eos", data=data),
                r2=Host("r2", hostname="203.0.113.2", platform="vyos"),
            )
            return Inventory(hosts=hosts, groups=Groups(), defaults=Defaults())

    InventoryPluginRegister.register("LbautoTestInventory", TestInventory)
    write(tmp_path, lbauto="inventory:\n  plugin: LbautoTestInventory\n  options: {tag: 77}\n")
    assert problems_of(tmp_path) == [
        f"inventory plugin LbautoTestInventory: host 'r2': platform 'vyos' is not valid "
        f"({PLATFORM_FIX})"
    ]
    (tmp_path / "lbauto.yaml").write_text("inventory: {plugin: NoSuchInventory}\n")
    assert "Nornir has no inventory plugin 'NoSuchInventory'" in problems_of(tmp_path)[0]


def test_bad_value_in_a_group_is_reported_once_in_groups_yaml(tmp_path: Path) -> None:
    write(
        tmp_path,
        groups="g:\n  platform: vyos\n",
        hosts="r1: {hostname: 203.0.113.1, groups: [g]}\n"
        "r2: {hostname: 203.0.113.2, groups: [g]}\n",
    )
    assert problems_of(tmp_path) == [
        f"{tmp_path / 'groups.yaml'}:2: group 'g': platform 'vyos' is not valid ({PLATFORM_FIX})"
    ]


def test_null_settings_mean_not_set(tmp_path: Path) -> None:
    """An empty host attribute inherits (Nornir falls through); an empty data key would stop
    Nornir's lookup, so lbauto refuses it (see the table above)."""
    write(
        tmp_path,
        defaults="port: 2222\ndata:\n  lbauto_tag: 9\n",
        hosts="r1:\n  hostname: 203.0.113.1\n  platform: frr\n  port:\n  username:\n",
    )
    (router,) = load_inventory(tmp_path).routers
    assert (router.port, router.tag, router.method) == (2222, 9, Method.STATIC)


# -------------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    ("file", "text", "line", "entry"),
    [
        ("hosts", "r1:\n  hostname: h\n  platform: frr\n  password: x\n", 4, "host 'r1'"),
        ("defaults", "password: x\n", 1, "defaults"),
        ("groups", "g:\n  data:\n    other:\n      password: x\n", 4, "group 'g'"),
        ("groups", "g:\n  data:\n    lbauto:\n      password: x\n", 4, "group 'g'"),
        ("hosts", _ROUTER + "    lbauto_password: x\n", 5, "host 'r1'"),
        ("defaults", "connection_options:\n  napalm:\n    password: x\n", 3, "defaults"),
        (
            "defaults",
            "connection_options:\n  napalm:\n    extras:\n"
            "      optional_args:\n        secret: x\n",
            5,
            "defaults",
        ),
    ],
)
def test_literal_password_is_rejected(
    tmp_path: Path, file: str, text: str, line: int, entry: str
) -> None:
    write(tmp_path, **{file: text})
    expect(tmp_path, f"{file}.yaml", line, entry, "is not allowed", "password_env")


def test_password_env_is_accepted(tmp_path: Path) -> None:
    write(
        tmp_path,
        hosts="r1:\n  hostname: h1\n  platform: ios\n"
        "  data: {lbauto_password_env: LBAUTO_R1_PASSWORD}\n",
    )
    assert load_inventory(tmp_path).routers[0].password_env == "LBAUTO_R1_PASSWORD"


# ----------------------------------------------------------------------- files and syntax


def test_missing_required_files(tmp_path: Path) -> None:
    (tmp_path / "vips.yml").write_text("vips: []\n")
    problems = problems_of(tmp_path)
    assert problems == [
        f"{tmp_path / 'vips.yaml'}: file not found; found vips.yml, rename it "
        "(create it with a top-level `vips:` list)",
        f"{tmp_path / 'agents.yaml'}: file not found (create it with a top-level `agents:` list)",
    ]


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="not a directory"):
        load_inventory(tmp_path / "nope")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    write(tmp_path, vips="vips:\n  - name: web\n    address: [192.0.2.1\n")
    (problem,) = problems_of(tmp_path)
    assert problem.startswith(f"{tmp_path / 'vips.yaml'}:4: YAML syntax error")


def test_settings_file(tmp_path: Path) -> None:
    write(tmp_path, lbauto="template_dir: templates\nstate_dir: /var/lib/lbauto\n")
    inv = load_inventory(tmp_path)
    assert inv.template_dir == tmp_path / "templates"
    assert inv.state_dir == Path("/var/lib/lbauto")


def test_many_problems_reported_together_in_file_order() -> None:
    root = DATA / "broken"
    problems = problems_of(root)
    where = [p.split(": ", 2)[:2] for p in problems]
    assert where == [
        [f"{root / 'vips.yaml'}:4", "vips[0] 'web'"],
        [f"{root / 'vips.yaml'}:5", "vips[1]"],
        [f"{root / 'vips.yaml'}:7", "vips[2] 'web'"],
        [f"{root / 'vips.yaml'}:9", "vips[2] 'web'"],
        [f"{root / 'agents.yaml'}:3", "agents[0] 'lb1'"],
        [f"{root / 'hosts.yaml'}:3", "host 'r1'"],
        [f"{root / 'hosts.yaml'}:4", "host 'r1'"],
        [f"{root / 'hosts.yaml'}:5", "host 'r2'"],
        [f"{root / 'hosts.yaml'}:11", "host 'r2'"],
    ]
    assert "equals the VIP address" in problems[0]
    assert "duplicate VIP name 'web'" in problems[2]
    assert "needs ingress interfaces" in problems[7]


def test_yaml_features_beyond_the_fast_subset_give_the_same_inventory(tmp_path: Path) -> None:
    """Quotes, anchors, merge keys and flow mappings go through PyYAML: same result."""
    shutil.copytree(EXAMPLE, tmp_path / "plain")
    fancy = tmp_path / "fancy"
    shutil.copytree(EXAMPLE, fancy)
    (fancy / "agents.yaml").write_text(
        textwrap.dedent("""\
        agents:
          - <<: {api: "https://lb1.example.net:8443", token_env: LBAUTO_TOKEN_LB1}
            name: &n "lb1"
            address: '198.51.100.10'
            address6: 2001:db8:100::10
        """)
    )
    plain, fancy_inv = load_inventory(tmp_path / "plain"), load_inventory(fancy)
    assert plain.agents == fancy_inv.agents
    assert plain.vips == fancy_inv.vips and plain.routers == fancy_inv.routers


# ------------------------------------------------- hostile input: paths, symlinks, sizes

SECRET = "s3cr3t-token-value"


@pytest.mark.parametrize("name", ["hosts", "groups", "defaults", "lbauto"])
@pytest.mark.parametrize("allow", [False, True], ids=["refused", "allowed"])
def test_symlinked_file_content_is_never_printed(tmp_path: Path, name: str, allow: bool) -> None:
    """An inventory file that is a symlink to something else (here a secret that YAML reads as
    a scalar, a mapping key and a value) is refused, or with the operator's permission read;
    either way no message quotes it."""
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{SECRET}\n" if name != "hosts" else f"{SECRET}: {SECRET}\nr2: 987654321\n")
    inventory = tmp_path / "inv"
    inventory.mkdir()
    write(inventory)
    (inventory / f"{name}.yaml").symlink_to(secret)
    problems = problems_of(inventory, allow_outside=allow)
    assert problems and not any(SECRET in p or "987654321" in p for p in problems), problems
    if not allow:
        assert problems == [
            f"{inventory / f'{name}.yaml'}: is a symlink to a file outside the inventory "
            "directory (copy the file into the inventory directory, or pass "
            "--allow-outside-inventory if you trust it)"
        ]


def test_values_are_quoted_as_a_short_excerpt(tmp_path: Path) -> None:
    long = "A" * 5000
    write(tmp_path, hosts=f"r1:\n  hostname: 203.0.113.1\n  platform: {long}\n")
    (problem,) = problems_of(tmp_path)
    assert "A" * 41 not in problem and "'" + "A" * 40 + "...'" in problem
    assert len(problem) < 400


def test_template_dir_stays_inside_unless_allowed(tmp_path: Path) -> None:
    outside = tmp_path / "templates"
    (outside / "frr").mkdir(parents=True)
    inventory = tmp_path / "inv"
    inventory.mkdir()
    write(inventory)
    (inventory / "overrides").symlink_to(outside)  # a symlink out counts as outside
    for value in ("../templates", str(outside), "overrides"):
        (inventory / "lbauto.yaml").write_text(f"template_dir: {value}\n")
        (problem,) = problems_of(inventory)
        assert "template_dir is outside the inventory directory" in problem
        assert load_inventory(inventory, allow_outside=True).template_dir == inventory / value
    (inventory / "own").mkdir()
    (inventory / "lbauto.yaml").write_text("template_dir: own\n")
    assert load_inventory(inventory).template_dir == inventory / "own"


def test_alias_bomb_fails_fast(tmp_path: Path) -> None:
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    write(tmp_path, vips="\n".join(bomb) + "\nvips: *a8\n")
    start = time.perf_counter()
    (problem,) = problems_of(tmp_path)
    assert time.perf_counter() - start < 5
    assert "YAML aliases expand the document" in problem


def test_aliases_that_share_settings_still_work(tmp_path: Path) -> None:
    hosts = "r0: &r {hostname: 203.0.113.1, platform: frr, data: {lbauto_tag: 9}}\n"
    hosts += "".join(f"r{i}: *r\n" for i in range(1, 200))
    write(tmp_path, hosts=hosts)
    assert {r.tag for r in load_inventory(tmp_path).routers} == {9}


def test_file_size_is_capped(tmp_path: Path) -> None:
    junk = "- junk line that is not a VIP\n"
    big = write(tmp_path) / "vips.yaml"
    big.write_text("vips:\n" + junk)
    os.truncate(big, 50 * 2**20)  # 50 MiB without writing them: the cap must not read them
    start = time.perf_counter()
    (problem,) = problems_of(tmp_path)
    assert time.perf_counter() - start < 5
    assert problem == (
        f"{tmp_path / 'vips.yaml'}: is larger than 16 MiB (split it, or raise "
        "limits.max_file_mb in lbauto.yaml if it really is that big)"
    )
    os.truncate(big, 2 * 2**20)
    assert "is larger than" not in problems_of(tmp_path)[0]  # 2 MiB is within the default
    (tmp_path / "lbauto.yaml").write_text("limits: {max_file_mb: 1}\n")
    assert "is larger than 1 MiB" in problems_of(tmp_path)[0]
    assert "is larger than 1 MiB" in problems_of(tmp_path, limits=Limits(2**20))[0]


def test_problems_of_one_kind_are_capped_with_a_count(tmp_path: Path) -> None:
    junk = "  - junk\n"
    write(tmp_path, vips="vips:\n" + junk * 1000)
    problems = problems_of(tmp_path)
    assert len(problems) == 21
    assert problems[-1] == (
        f"{tmp_path / 'vips.yaml'}: 980 more problems like the 20 above not shown (fix those first)"
    )
    (tmp_path / "lbauto.yaml").write_text("limits: {max_errors_per_kind: 3}\n")
    assert len(problems_of(tmp_path)) == 4


def test_a_flood_of_problems_is_counted_not_worded(tmp_path: Path) -> None:
    """A file of junk under the size limit: the count, then the first entries' problems."""
    write(tmp_path, vips="vips:\n" + "  - junk\n" * 100_000)
    start = time.perf_counter()
    problems = problems_of(tmp_path)
    assert time.perf_counter() - start < 20
    assert problems[0] == (
        f"{tmp_path / 'vips.yaml'}: 100000 problems; only those of the first 200 entries are "
        "listed (fix those first)"
    )
    assert len(problems) == 22 and problems[-1].endswith(
        "180 more problems like the 20 above not shown (fix those first)"
    )


# ------------------------------------------------------------ fast YAML reader vs PyYAML


def _tree(value: object) -> object:
    if isinstance(value, YMap):
        return ("map", value.line, [(k, value.lines[k], _tree(v)) for k, v in value.items()])
    if isinstance(value, YSeq):
        return ("seq", value.line, list(zip(value.lines, map(_tree, value), strict=True)))
    return (type(value).__name__, value)


def _slow(text: str, tmp_path: Path) -> object:
    reader = YamlFile(tmp_path / "doc.yaml", Problems())  # only its node conversion is used
    node = yaml.compose(text, Loader=_Loader)
    return None if node is None else reader._convert(node)


def _assert_same(text: str, tmp_path: Path) -> bool:
    """True when the fast reader took the text; then it must equal the PyYAML reading."""
    try:
        fast = fast_parse(text)
    except UnsupportedError:
        return False
    assert _tree(fast) == _tree(_slow(text, tmp_path)), text
    return True


def test_fast_reader_matches_pyyaml_on_every_shipped_file(tmp_path: Path) -> None:
    files = sorted(EXAMPLE.glob("*.yaml")) + sorted(DATA.glob("*/*.yaml"))
    taken = [f.name for f in files if _assert_same(f.read_text(), tmp_path)]
    assert {"vips.yaml", "hosts.yaml", "agents.yaml", "groups.yaml"} <= set(taken)


@pytest.mark.parametrize(
    "text",
    [
        "a:\n- 1\n- 2\nb: x\n",
        "- a: 1\n  b:\n  - x\n  - y\n- c\n-\n- [1, 2.5, yes, null, ~x, 0x1F, 1_000]\n",
        "a:\n  b:\n    c: 1:30\n  d: 2001:db8::1\nnext: 10.0.0.1\n",
        "k: v # comment\n# full comment\n\n  # indented comment\nl: [ a ,b ]  # c\n",
        "a: -1\nb: +2\nc: .5\nd: 1.5e+3\ne: No\nf: off\ng: 2024-01-02\nh: -x\n",
        "top:\n  - - nested\n",
        "a: 'quoted'\n",
        "a: b\n  c\n",
        "a: [x,\n  y]\n",
        "--- \na: 1\n",
        "a: &x 1\nb: *x\n",
        "a: {b: 1}\n",
        "a:\tb\n",
        "a: b: c\n",
        "a: x:\n",
        "? a\n: b\n",
        "a: b\n a: c\n",
        "- a\n - b\n",
        "- \n  a: 1\n",
        "a:\n-\n-\n  - x\n",
        "r1:\n- \n  hostname: h\n",
    ],
)
def test_fast_reader_matches_pyyaml_or_declines(text: str, tmp_path: Path) -> None:
    try:
        expected = _tree(_slow(text, tmp_path))
    except yaml.YAMLError:
        with pytest.raises(UnsupportedError):
            fast_parse(text)
        return
    with contextlib.suppress(UnsupportedError):  # declining is fine, a wrong answer is not
        assert _tree(fast_parse(text)) == expected


_hex = st.text(alphabet="0123456789abcdef", min_size=1, max_size=4)
_scalar = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-", max_size=8).map("n".__add__),
    st.lists(st.integers(0, 999), min_size=1, max_size=4).map(lambda p: ".".join(map(str, p))),
    st.lists(_hex, min_size=2, max_size=5).map(":".join),
    st.sampled_from(["yes", "No", "null", "true", "1_0", "0o7", "-3", "1:20", ".inf", "a/b"]),
)
_key = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", max_size=6).map("k".__add__)
# Lists hold scalars or mappings (`- - x` is beyond the fast subset).
_doc = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(
            st.one_of(_scalar, st.dictionaries(_key, inner, min_size=1, max_size=3)),
            min_size=1,
            max_size=4,
        ),
        st.dictionaries(_key, inner, min_size=1, max_size=4),
    ),
    max_leaves=12,
)


def _emit(value: object, indent: int, flow_lists: bool) -> list[str]:
    """Block YAML for a generated value (mappings and lists at ``indent``)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str):
                lines.append(f"{pad}{k}: {v}")
            elif flow_lists and isinstance(v, list) and all(isinstance(x, str) for x in v):
                lines.append(f"{pad}{k}: [{', '.join(v)}]")
            else:
                lines.append(f"{pad}{k}:")
                lines.extend(_emit(v, indent + 2, flow_lists))
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, str):
                lines.append(f"{pad}- {v}")
            else:
                sub = _emit(v, indent + 2, flow_lists)
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines.extend(sub[1:])
    return lines


@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.dictionaries(_key, _doc, min_size=1, max_size=4), flow=st.booleans())
def test_fast_reader_matches_pyyaml_on_generated_documents(
    doc: dict[str, object], flow: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    text = "\n".join(_emit(doc, 0, flow)) + "\n"
    expected = _tree(_slow(text, tmp_path_factory.getbasetemp()))
    assert _tree(fast_parse(text)) == expected, text


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.one_of(
        st.lists(st.integers(0, 2000).map(str) | st.just("01"), min_size=1, max_size=5).map(
            ".".join
        ),
        st.ip_addresses().map(str),
        st.text(alphabet="0123456789abcdef:./%", max_size=20),
    )
)
def test_fast_address_parse_matches_ipaddress(raw: str) -> None:
    result = parse_address(raw)
    try:
        expected = ipaddress.ip_address(raw)
    except ValueError:
        assert isinstance(result, str)
        return
    unusable = (
        expected.is_unspecified or expected.is_loopback or expected.is_multicast
        or expected.is_link_local or raw == "255.255.255.255"
        or (isinstance(expected, ipaddress.IPv6Address) and expected.scope_id is not None)
        or (isinstance(expected, ipaddress.IPv6Address) and expected.ipv4_mapped is not None)
    )  # fmt: skip
    assert isinstance(result, str) == bool(unusable), raw
    if not unusable:
        assert result == expected


_SHIPPED = [f.read_text() for f in sorted(EXAMPLE.glob("*.yaml")) + sorted(DATA.glob("*/*.yaml"))]
_EDITS = [*" -:[],#x1.\n", "- ", ": ", "\n  ", "\n- ", "a:", "[]", "yes", "~", " #", "1:2"]


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_reader_agrees_with_pyyaml_on_mutated_files(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Insert, delete and copy bits of the shipped files: whenever the fast reader takes the
    text, PyYAML must read the same values and lines (and not reject the text)."""
    text = data.draw(st.sampled_from(_SHIPPED))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        edit = data.draw(st.sampled_from(["insert", "delete", "copy"]))
        if edit == "insert":
            text = text[:at] + data.draw(st.sampled_from(_EDITS)) + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 4)) :]
        else:
            start = data.draw(st.integers(0, len(text)))
            text = text[:at] + text[start : start + 15] + text[at:]
    try:
        fast = fast_parse(text)
    except UnsupportedError:
        return
    assert _tree(fast) == _tree(_slow(text, tmp_path_factory.getbasetemp())), text
