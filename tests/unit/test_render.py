"""Rendering: golden files per platform x method x family, vendor facts, injection defence.

Golden files live in ``tests/golden/<platform>/<method>-<family>-<full|change>.txt``. After a
deliberate template change regenerate them with::

    LBAUTO_UPDATE_GOLDENS=1 .venv/bin/pytest tests/unit/test_render.py

and review the diff against the vendor syntax before committing.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lbauto.core.model import (
    Method,
    OwnedObject,
    PbrBinding,
    PbrRule,
    Platform,
    Router,
    StaticRoute,
)
from lbauto.errors import RenderError
from lbauto.platforms import PLATFORMS
from lbauto.platforms.render import render_changes, render_config
from tests.builders import ingress, ip, net

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
UPDATE = os.environ.get("LBAUTO_UPDATE_GOLDENS") == "1"
VTYSH = shutil.which("vtysh")
FRR_RELOAD = Path("/usr/lib/frr/frr-reload.py")


def router(platform: Platform, method: Method = Method.STATIC, **kw: Any) -> Router:
    return Router("r1", "192.0.2.254", platform, method, ingress=(ingress(platform),), **kw)


class Case:
    """A small deployment as the planner would produce it: VIP .10 multi (LB routes to two
    agents), .11 and .12 single; the change removes .11's bypass, adds a bypass for .13 and
    removes .10's LB route via the second agent."""

    def __init__(self, platform: Platform, method: Method, family: int) -> None:
        self.router = router(platform, method)
        if family == 4:
            vip, agent, dip = "192.0.2.{}/32", "198.51.100.{}", "198.51.100.{}"
        else:
            vip, agent, dip = "2001:db8:10::{}/128", "2001:db8:100::{}", "2001:db8:100::{}"
        self.agents = [ip(agent.format(10)), ip(agent.format(11))]
        lb = [
            StaticRoute(net(vip.format(n)), a, 200, 4242)
            for n in (10, 11, 12, 13)
            for a in self.agents
        ]
        if method is Method.STATIC:
            bypass: dict[int, OwnedObject] = {
                n: StaticRoute(net(vip.format(n)), ip(dip.format(n + 10)), 1, 4242)
                for n in (11, 12, 13)
            }
            bindings: list[OwnedObject] = []
        else:
            bypass = {
                n: PbrRule(n - 10, net(vip.format(n)), ip(dip.format(n + 10))) for n in (11, 12, 13)
            }
            bindings = [PbrBinding(ingress(platform), family)]
        self.full = frozenset([*lb, bypass[11], bypass[12], *bindings])
        self.remove = [bypass[11], lb[1]]
        self.add = [bypass[13]]


CASES = [(p, m, f) for p in PLATFORMS for m in (Method.STATIC, Method.PBR) for f in (4, 6)]


