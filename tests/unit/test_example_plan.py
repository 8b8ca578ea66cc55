"""The example inventory planned against inventories/example/state.json shows every kind.

The state is the example network at an earlier point (web had 198.51.100.31 instead of .23, api
had two DIPs, shop pointed at .31, blog had one DIP, a VIP `old` 192.0.2.18 existed, `new` did
not), plus two hand-made drifts: mail's bypass route was deleted on r3 and idle's LB route on r4.
"""

from __future__ import annotations

import ipaddress

import pytest

from lbauto.core.model import Inventory, ObservedState, PbrRule
from lbauto.core.plan import Action, Kind, Plan
from lbauto.core.planner import make_plan
from lbauto.inventory import load_inventory
from lbauto.inventory.statefile import load_state
from tests.builders import EXAMPLE
from tests.simulate import apply_plan


@pytest.fixture(scope="module")
def example() -> tuple[Inventory, ObservedState, Plan]:
    inv = load_inventory(EXAMPLE)
    observed = load_state(EXAMPLE / "state.json")
    return inv, observed, make_plan(inv, observed)


def test_every_kind_appears(example: tuple[Inventory, ObservedState, Plan]) -> None:
    _, _, plan = example
    assert {t.vip: t.kind for t in plan.transitions} == {
        "web": Kind.REBALANCE,
        "api": Kind.BYPASS_ENABLE,
        "idle": Kind.REPAIR,
        "legacy": Kind.NONE,
        "shop": Kind.BYPASS_MOVE,
        "blog": Kind.BYPASS_DISABLE,
        "mail": Kind.BYPASS_ENABLE,
        "new": Kind.CREATE,
        "old": Kind.DELETE,
        "v6web": Kind.NONE,
    }
    assert {t.kind for t in plan.transitions} == set(Kind)


def test_drift_is_repaired_only_where_it_is(example: tuple[Inventory, ObservedState, Plan]) -> None:
    _, _, plan = example
    by_name = {t.vip: t for t in plan.transitions}
    mail_pushes = [s for s in by_name["mail"].steps if s.action is Action.ROUTER_PUSH]
    assert [[rc.router for rc in s.routers] for s in mail_pushes] == [["r3"]]
    idle_pushes = [s for s in by_name["idle"].steps if s.action is Action.ROUTER_PUSH]
    assert [[rc.router for rc in s.routers] for s in idle_pushes] == [["r4"]]


def test_new_pbr_rules_take_free_seqs_and_others_keep_theirs(
    example: tuple[Inventory, ObservedState, Plan],
) -> None:
    _, _, plan = example
    r2 = {rp.router: rp for rp in plan.routers}["r2"]
    added = {str(o.prefix): o.seq for o in r2.add if isinstance(o, PbrRule)}
    # api and new are new rules; shop moves to .26 keeping seq 1
    assert added == {"192.0.2.11/32": 5, "192.0.2.14/32": 1, "192.0.2.17/32": 6}
    shop_new = [o for o in r2.add if isinstance(o, PbrRule) and o.seq == 1]
    assert shop_new[0].next_hop == ipaddress.ip_address("198.51.100.26")


def test_applying_the_example_plan_converges(
    example: tuple[Inventory, ObservedState, Plan],
) -> None:
    inv, observed, plan = example
    again = make_plan(inv, apply_plan(inv, observed, plan))
    assert not again.has_changes
    assert make_plan(inv, observed) == plan
