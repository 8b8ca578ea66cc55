"""The steady-state fast paths give what the plain paths give (issue 16 item 1).

The state loader's fast reader must accept exactly what the pydantic models accept and build an
equal state; the planner's shared and derived indexes must give the plan a full index per router
gives. bench/bench_steady.py times them; these tests hold them to the plain paths.
"""

from __future__ import annotations

import copy
import importlib.util
import ipaddress
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from lbauto.core import _index
from lbauto.core.intent import router_intent
from lbauto.core.model import ObservedRouter, ObservedState, PbrRule, StaticRoute
from lbauto.core.planner import make_plan
from lbauto.errors import StateError
from lbauto.inventory import load_inventory
from lbauto.inventory import statefile as sf
from tests.builders import REPO


def bench_module(name: str) -> ModuleType:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(REPO / "bench"))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """A 60-VIP x 15-router inventory (all platforms, PBR ones too), its deployed state and a
    state with 10 % drift, as JSON documents."""
    root = tmp_path_factory.mktemp("pf-steady")
    bench_core, bench_steady = bench_module("bench_core"), bench_module("bench_steady")
    bench_core.write_inventory(root, 60, 15)
    docs = []
    for drift in (0.0, 0.1):
        path = root / f"state-{drift}.json"
        bench_steady.write_state(root, path, drift)
        docs.append(json.loads(path.read_text()))
    return root, docs[0], docs[1]


def with_models(data: object) -> ObservedState:
    """The state the pydantic models read from ``data`` (the plain path)."""
    doc = sf._StateDoc.model_validate(data)
    agents = {
        n: sf._agent("x", n, [sf._agent_vip(v) for v in a.vips]) for n, a in doc.agents.items()
    }
    return ObservedState(
        agents=agents, routers={n: sf._router(n, r) for n, r in doc.routers.items()}
    )


