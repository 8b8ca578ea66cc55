"""The plan document's fast paths (issue 16 item 0) give what the plain ones give: object and
step documents, the router grouping that reuses the previous step's partition, the compact JSON
writer, renders that share one addition tuple between platforms, and a light presentation
module."""

from __future__ import annotations

import io
import ipaddress
import json
import subprocess
import sys
from typing import Any

from lbauto.cli.present import write_compact_json
from lbauto.core.model import (
    BgpAccept,
    BgpGroup,
    BgpPeer,
    Drain,
    Mode,
    ObservedState,
    PbrBinding,
    PbrRule,
    RouterObject,
    StaticRoute,
    Transit,
)
from lbauto.core.plan import Action, RouterChange, Step, object_to_json
from lbauto.orchestrate.plandoc import _Builder
from lbauto.platforms import render
from lbauto.platforms.render import render_changes
from tests.builders import ip, net
from tests.unit.test_plan_scale import _fleet
from tests.unit.test_render import router


def _objects() -> list[RouterObject]:
    return [
        StaticRoute(net("198.18.0.1/32"), ip("198.51.100.10"), 200, 4242),
        StaticRoute(net("2001:db8::1/128"), ip("2001:db8:1::10"), 1, 7),
        PbrRule(3, net("198.18.0.1/32"), ip("198.19.0.1")),
        PbrRule(4, net("2001:db8::1/128"), ip("2001:db8:2::1")),
        PbrBinding("eth1", 4),
        BgpAccept(net("198.18.0.1/32")),
        BgpPeer(ip("198.51.100.10")),
        BgpGroup(65000, 65001, 4, True, 300, 3),
    ]


def test_object_documents_are_object_to_json() -> None:
    b = _Builder(_fleet(1, 1), ObservedState())
    objs = tuple(_objects())
    assert b.objects(objs) == [object_to_json(o) for o in objs]
    # equal addresses in distinct objects convert to the same text
    again = tuple(_objects())
    assert b.objects(again) == b.objects(objs)


def test_step_documents_are_step_to_json() -> None:
    b = _Builder(_fleet(1, 1), ObservedState())
    dips = (ip("198.19.0.1"), ip("198.19.0.2"))
    steps = [
        Step(Action.SET_VIP, mode=Mode.MULTI, dips=dips, flow_tracking=True),
        Step(Action.SET_VIP, mode=None, dips=(), flow_tracking=False),
        Step(
            Action.SET_VIP,
            mode=Mode.SINGLE,
            dips=dips[:1],
            flow_tracking=False,
            transit=Transit(dips[1], 60.0),
            drain=Drain(dips[1:], 30.0),
        ),
        Step(Action.WAIT_DRAIN, drain=Drain(dips, 30.0)),
        Step(Action.FLOW_TRACKING, flow_tracking=False),
        Step(Action.REMOVE_VIP),
    ]
    for s in steps:
        assert json.dumps(b.step(s)) == json.dumps(s.to_json())


def _reference_groups(rcs: tuple[RouterChange, ...]) -> list[tuple[list[str], int, int]]:
    """(router names, id(remove), id(add)) per group, by first occurrence: the plain loop."""
    groups: dict[tuple[int, int], list[str]] = {}
    for rc in rcs:
        groups.setdefault((id(rc.remove), id(rc.add)), []).append(rc.router)
    return [(names, r, a) for (r, a), names in groups.items()]


def test_router_groups_follow_each_steps_own_partition() -> None:
    b = _Builder(_fleet(1, 1), ObservedState())
    shared = [(StaticRoute(net(f"198.18.0.{i}/32"), ip("198.51.100.10"), 200, 1),) for i in (1, 2)]
    a, c = shared

    def step(*changes: tuple[str, tuple[StaticRoute, ...]]) -> tuple[RouterChange, ...]:
        return tuple(RouterChange(name, (), add) for name, add in changes)

    steps = [
        step(("r0", a), ("r1", c), ("r2", a)),
        step(("r0", c), ("r1", a), ("r2", c)),  # the same partition, other tuples
        step(("r0", a), ("r1", a), ("r2", a)),  # two groups became one
        step(("r0", a), ("r1", c), ("r2", c)),  # a group split
        step(("r0", a), ("r1", c), ("r3", a)),  # another router
        step(("r0", a), ("r1", c), ("r3", a)),
        step(("r0", a)),
        step(),
    ]
    for rcs in steps:
        got = b.step_routers(rcs)
        sets = list(b.sets)
        want = _reference_groups(rcs)
        assert [list(sets[g["set"]]) for g in got] == [names for names, _, _ in want]
        for g, (names, _, _) in zip(got, want, strict=True):
            first = next(rc for rc in rcs if rc.router == names[0])
            assert g["add"] == [object_to_json(o) for o in first.add]


def test_compact_json_is_json_dumps_compact() -> None:
    doc: dict[str, Any] = {
        "version": 2,
        "transitions": [{"vip": f"v{i}", "é": [i, 1.5, None, True]} for i in range(700)],
        "change_lists": [[f'line {i} \u2028 "q"' for i in range(600)], []],
        "short": [1, 2],
        "empty": [],
        "nested": {"a": {"b": [1.0e300, -0.0]}},
    }
    buf = io.StringIO()
    write_compact_json(buf, doc)
    assert buf.getvalue() == json.dumps(doc, separators=(",", ":")) + "\n"


def test_one_addition_tuple_renders_alike_for_each_platform_it_goes_to() -> None:
    add = tuple(o for o in _objects() if not isinstance(o, (BgpAccept, BgpPeer, BgpGroup))) + tuple(
        StaticRoute(net(f"198.18.1.{i}/32"), ip("198.51.100.11"), 200, 4242) for i in range(1, 9)
    )
    shared = {}
    for platform in ("frr", "eos", "ios", "nxos", "junos"):
        shared[platform] = render_changes(router(platform), (), add)
    for platform, lines in shared.items():
        render._MEMO.clear()
        render._ADDITIONS.clear()
        assert render_changes(router(platform), (), add) == lines
        # and an equal tuple that is another object renders the same lines
        assert render_changes(router(platform), (), tuple(list(add))) == lines


def test_the_presentation_module_imports_no_renderer_apply_push_or_rich() -> None:
    heavy = ("rich", "jinja2", "lbauto.orchestrate.apply", "lbauto.push.pipeline", "pydantic")
    code = f"import sys, lbauto.cli.present; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_ipv6_and_ipv4_texts_do_not_collide() -> None:
    b = _Builder(_fleet(1, 1), ObservedState())
    v4 = ipaddress.IPv4Address("0.0.0.1")
    v6 = ipaddress.IPv6Address("::1")
    assert (b.text(v4), b.text(v6)) == ("0.0.0.1", "::1")
