"""FRR verification specifics: the PBR state, which NAPALM has no getter for (``show pbr map
json``, ``show pbr nexthop-groups json`` and ``show pbr interface json``), and the static routes
of a whole batch in one table read per family (``show ip route static json``, ``show ipv6 route
static json``) instead of one ``get_route_to`` per prefix (field names checked on FRR 8.4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lbauto.core.model import POLICY_PREFIX, OwnedObject, PbrBinding, PbrRule
from lbauto.errors import PushError
from lbauto.platforms.driver import NapalmDriver

_STATIC = {4: "show ip route static json", 6: "show ipv6 route static json"}


def _show_json(driver: NapalmDriver, commands: list[str]) -> dict[str, Any]:
    """``cli(commands, encoding="json")``; lbauto's FRR driver runs them in one vtysh start
    (``FRRDriver._show_json``: about 50 ms of router CPU per start saved)."""
    batched = getattr(driver, "_show_json", None)
    if callable(batched):
        return dict(batched(commands))
    return dict(driver.cli(commands, encoding="json"))


def static_routes(driver: NapalmDriver, versions: Sequence[int]) -> dict[str, list[dict[str, Any]]]:
    """Every static route of the default VRF for ``versions``, as ``get_route_to`` entries.

    One read for both families (one vtysh start with lbauto's driver, in one SSH exchange):
    100 prefixes cost one read instead of 100. The table is converted by the
    driver's own ``get_route_to`` parser, so both paths see the same fields. lbauto's routes
    live in the default VRF (its templates render none elsewhere); ``get_route_to`` also looks
    in other VRFs, where a route for the same prefix is not the one lbauto pushed.
    """
    from napalm_frr.parse import routes_from_json  # lazy: napalm is heavy to import

    commands = [_STATIC[v] for v in sorted(set(versions))]
    out = _show_json(driver, commands)
    table: dict[str, list[dict[str, Any]]] = {}
    for command in commands:
        data = out.get(command)
        if not isinstance(data, dict):
            kind = type(data).__name__
            raise PushError(f"{command!r} did not return a route table (got {kind})")
        for prefix, entries in routes_from_json(data, "static").items():
            table.setdefault(prefix, []).extend(entries)
    return table


def _frr_pbr(
    driver: NapalmDriver,
) -> tuple[dict[int, dict[str, Any]], dict[str, set[str]], set[str]]:
    out = _show_json(
        driver, ["show pbr map json", "show pbr nexthop-groups json", "show pbr interface json"]
    )
    maps, groups, ifaces = (
        out["show pbr map json"],
        out["show pbr nexthop-groups json"],
        out["show pbr interface json"],
    )
    policies = {
        int(p["sequenceNumber"]): p
        for m in maps
        if m.get("name") == POLICY_PREFIX
        for p in m.get("policies", [])
    }
    hops = {str(g["name"]): {str(n.get("nexthop")) for n in g.get("nexthops", [])} for g in groups}
    bound = {
        str(i["name"]) for i in ifaces if i.get("policy") == POLICY_PREFIX and i.get("valid", True)
    }
    return policies, hops, bound


def verify_pbr(
    driver: NapalmDriver, present: Sequence[OwnedObject], absent: Sequence[OwnedObject]
) -> list[str]:
    policies, hops, bound = _frr_pbr(driver)
    problems: list[str] = []
    for obj in present:
        if isinstance(obj, PbrRule):
            p = policies.get(obj.seq)
            group = f"{POLICY_PREFIX}{obj.seq}"
            if p is None or p.get("matchDst") != str(obj.prefix):
                problems.append(f"pbr-map {POLICY_PREFIX} seq {obj.seq} for {obj.prefix} missing")
            elif not p.get("installed"):
                problems.append(
                    f"pbr-map {POLICY_PREFIX} seq {obj.seq} not installed: "
                    f"{p.get('installedReason', '?')}"
                )
            elif str(obj.next_hop) not in hops.get(group, set()):
                problems.append(f"pbr-map {POLICY_PREFIX} seq {obj.seq} not set to {obj.next_hop}")
        elif isinstance(obj, PbrBinding) and obj.interface not in bound:
            problems.append(f"policy {POLICY_PREFIX} not applied on interface {obj.interface}")
    for obj in absent:
        if isinstance(obj, PbrRule) and obj.seq in policies:
            problems.append(f"pbr-map {POLICY_PREFIX} seq {obj.seq} still present")
        elif isinstance(obj, PbrBinding) and obj.interface in bound:
            problems.append(f"policy {POLICY_PREFIX} still applied on interface {obj.interface}")
    # One pbr-policy serves both families: an interface's two bindings give one problem.
    return list(dict.fromkeys(problems))