def _golden(path: Path, text: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden {path}: run with LBAUTO_UPDATE_GOLDENS=1"
    assert text == path.read_text()


@pytest.mark.parametrize(("platform", "method", "family"), CASES, ids=str)
def test_golden_full_and_change(platform: Platform, method: Method, family: int) -> None:
    case = Case(platform, method, family)
    stem = GOLDEN / platform / f"{method.value}-v{family}"
    _golden(stem.with_name(stem.name + "-full.txt"), render_config(case.router, case.full))
    lines = render_changes(case.router, case.remove, case.add, observed=case.full)
    _golden(stem.with_name(stem.name + "-change.txt"), "\n".join(lines) + "\n")


@pytest.mark.skipif(VTYSH is None, reason="vtysh (FRR) not installed")
@pytest.mark.parametrize("path", sorted((GOLDEN / "frr").glob("*.txt")), ids=lambda p: p.name)
def test_frr_goldens_pass_vtysh_syntax_check(path: Path) -> None:
    assert VTYSH is not None
    res = subprocess.run(
        [VTYSH, "-C", "-f", str(path)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.skipif(not FRR_RELOAD.exists(), reason="frr-pythontools not installed")
@pytest.mark.parametrize(("method", "family"), [(m, f) for m in Method for f in (4, 6)])
def test_frr_config_round_trips_through_frr_reload(
    tmp_path: Path, method: Method, family: int
) -> None:
    """The rendered config fed as both running and new config gives no changes at all."""
    case = Case("frr", method, family)
    conf = tmp_path / "c.conf"
    conf.write_text(render_config(case.router, case.full))
    res = subprocess.run(
        ["python3", str(FRR_RELOAD), "--test", "--input", str(conf), str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "Lines To" not in res.stdout, res.stdout


# --------------------------------------------------------------------------------- vendor facts


def test_frr_tag_before_distance_and_bypass_without_distance_1() -> None:
    objs = [
        StaticRoute(net("192.0.2.10/32"), ip("198.51.100.10"), 200, 4242),
        StaticRoute(net("192.0.2.10/32"), ip("198.51.100.21"), 1, 4242),
        StaticRoute(net("2001:db8:10::10/128"), ip("2001:db8:100::21"), 5, 7),
    ]
    assert render_config(router("frr"), objs).splitlines() == [
        "ip route 192.0.2.10/32 198.51.100.10 tag 4242 200",
        "ip route 192.0.2.10/32 198.51.100.21 tag 4242",
        "ipv6 route 2001:db8:10::10/128 2001:db8:100::21 tag 7 5",
    ]


@pytest.mark.parametrize(
    ("platform", "line"),
    [
        ("eos", "ip route 192.0.2.10/32 198.51.100.10 200 tag 4242"),
        ("ios", "ip route 192.0.2.10 255.255.255.255 198.51.100.10 200 tag 4242"),
        ("nxos", "ip route 192.0.2.10/32 198.51.100.10 tag 4242 200"),
    ],
)
def test_static_route_word_order(platform: Platform, line: str) -> None:
    route = StaticRoute(net("192.0.2.10/32"), ip("198.51.100.10"), 200, 4242)
    assert render_config(router(platform), [route]) == line + "\n"


def test_changes_order_removals_first_bindings_rules_routes_then_routes_rules_bindings() -> None:
    r = router("frr", Method.PBR)
    old: list[OwnedObject] = [
        PbrBinding("eth1", 4),
        PbrRule(1, net("192.0.2.11/32"), ip("198.51.100.21")),
        StaticRoute(net("192.0.2.11/32"), ip("198.51.100.10"), 200, 4242),
    ]
    new: list[OwnedObject] = [
        PbrBinding("eth2", 4),
        PbrRule(2, net("192.0.2.12/32"), ip("198.51.100.22")),
        StaticRoute(net("192.0.2.12/32"), ip("198.51.100.10"), 200, 4242),
    ]
    lines = render_changes(r, old, new, observed=old)
    starts = [
        lines.index(" no pbr-policy LBAUTO"),
        lines.index("no pbr-map LBAUTO seq 1"),
        lines.index("no ip route 192.0.2.11/32 198.51.100.10"),
        lines.index("ip route 192.0.2.12/32 198.51.100.10 tag 4242 200"),
        lines.index("pbr-map LBAUTO seq 2"),
        lines.index(" pbr-policy LBAUTO"),
    ]
    assert starts == sorted(starts)


def test_shared_policy_binding_stays_while_other_family_has_rules() -> None:
    """FRR and EOS bind one policy for both families: dropping the IPv6 binding must not unbind
    the interface while IPv4 rules remain, and must when nothing remains."""
    v4 = PbrRule(1, net("192.0.2.11/32"), ip("198.51.100.21"))
    v6 = PbrRule(2, net("2001:db8:10::11/128"), ip("2001:db8:100::21"))
    b4, b6 = PbrBinding("eth1", 4), PbrBinding("eth1", 6)
    observed: set[OwnedObject] = {v4, v6, b4, b6}
    for platform in ("frr", "eos"):
        r = router(platform, Method.PBR)
        lines = render_changes(r, [b6, v6], [], observed)
        assert not any("no pbr-policy" in x or "no service-policy" in x for x in lines), lines
        lines = render_changes(r, [b4, b6, v4, v6], [], observed)
        assert sum("no pbr-policy" in x or "no service-policy" in x for x in lines) == 1, lines


def test_eos_drops_policy_map_only_when_no_rule_remains() -> None:
    r = router("eos", Method.PBR)
    a = PbrRule(1, net("192.0.2.11/32"), ip("198.51.100.21"))
    b = PbrRule(2, net("192.0.2.12/32"), ip("198.51.100.22"))
    assert "no policy-map type pbr LBAUTO" not in render_changes(r, [a], [], {a, b})
    assert "no policy-map type pbr LBAUTO" in render_changes(r, [a, b], [], {a, b})
    # Without the observed objects nothing tells us the policy is empty: keep it.
    assert "no policy-map type pbr LBAUTO" not in render_changes(r, [a, b], [], ())


def test_junos_deletes_whole_route_only_when_no_next_hop_survives() -> None:
    r = router("junos")
    lb = StaticRoute(net("192.0.2.11/32"), ip("198.51.100.10"), 200, 4242)
    bypass = StaticRoute(net("192.0.2.11/32"), ip("198.51.100.21"), 1, 4242)
    assert render_changes(r, [bypass], [], {lb, bypass}) == [
        "delete routing-options static route 192.0.2.11/32 qualified-next-hop 198.51.100.21"
    ]
    assert render_changes(r, [bypass, lb], [], {lb, bypass}) == [
        "delete routing-options static route 192.0.2.11/32"
    ]
    # Unknown observed state: never delete the whole route (it may hold the LB route).
    assert render_changes(r, [bypass], [], ()) == [
        "delete routing-options static route 192.0.2.11/32 qualified-next-hop 198.51.100.21"
    ]


def test_junos_new_terms_stay_before_the_default_term() -> None:
    r = router("junos", Method.PBR)
    old = PbrRule(1, net("192.0.2.11/32"), ip("198.51.100.21"))
    new = PbrRule(2, net("192.0.2.12/32"), ip("198.51.100.22"))
    lines = render_changes(r, [], [new], {old})
    delete = lines.index("delete firewall family inet filter LBAUTO term default")
    term = lines.index(
        "set firewall family inet filter LBAUTO term LBAUTO-2 from destination-address"
        " 192.0.2.12/32"
    )
    readd = lines.index("set firewall family inet filter LBAUTO term default then accept")
    assert delete < term < readd == len(lines) - 1


def test_render_is_deterministic_whatever_the_input_order() -> None:
    case = Case("eos", Method.PBR, 4)
    objs = list(case.full)
    first = render_config(case.router, objs)
    for seed in range(5):
        random.Random(seed).shuffle(objs)
        assert render_config(case.router, objs) == first


# ------------------------------------------------------------------------ templates and defence


@pytest.mark.parametrize("platform", list(PLATFORMS))
@pytest.mark.parametrize(
    "name", ["eth1\n ip route 0.0.0.0/0 203.0.113.1", "eth1; reload", "eth1 ! x", "eth 1", ""]
)
def test_interface_name_that_could_inject_a_command_is_rejected(
    platform: Platform, name: str
) -> None:
    r = router(platform, Method.PBR)
    with pytest.raises(RenderError, match="interface name"):
        render_config(r, [PbrBinding(name, 4)])
    with pytest.raises(RenderError, match="interface name"):
        render_changes(r, [PbrBinding(name, 4)], [])


def test_untyped_values_are_rejected() -> None:
    r = router("frr")
    bad_hop = StaticRoute(net("192.0.2.10/32"), "198.51.100.10\nip route 0.0.0.0/0 x", 200, 4242)  # type: ignore[arg-type]
    with pytest.raises(RenderError, match="not an IP address"):
        render_config(r, [bad_hop])
    bad_distance = StaticRoute(net("192.0.2.10/32"), ip("198.51.100.10"), "1\nreload", 4242)  # type: ignore[arg-type]
    with pytest.raises(RenderError, match="distance"):
        render_config(r, [bad_distance])
    with pytest.raises(RenderError, match="PBR sequence"):
        render_config(r, [PbrRule(701, net("192.0.2.10/32"), ip("198.51.100.10"))])


def override(template_dir: Path, platform: Platform, text: str) -> Path:
    """An inventory's own ``<template_dir>/<platform>/config.j2``."""
    (template_dir / platform).mkdir()
    (template_dir / platform / "config.j2").write_text(text)
    return template_dir


def test_rendered_separator_from_an_override_template_is_rejected(tmp_path: Path) -> None:
    override(
        tmp_path,
        "frr",
        "{% for r in add_routes %}ip route {{ r[1] }} {{ r[4] }}; write memory\n{% endfor %}",
    )
    route = StaticRoute(net("192.0.2.10/32"), ip("198.51.100.10"), 200, 4242)
    with pytest.raises(RenderError, match="second command"):
        render_config(router("frr"), [route], template_dir=tmp_path)


def test_template_override_takes_precedence_per_platform(tmp_path: Path) -> None:
    override(
        tmp_path,
        "frr",
        "{% for r in add_routes %}ip route {{ r[1] }} {{ r[4] }} tag {{ r[5] }} 250\n{% endfor %}",
    )
    route = StaticRoute(net("192.0.2.10/32"), ip("198.51.100.10"), 200, 4242)
    assert (
        render_config(router("frr"), [route], template_dir=tmp_path)
        == "ip route 192.0.2.10/32 198.51.100.10 tag 4242 250\n"
    )
    # Platforms without an override still use the built-in templates.
    assert render_config(router("nxos"), [route], template_dir=tmp_path).startswith(
        "ip route 192.0.2.10/32 198.51.100.10 tag 4242 200"
    )


@pytest.mark.parametrize(
    ("platform", "text", "match"),
    [
        ("eos", "{% for r in add_routes %}\n", r"config\.j2 line .* eos"),
        ("ios", "{{ no_such_thing }}\n", "no_such_thing"),
    ],
    ids=["broken-template-names-the-file", "undefined-variable"],
)
def test_bad_override_template_is_a_render_error(
    tmp_path: Path, platform: Platform, text: str, match: str
) -> None:
    with pytest.raises(RenderError, match=match):
        render_config(router(platform), [], template_dir=override(tmp_path, platform, text))


def test_every_platform_has_its_template_folder_and_ships_it() -> None:
    import lbauto

    top = Path(__file__).parents[2] / "templates"
    packaged = Path(lbauto.__file__).parent / "_templates"  # the wheel's copy (a symlink here)
    for platform in PLATFORMS.values():
        assert (top / platform.template_folder / "config.j2").is_file()
        assert (packaged / platform.template_folder / "config.j2").is_file()


def test_empty_input_renders_nothing() -> None:
    for platform in PLATFORMS:
        assert render_config(router(platform), []).strip() == ""
        assert render_changes(router(platform), [], []) == []
