"""FRR NAPALM driver: NAPALM's shared contract and the pure parsers (recorded FRR 8.4 output)."""

from __future__ import annotations

import inspect
import json

import napalm
import pytest
from napalm.base import NetworkDriver
from napalm.base.exceptions import ConnectionClosedException, ConnectionException
from napalm.base.test.helpers import test_model as napalm_model_ok

import napalm_frr
from napalm_frr import FRRDriver
from napalm_frr.parse import (
    diff_size,
    format_reload_diff,
    parse_age,
    parse_version,
    routes_from_json,
    sanitize,
)

IMPLEMENTED = [
    "__init__",
    "get_interfaces",
    "get_interfaces_ip",
    "get_interfaces_counters",
    "get_arp_table",
    "get_ipv6_neighbors_table",
    "get_bgp_neighbors",
    "get_bgp_config",
    "get_lldp_neighbors",
    "get_environment",
    "get_network_instances",
    "open",
    "close",
    "is_alive",
    "get_facts",
    "get_config",
    "load_merge_candidate",
    "load_replace_candidate",
    "compare_config",
    "commit_config",
    "confirm_commit",
    "has_pending_commit",
    "discard_config",
    "rollback",
    "get_route_to",
    "cli",
]


def test_napalm_finds_the_driver_by_name() -> None:
    assert napalm.get_network_driver("frr") is FRRDriver
    assert napalm_frr.__all__ == ["FRRDriver"]


@pytest.mark.parametrize("method", IMPLEMENTED)
def test_method_signatures_match_network_driver(method: str) -> None:
    """NAPALM's own check (napalm/base/test/base.py test_method_signatures), per method."""
    ours = inspect.getfullargspec(getattr(FRRDriver, method))
    base = inspect.getfullargspec(getattr(NetworkDriver, method))
    assert (ours.args, ours.defaults, ours.varargs, ours.varkw) == (
        base.args,
        base.defaults,
        base.varargs,
        base.varkw,
    )
    assert getattr(FRRDriver, method) is not getattr(NetworkDriver, method)


@pytest.mark.parametrize(
    "options",
    [
        {"pathspace": "a;reboot"},
        {"pathspace": "x y"},
        {"netns": "$(id)"},
        {"state_dir": "relative/dir"},
        {"state_dir": "/tmp/a b"},
        {"transport": "telnet"},
    ],
)
def test_unsafe_options_are_refused(options: dict[str, str]) -> None:
    with pytest.raises(ConnectionException):
        FRRDriver("r1", "u", "", optional_args=options)


def test_calls_before_open_raise_connection_closed() -> None:
    drv = FRRDriver("r1", "u", "", optional_args={"transport": "local"})
    assert drv.is_alive() == {"is_alive": False}
    with pytest.raises(ConnectionClosedException):
        drv.get_config()


def test_unknown_options_go_to_netmiko() -> None:
    drv = FRRDriver("r1", "u", "", optional_args={"pathspace": "p1", "ssh_config_file": "/x"})
    assert drv.netmiko_args == {"ssh_config_file": "/x"}
    # default: resolved on the router ($HOME/.local/state/napalm-frr/p1), never /var/tmp
    assert drv.state_dir is None
    assert drv.startup_path == "/etc/frr/p1/frr.conf"
    assert drv.platform == "frr"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("vtysh", "must be an absolute path"),
        ("../bin/vtysh", "must be an absolute path"),
        ("/nonexistent/vtysh", "not an existing executable"),
        ("/etc/os-release", "not an existing executable"),  # a file, not executable
        ("/usr/bin", "not an existing executable"),  # a directory
        ("/bin/sh -c id", "invalid vtysh"),
    ],
)
def test_local_transport_refuses_executables_at_construction(value: str, error: str) -> None:
    """Issue 11 item 6: the local transport would run whatever `vtysh` names."""
    with pytest.raises(ConnectionException, match=error):
        FRRDriver("r1", "u", "", optional_args={"transport": "local", "vtysh": value})


def test_ssh_transport_refuses_relative_executables_before_connecting() -> None:
    with pytest.raises(ConnectionException, match="must be an absolute path"):
        FRRDriver("r1", "u", "", optional_args={"frr_reload": "frr-reload.py"})


@pytest.mark.parametrize("commit_id", ["../../etc", "20261201T000000-zz", "x; rm -rf /"])
def test_commit_id_option_is_checked(commit_id: str) -> None:
    with pytest.raises(ConnectionException, match="invalid commit_id"):
        FRRDriver("r1", "u", "", optional_args={"commit_id": commit_id})


# --- frr-reload --test output, recorded from FRR 8.4.4 --------------------------------------

RUNNING = """frr version 8.4.4
hostname vm
!
ip route 192.0.2.10/32 198.51.100.10 tag 4242 200
ip route 192.0.2.11/32 198.51.100.22 tag 4242
!
interface v0
 pbr-policy LBAUTO
exit
!
pbr-map LBAUTO seq 10
 match dst-ip 192.0.2.12/32
 set nexthop 198.51.100.23
exit
!
end
"""

MERGE_OUTPUT = """
Lines To Add
============
no ip route 192.0.2.10/32 198.51.100.21
no ip route 192.0.2.11/32 198.51.100.22
ip route 192.0.2.13/32 198.51.100.22 tag 4242
pbr-map LBAUTO seq 20
pbr-map LBAUTO seq 20
 match dst-ip 192.0.2.14/32
pbr-map LBAUTO seq 20
 set nexthop 198.51.100.23
interface v0
 pbr-policy LBAUTO
"""

DELETE_OUTPUT = """
Lines To Delete
===============
interface v0
 no pbr-policy LBAUTO
pbr-map LBAUTO seq 10
 no set nexthop 198.51.100.23

Lines To Add
============
no ip route 192.0.2.11/32 198.51.100.22 tag 4242
"""


