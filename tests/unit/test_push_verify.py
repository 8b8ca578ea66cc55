"""What a push verifies, and how its result is shown (pure parts of lbauto.push)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

from lbauto.cli.present import print_result
from lbauto.core.model import POLICY_PREFIX, PbrBinding, PbrRule, StaticRoute
from lbauto.core.plan import RouterChange
from lbauto.push.pipeline import PushResult, RouterResult, Status, config_text
from lbauto.push.verify import Expectation, check
from tests.builders import ip, net

VIP = net("192.0.2.10/32")
D1, D2 = ip("198.51.100.21"), ip("198.51.100.22")


def test_a_route_rewritten_in_place_is_not_expected_absent() -> None:
    old = StaticRoute(VIP, D1, 1, 4242)
    new_distance = StaticRoute(VIP, D1, 5, 4242)
    moved = StaticRoute(VIP, D2, 1, 4242)
    exp = Expectation.of(remove=(old,), add=(new_distance,))
    assert exp.present == (new_distance,)
    assert exp.absent == ()  # same prefix and next hop: it is the new route now
    exp = Expectation.of_change(RouterChange("r1", remove=(old,), add=(moved,)))
    assert exp.absent == (old,)


def test_pbr_rule_identity_is_its_seq() -> None:
    exp = Expectation.of(remove=(PbrRule(3, VIP, D1),), add=(PbrRule(3, VIP, D2),))
    assert exp.absent == ()
    exp = Expectation.of(remove=(PbrRule(3, VIP, D1), PbrBinding("eth1")), add=())
    assert exp.absent == (PbrRule(3, VIP, D1), PbrBinding("eth1"))
    assert Expectation().empty and not exp.empty


class FrrPbrShow:
    """Answers the three ``show pbr ... json`` commands verify reads, from fixed router state."""

    def __init__(self, rules: list[PbrRule], bound: list[str]) -> None:
        self.rules, self.bound = rules, bound

    def cli(self, commands: list[str], encoding: str = "text") -> dict[str, Any]:
        assert encoding == "json"
        policies = [
            {"sequenceNumber": r.seq, "matchDst": str(r.prefix), "installed": True}
            for r in self.rules
        ]
        groups = [
            {"name": f"{POLICY_PREFIX}{r.seq}", "nexthops": [{"nexthop": str(r.next_hop)}]}
            for r in self.rules
        ]
        out = {
            "show pbr map json": [{"name": POLICY_PREFIX, "policies": policies}],
            "show pbr nexthop-groups json": groups,
            "show pbr interface json": [
                {"name": i, "policy": POLICY_PREFIX, "valid": True} for i in self.bound
            ],
        }
        return {c: out[c] for c in commands}


VIP6 = net("2001:db8:10::10/128")
D6 = ip("2001:db8:100::21")
RULE4, RULE6 = PbrRule(1, VIP, D1), PbrRule(2, VIP6, D6)
B4, B6 = PbrBinding("cli", 4), PbrBinding("cli", 6)


def test_frr_interface_stays_bound_when_one_family_goes() -> None:
    # The last IPv6 rule goes, IPv4 rules stay: FRR keeps `pbr-policy` on cli (one binding for
    # both families), so a still-bound cli is correct.
    after = FrrPbrShow([RULE4], ["cli"])
    observed = (RULE4, RULE6, B4, B6)
    exp = Expectation.of(remove=(RULE6, B6), add=(), observed=observed)
    assert check(after, "frr", exp) == []
    assert check(after, "frr", Expectation.of(remove=(RULE6, B6), add=())) == []
    # Not in the IPv6 rule's case: it must be gone.
    stale = FrrPbrShow([RULE4, RULE6], ["cli"])
    assert check(stale, "frr", exp) == [f"pbr-map {POLICY_PREFIX} seq 2 still present"]


def test_frr_interface_must_be_unbound_when_no_binding_remains() -> None:
    still_bound = FrrPbrShow([], ["cli"])
    problem = f"policy {POLICY_PREFIX} still applied on interface cli"
    both = Expectation.of(remove=(RULE4, RULE6, B4, B6), add=())
    assert check(still_bound, "frr", both) == [problem]
    last = Expectation.of(remove=(RULE4, B4), add=(), observed=(RULE4, B4))
    assert check(still_bound, "frr", last) == [problem]
    assert check(FrrPbrShow([], []), "frr", last) == []


def test_config_text() -> None:
    assert config_text([]) == ""
    assert config_text(["interface x", " pbr-policy LBAUTO"]) == "interface x\n pbr-policy LBAUTO\n"


def test_result_table_and_json() -> None:
    result = PushResult(
        (
            RouterResult("r1", "frr", Status.CHANGED, "+ip route a\n-ip route b", 0.5),
            RouterResult("r2", "eos", Status.UNCHANGED, "", 0.2),
            RouterResult("r3", "frr", Status.FAILED, "+x", 1.0, "verification failed: r"),
        ),
        dry_run=True,
    )
    assert not result.ok
    assert [r.router for r in result.failed] == ["r3"]
    console = Console(width=200, record=True)
    print_result(console, result)
    text = console.export_text()
    assert "+ip route a" in text and "-ip route b" in text
    assert "would change" in text
    assert "verification failed" in text
    data = json.loads(json.dumps(result.to_json()))
    assert data["dry_run"] is True
    assert [r["diff_lines"] for r in data["routers"]] == [2, 0, 1]
    assert data["routers"][1]["status"] == "unchanged"
