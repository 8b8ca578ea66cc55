"""The FRR driver's merge diff for static-route candidates, computed without frr-reload
(``napalm_frr.parse.static_only`` / ``static_merge_diff``); the same diffs as frr-reload on real
FRR: tests/integration/test_frr_vtysh_starts.py."""

from __future__ import annotations

import pytest

from napalm_frr.parse import format_reload_diff, static_merge_diff, static_only

RUNNING = """frr version 8.4.4
frr defaults traditional
hostname r1
ip route 192.0.2.10/32 198.51.100.10 tag 4242 200
ip route 192.0.2.11/32 198.51.100.21 tag 4242
ipv6 route 2001:db8:10::10/128 2001:db8:100::10 tag 4242 200
!
interface srv
 ip address 198.51.100.1/24
exit
!
end
"""


def diff(candidate: str) -> str:
    return format_reload_diff(static_merge_diff(candidate, RUNNING), RUNNING)


@pytest.mark.parametrize(
    "candidate",
    [
        "ip route 192.0.2.10/32 198.51.100.21 tag 4242\n",
        "no ip route 192.0.2.10/32 198.51.100.10\n",
        "ip route 192.0.2.12/32 198.51.100.10 tag 4242 200\nip route 192.0.2.12/32 198.51.100.11\n",
        "ipv6 route 2001:db8:10::11/128 2001:db8:100::10 tag 4242\n",
        "no ipv6 route 2001:db8:10::10/128 2001:db8:100::10\n\n",
    ],
)
def test_lbauto_static_route_candidates_take_the_fast_path(candidate: str) -> None:
    assert static_only(candidate)


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "\n",
        "ip route 192.0.2.10/24 198.51.100.21\n",  # host bits set: FRR would print it otherwise
        "ipv6 route 2001:DB8:10::11/128 2001:db8:100::10\n",  # not as FRR prints it
        "ip route 192.0.2.10/32 198.51.100.21  tag 4242\n",  # two blanks
        "ip route 192.0.2.10/32 srv\n",  # interface next hop
        "ip route 192.0.2.10/32 198.51.100.21 vrf blue\n",
        "ip route 192.0.2.10/32 2001:db8:100::10\n",  # mixed families
        "ipv6 route 192.0.2.10/32 198.51.100.21\n",
        " ip route 192.0.2.10/32 198.51.100.21\n",  # inside a context
        "ip route 192.0.2.10/32 198.51.100.21\ninterface srv\n description x\n",
        "ip route 192.0.2.10/32 198.51.100.21\n!\n",
    ],
)
def test_anything_else_goes_to_frr_reload(candidate: str) -> None:
    assert not static_only(candidate)


def test_a_new_route_is_added() -> None:
    assert diff("ip route 192.0.2.10/32 198.51.100.21 tag 4242\n") == (
        "+ip route 192.0.2.10/32 198.51.100.21 tag 4242"
    )


def test_a_route_the_router_has_is_no_change() -> None:
    assert diff("ip route 192.0.2.11/32 198.51.100.21 tag 4242\n") == ""
    assert static_merge_diff("ip route 192.0.2.11/32 198.51.100.21 tag 4242\n", RUNNING) == ""


def test_the_same_route_with_another_distance_is_an_addition() -> None:
    assert diff("ip route 192.0.2.11/32 198.51.100.21 tag 4242 200\n") == (
        "+ip route 192.0.2.11/32 198.51.100.21 tag 4242 200"
    )


def test_a_removal_shows_as_minus_and_a_removal_of_nothing_not_at_all() -> None:
    cand = "no ip route 192.0.2.10/32 198.51.100.10\nno ip route 192.0.2.99/32 198.51.100.10\n"
    assert diff(cand) == "-ip route 192.0.2.10/32 198.51.100.10"


def test_lines_keep_the_candidate_order_once_each() -> None:
    cand = (
        "ip route 192.0.2.12/32 198.51.100.10 tag 4242\n"
        "no ipv6 route 2001:db8:10::10/128 2001:db8:100::10\n"
        "ip route 192.0.2.12/32 198.51.100.10 tag 4242\n"
        "ipv6 route 2001:db8:10::10/128 2001:db8:100::21 tag 4242\n"
    )
    assert diff(cand).splitlines() == [
        "+ip route 192.0.2.12/32 198.51.100.10 tag 4242",
        "-ipv6 route 2001:db8:10::10/128 2001:db8:100::10",
        "+ipv6 route 2001:db8:10::10/128 2001:db8:100::21 tag 4242",
    ]


def test_running_lines_are_matched_as_frr_reload_keys_them() -> None:
    """frr-reload compresses blanks and normalises IPv6 words on both sides; only top-level
    lines are contexts of their own (an indented line belongs to its block)."""
    running = (
        "ipv6 route 2001:DB8:10::0012/128  2001:db8:100:0::10 tag 4242\n"
        "vrf blue\n ip route 192.0.2.13/32 198.51.100.10 tag 4242\nexit-vrf\n"
    )
    same = "ipv6 route 2001:db8:10::12/128 2001:db8:100::10 tag 4242\n"
    assert static_merge_diff(same, running) == ""
    inside = "ip route 192.0.2.13/32 198.51.100.10 tag 4242\n"
    assert static_merge_diff(inside, running) == f"\nLines To Add\n============\n{inside}"