def test_merge_diff_is_one_ordered_list_without_noop_removals() -> None:
    diff = format_reload_diff(MERGE_OUTPUT, RUNNING)
    assert diff.splitlines() == [
        # "no ip route 192.0.2.10/32 198.51.100.21" is absent from RUNNING: a no-op, left out
        "-ip route 192.0.2.11/32 198.51.100.22",
        "+ip route 192.0.2.13/32 198.51.100.22 tag 4242",
        "+pbr-map LBAUTO seq 20",
        "+ match dst-ip 192.0.2.14/32",
        "+ set nexthop 198.51.100.23",
        " interface v0",
        "+ pbr-policy LBAUTO",
    ]
    assert diff_size(diff) == 6


def test_delete_section_and_context_lines() -> None:
    diff = format_reload_diff(DELETE_OUTPUT, RUNNING)
    assert diff.splitlines() == [
        " interface v0",
        "- pbr-policy LBAUTO",
        " pbr-map LBAUTO seq 10",
        "- set nexthop 198.51.100.23",
        "-ip route 192.0.2.11/32 198.51.100.22 tag 4242",
    ]


def test_no_changes_is_an_empty_diff() -> None:
    assert format_reload_diff("\nLines To Add\n============\n", RUNNING) == ""
    assert format_reload_diff("", RUNNING) == ""


# --- show ip route json, recorded from FRR 8.4.4 ---------------------------------------------

ROUTE_JSON = {
    "192.0.2.10/32": [
        {
            "prefix": "192.0.2.10/32",
            "protocol": "static",
            "vrfName": "default",
            "selected": True,
            "distance": 1,
            "metric": 0,
            "installed": True,
            "tag": 4242,
            "table": 254,
            "uptime": "00:01:05",
            "nexthops": [
                {"fib": True, "ip": "198.51.100.21", "interfaceName": "v0", "active": True}
            ],
        },
        {
            "prefix": "192.0.2.10/32",
            "protocol": "static",
            "vrfName": "default",
            "distance": 200,
            "metric": 0,
            "tag": 4242,
            "table": 254,
            "uptime": "1d02h03m",
            "nexthops": [
                {"fib": True, "ip": "198.51.100.10", "interfaceName": "v0", "active": True},
                {"fib": True, "ip": "198.51.100.11", "interfaceName": "v0", "active": True},
            ],
        },
    ]
}


def test_routes_one_entry_per_next_hop_in_napalm_model() -> None:
    routes = routes_from_json(ROUTE_JSON)
    entries = routes["192.0.2.10/32"]
    assert [(e["next_hop"], e["preference"], e["current_active"]) for e in entries] == [
        ("198.51.100.21", 1, True),
        ("198.51.100.10", 200, False),
        ("198.51.100.11", 200, False),
    ]
    assert entries[0]["age"] == 65
    assert entries[1]["age"] == 93780
    assert entries[0]["selected_next_hop"] is True
    assert entries[1]["selected_next_hop"] is False
    assert entries[1]["inactive_reason"] == "not selected"
    assert entries[0]["protocol_attributes"]["tag"] == 4242
    assert all(napalm_model_ok(napalm.base.models.RouteDict, e) for e in entries)


def test_route_protocol_filter_and_empty_lookup() -> None:
    assert routes_from_json(ROUTE_JSON, protocol="bgp") == {}
    assert routes_from_json(json.loads('{"0.0.0.0/0":[]}')) == {}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:00:16", 16),
        ("12:00:01", 43201),
        ("1d02h03m", 93780),
        ("02w3d04h", 1483200),
        ("never", -1),
        ("", -1),
    ],
)
def test_parse_age(text: str, seconds: int) -> None:
    assert parse_age(text) == seconds


def test_sanitize_removes_secrets_only() -> None:
    config = (
        "hostname r1\npassword zebra123\nenable password en4ble\n"
        "router bgp 65000\n neighbor 192.0.2.1 password s3cr3t\n"
        "ip route 192.0.2.10/32 198.51.100.21 tag 4242\n"
    )
    clean = sanitize(config)
    for secret in ("zebra123", "en4ble", "s3cr3t"):
        assert secret not in clean
    assert "ip route 192.0.2.10/32 198.51.100.21 tag 4242" in clean
    assert " neighbor 192.0.2.1 password <removed>" in clean


def test_parse_version() -> None:
    text = "FRRouting 8.4.4 (vm) on Linux(6.1.0).\nCopyright 1996-2005 Kunihiro Ishiguro, et al.\n"
    assert parse_version(text) == ("8.4.4", "vm")
    assert parse_version("garbage") == ("", "")


def test_split_waves_gives_each_prefix_one_route_line_per_run() -> None:
    from napalm_frr.parse import split_waves

    pbr = "pbr-map LBAUTO seq 1\n match dst-ip 192.0.2.11/32\n set nexthop 198.51.100.24\nexit\n"
    lines = [
        "no ip route 192.0.2.14/32 198.51.100.31\n",
        "ip route 192.0.2.17/32 198.51.100.10 tag 4242 200\n",
        "ip route 192.0.2.17/32 198.51.100.30 tag 4242\n",
        "ip route 192.0.2.14/32 198.51.100.26 tag 4242\n",
        pbr,
        "ipv6 route 2001:db8:10::10/128 2001:db8:100::10 tag 4242 200\n",
    ]
    assert split_waves("".join(lines)) == [
        lines[0] + lines[1] + pbr + lines[5],
        lines[2] + lines[3],
    ]
    single = "ip route 192.0.2.1/32 198.51.100.1 tag 1\n"
    assert split_waves(single) == [single]
