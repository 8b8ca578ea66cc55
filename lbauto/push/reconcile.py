"""Router-only reconcile (``lbauto push``): the planner's router changes as push jobs.

The planner is the one place that computes desired minus observed; this module only turns its
per-router changes into config text and expectations. Agents are not touched.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from lbauto.core.intent import owned_host_objects, sorted_objects
from lbauto.core.model import Inventory, ObservedRouter, ObservedState
from lbauto.core.planner import make_plan
from lbauto.platforms.render import render_changes
from lbauto.push.pipeline import RouterPush, config_text
from lbauto.push.verify import Expectation


def reconcile_jobs(
    inv: Inventory,
    observed: Mapping[str, ObservedRouter],
    names: Collection[str] | None = None,
    only: Collection[str] | None = None,
) -> list[RouterPush]:
    """Per router (all, or those in ``names``): the change from its observed lbauto-owned
    objects to the intended ones, verified against the whole intent so that drift elsewhere on
    the router shows up too. ``only``: reconcile only these VIPs' objects (names or addresses,
    as in :func:`~lbauto.core.planner.make_plan`)."""
    plan = make_plan(inv, ObservedState(routers=dict(observed)), only=only)
    jobs = []
    for rp in plan.routers:
        if names and rp.router not in names:
            continue
        router = inv.router(rp.router)
        seen = observed[rp.router].objects if rp.router in observed else frozenset()
        lines = render_changes(router, rp.remove, rp.add, seen, template_dir=inv.template_dir)
        after = (set(owned_host_objects(seen)) - set(rp.remove)) | set(rp.add)
        expect = Expectation.of(rp.remove, sorted_objects(after), seen)
        jobs.append(RouterPush(router, config_text(lines), expect))
    return jobs
