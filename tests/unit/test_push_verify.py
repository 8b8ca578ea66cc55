"""What a push verifies, and how its result is shown (pure parts of lbauto.push)."""

from __future__ import annotations

import ipaddress
import json

from rich.console import Console

from lbauto.model import PbrBinding, PbrRule, StaticRoute
from lbauto.plan import RouterChange
from lbauto.push.pipeline import PushResult, RouterResult, Status, config_text, print_result
from lbauto.push.verify import Expectation

VIP = ipaddress.ip_network("192.0.2.10/32")
D1, D2 = ipaddress.ip_address("198.51.100.21"), ipaddress.ip_address("198.51.100.22")


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
