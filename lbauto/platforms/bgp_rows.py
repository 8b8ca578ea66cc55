"""Template rows of the BGP LB route objects (router side of ``lbauto_lb_route: bgp``).

Context keys every platform template gets (empty lists / None in static mode):

- ``add_accepts`` / ``remove_accepts``: ``(version: int, prefix, address, netmask)`` per VIP
  whose prefix the import policy accepts from the agents;
- ``add_peers`` / ``remove_peers``: ``(version: int, address)`` per agent neighbor;
- ``add_group``: ``(asn, agent_asn, maximum_paths, bfd: bool, bfd_interval_ms,
  bfd_multiplier)`` (all ints but ``bfd``) when the peer group is written (a setting change
  rewrites it in place, so ``remove_group`` is then None), ``remove_group`` the same row when
  the group goes;
- ``bgp_asn``: the router's AS number for ``router bgp`` blocks (None when nothing names it);
- ``accepts_gone``: the change removes the last accepted VIP (known only from ``observed``):
  Junos then deletes its term, which would otherwise accept every route.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from typing import Any

from lbauto.core.model import BgpAccept, BgpGroup, BgpPeer, Router, RouterObject
from lbauto.errors import RenderError

GroupRow = tuple[int, int, int, bool, int, int]
_NETMASKS = [str(ipaddress.IPv4Network((0, n)).netmask) for n in range(33)]


def _accept_rows(objs: Iterable[BgpAccept]) -> list[tuple[int, str, str, str]]:
    rows: list[Any] = []
    for o in sorted(objs, key=lambda a: (a.prefix.version, int(a.prefix.network_address))):
        p = o.prefix
        if not isinstance(p, ipaddress.IPv4Network | ipaddress.IPv6Network):
            raise RenderError(f"{p!r} is not an IP prefix")
        mask = _NETMASKS[p.prefixlen] if p.version == 4 else ""
        rows.append((p.version, str(p), str(p.network_address), mask))
    return rows


def _peer_rows(objs: Iterable[BgpPeer]) -> list[tuple[int, str]]:
    rows: list[Any] = []
    for o in sorted(objs, key=lambda a: (a.address.version, int(a.address))):
        if not isinstance(o.address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            raise RenderError(f"{o.address!r} is not an IP address")
        rows.append((o.address.version, str(o.address)))
    return rows


def _group_row(router: Router, g: BgpGroup) -> GroupRow:
    row = (g.asn, g.agent_asn, g.maximum_paths, g.bfd, g.bfd_interval_ms, g.bfd_multiplier)
    for value in (*row[:3], *row[4:]):
        if type(value) is not int or not 0 <= value <= 4_294_967_295:
            raise RenderError(f"router {router.name}: BGP setting {value!r} is not a number")
    if type(g.bfd) is not bool:
        raise RenderError(f"router {router.name}: BGP setting bfd {g.bfd!r} is not a flag")
    return row


def bgp_context(
    router: Router,
    remove: Collection[RouterObject],
    add: Collection[RouterObject],
    observed: Collection[RouterObject],
) -> dict[str, Any]:
    groups_add = [o for o in add if isinstance(o, BgpGroup)]
    groups_rm = [o for o in remove if isinstance(o, BgpGroup)]
    add_group = _group_row(router, groups_add[0]) if groups_add else None
    remove_group = _group_row(router, groups_rm[0]) if groups_rm and not groups_add else None
    asn: int | None = None
    for row in (add_group, remove_group):
        if row is not None and asn is None:
            asn = row[0]
    if asn is None and router.bgp is not None:
        asn = router.bgp.asn
    if asn is None:
        asn = next((o.asn for o in observed if isinstance(o, BgpGroup)), None)
    removed = {o for o in remove if isinstance(o, BgpAccept)}
    kept = {o for o in observed if isinstance(o, BgpAccept)} - removed
    gone = bool(removed) and removed <= set(observed) and not kept
    return {
        "accepts_gone": gone and not any(isinstance(o, BgpAccept) for o in add),
        "add_accepts": _accept_rows(o for o in add if isinstance(o, BgpAccept)),
        "remove_accepts": _accept_rows(o for o in remove if isinstance(o, BgpAccept)),
        "add_peers": _peer_rows(o for o in add if isinstance(o, BgpPeer)),
        "remove_peers": _peer_rows(o for o in remove if isinstance(o, BgpPeer)),
        "add_group": add_group,
        "remove_group": remove_group,
        "bgp_asn": asn,
    }