def test_fast_reader_reads_what_the_models_read(
    fleet: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    _, deployed, drifted = fleet
    for doc in (deployed, drifted):
        assert sf._FastReader().read(doc)  # the fast path takes these documents
        assert sf.state_from_json(doc, "x") == with_models(doc)


def test_routers_with_equal_objects_share_one_set(
    fleet: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    _, deployed, drifted = fleet
    state = sf.state_from_json(deployed, "x")
    sets = {id(r.objects) for r in state.routers.values()}
    assert len(sets) < len(state.routers) / 3  # a few profiles, not one set per router
    drifted_state = sf.state_from_json(drifted, "x")
    plain = with_models(drifted)
    for name, router in drifted_state.routers.items():
        assert router.objects == frozenset(plain.routers[name].objects)


def route_doc(distance: Any) -> dict[str, Any]:
    return {"prefix": "192.0.2.10/32", "next_hop": "198.51.100.10", "distance": distance, "tag": 1}


@pytest.mark.parametrize("bad", [True, 1.0, "1", None])
def test_a_value_equal_to_a_seen_one_is_still_checked(bad: object) -> None:
    # r1's route makes (..., 1, ...) a known route; r2's `true` / 1.0 compare equal to 1 in
    # Python and must not pass for it. The error is the models' own.
    doc = {"routers": {"r1": {"routes": [route_doc(1)]}, "r2": {"routes": [route_doc(bad)]}}}
    with pytest.raises(StateError, match=r"^x: \$\.routers\.r2\.routes\[0\]\.distance: expected"):
        sf.state_from_json(doc, "x")


def test_errors_are_the_models_errors(
    fleet: tuple[Path, dict[str, Any], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, deployed, _ = fleet
    # The routers the damage goes to and one undamaged: the models' plain path (the control)
    # validates the whole document each time, so a small one keeps this test fast.
    deployed = {
        "agents": deployed["agents"],
        "routers": {n: deployed["routers"][n] for n in ("r1", "r2", "r3", "r7", "r8")},
    }
    for path, value in (
        (("routers", "r3", "routes", 5, "next_hop"), "198.51.100.300"),
        (("routers", "r7", "routes", 2, "extra"), 1),
        (("routers", "r8", "routes", 0, "prefix"), ["192.0.2.1/32"]),
        (("agents", "lb1", "vips", 4, "mode"), "both"),
        (("routers", "r1", "pbr"), [{"seq": 1}]),
        (("routers", "r1", "bindings"), [{"interface": "eth1;reload"}]),
    ):
        doc = copy.deepcopy(deployed)
        where: Any = doc
        for step in path[:-1]:
            where = where[step]
        where[path[-1]] = value
        with pytest.raises(StateError) as fast:
            sf.state_from_json(doc, "x")
        with monkeypatch.context() as m:  # control: the models alone, as before the fast reader
            m.setattr(sf._FastReader, "read", lambda self, data: sf._fail("off"))
            with pytest.raises(StateError) as plain:
                sf.state_from_json(doc, "x")
        assert str(fast.value) == str(plain.value)
        assert str(fast.value).startswith("x: $.")


def test_a_missing_route_key_is_reported() -> None:
    route = route_doc(1)
    del route["tag"]
    with pytest.raises(StateError, match=r"\$\.routers\.r1\.routes\[0\]\.tag: missing"):
        sf.state_from_json({"routers": {"r1": {"routes": [route]}}}, "x")


def unshared(state: ObservedState) -> ObservedState:
    """The same state with one set of its own per router (no sharing to find)."""
    return ObservedState(
        agents=state.agents,
        routers={n: ObservedRouter(n, frozenset(set(r.objects))) for n, r in state.routers.items()},
    )


def seq_drift(state: ObservedState) -> ObservedState:
    """``state`` with drift that moves PBR seqs: every PBR router lost VIP X's rule (X takes
    the lowest free seq, its old one), the second also holds a foreign rule at that seq (X
    takes the next there: its intent differs where its observed objects do not), and the third
    holds another VIP's rule at a seq no one uses."""
    routers = dict(state.routers)
    pbr = sorted(n for n, r in routers.items() if any(isinstance(o, PbrRule) for o in r.objects))
    assert len(pbr) >= 3
    x = min((o for o in routers[pbr[0]].objects if isinstance(o, PbrRule)), key=lambda r: r.seq)
    for n in pbr:
        routers[n] = ObservedRouter(
            n,
            frozenset(
                o
                for o in routers[n].objects
                if not (isinstance(o, PbrRule) and o.prefix == x.prefix)
            ),
        )
    foreign = PbrRule(x.seq, ipaddress.ip_network("198.51.100.77/32"), x.next_hop)
    routers[pbr[1]] = ObservedRouter(pbr[1], routers[pbr[1]].objects | {foreign})
    moved = next(o for o in routers[pbr[2]].objects if isinstance(o, PbrRule))
    routers[pbr[2]] = ObservedRouter(
        pbr[2], routers[pbr[2]].objects - {moved} | {PbrRule(650, moved.prefix, moved.next_hop)}
    )
    return ObservedState(agents=state.agents, routers=routers)


def test_shared_and_derived_indexes_plan_like_full_ones(
    fleet: tuple[Path, dict[str, Any], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, deployed, drifted = fleet
    inv = load_inventory(root)
    # More drift on top: a foreign route, a changed distance, a router emptied.
    state = sf.state_from_json(drifted, "x")
    routers = dict(state.routers)
    r2 = routers["r2"].objects
    some = next(o for o in r2 if isinstance(o, StaticRoute))
    routers["r2"] = ObservedRouter(
        "r2", r2 - {some} | {StaticRoute(some.prefix, some.next_hop, 77, some.tag)}
    )
    routers["r4"] = ObservedRouter("r4")
    more = ObservedState(agents=state.agents, routers=routers)
    for observed in (sf.state_from_json(deployed, "x"), state, more, seq_drift(state)):
        fast = make_plan(inv, observed)
        # control: index every router, compute every intent whole
        monkeypatch.setattr(_index.IndexCache, "SHARE", -1.0)
        monkeypatch.setattr(_index.IntentCache, "DERIVE", False)
        full = make_plan(inv, unshared(observed))
        monkeypatch.undo()
        assert fast == full
    assert make_plan(inv, sf.state_from_json(deployed, "x")).transitions
    assert not [t for t in make_plan(inv, sf.state_from_json(deployed, "x")).transitions if t.steps]


def test_a_derived_index_equals_a_full_one(
    fleet: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    _, _, drifted = fleet
    state = sf.state_from_json(drifted, "x")
    cache = _index.IndexCache(state)
    inv_routers = sorted(state.routers)
    derived = 0
    for name in inv_routers:
        objects = state.routers[name].objects
        got = cache._index(objects)
        want = _index.index_objects(objects)
        derived += got.base is not None
        assert (got.by_prefix, got.addresses, got.bindings, got.rules) == (
            want.by_prefix,
            want.addresses,
            want.bindings,
            want.rules,
        )
    assert derived  # the drifted routers took the derived path


def test_a_derived_intent_equals_a_full_one(
    fleet: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    """PBR routers whose observed rules differ (drift) derive their intent from the first one
    of their settings; each must equal the intent computed whole for that router, seqs too."""
    root, _, drifted = fleet
    inv = load_inventory(root)
    state = sf.state_from_json(drifted, "x")
    observed = seq_drift(state)
    agents = sorted(inv.agents, key=lambda a: a.name)
    cache = _index.IntentCache(inv.vips, agents)
    indexes = _index.IndexCache(observed)
    derived = 0
    for router in sorted(inv.routers, key=lambda r: r.name):
        obs = indexes.get(router)
        intent, target = cache.get(router, obs)
        derived += cache.origin(target)[0] is not target
        want = router_intent(inv.vips, agents, router, obs.rules)
        assert intent == want, router.name
        alone = _index.IntentCache(inv.vips, agents)
        assert target == alone.get(router, obs)[1], router.name
    assert derived >= 2  # the drifted PBR routers took the derived path
