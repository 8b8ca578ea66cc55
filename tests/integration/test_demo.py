"""``lbauto demo`` (what ``make demo`` runs) as the README promises it: both families through the
agent, bypassed at 1 DIP and back, with long-lived connections and nothing broken.

The figures are the demo's own observations of the kernel and the traffic (agent packet
counters, flow map entries, the routers' observed bypass routes, new connections per DIP), so
this test checks what the demo shows a newcomer, not only that it exits 0.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from lbauto.lab import down
from lbauto.lab.demo import DemoResult, Phase, run_demo

pytestmark = [pytest.mark.integration]

BALANCED = "3 DIPs: balanced by the agent"
BYPASSED = "scaled to 1 DIP: router bypass"
BACK = "back to 3 DIPs: through the agent"


@pytest.fixture(scope="module")
def demo(lab_host: None) -> DemoResult:
    out = io.StringIO()
    try:
        result = run_demo(Console(file=out, width=200), name="lbdm", keep=False)
    finally:
        down("lbdm")  # also when the demo raised before its own clean-up
    print(out.getvalue())  # the demo's whole narration, shown when a check below fails
    return result


def _phase(result: DemoResult, vip: str, name: str) -> Phase:
    return next(p for p in result.phases if p.vip == vip and p.name == name)


def test_nothing_breaks_in_either_family(demo: DemoResult) -> None:
    assert demo.traffic6 is not None, "the demo must run an IPv6 VIP as well"
    for report in demo.reports:
        counts = report.counts
        assert (counts.broken, counts.new_failed, counts.long_lived_failed) == (0, 0, 0), report
    assert demo.ok


@pytest.mark.parametrize("vip", ["web", "v6web"])
def test_each_phase_shows_the_path_the_traffic_takes(demo: DemoResult, vip: str) -> None:
    balanced, bypassed, back = (_phase(demo, vip, n) for n in (BALANCED, BYPASSED, BACK))
    # balanced: the agent carries the VIP, tracks flows and spreads new connections on 3 DIPs
    assert balanced.bypass == "-" and balanced.packets_delta > 0
    assert len(balanced.new_connections) == 3, balanced
    # 1 DIP: the router sends straight to the DIP; the agent sees no packets and keeps no flows
    assert bypassed.bypass != "-", bypassed
    assert bypassed.packets_delta == 0 and bypassed.flow_entries == 0, bypassed
    assert len(bypassed.new_connections) == 1, bypassed
    # back to 3: through the agent again, spread again
    assert back.bypass == "-" and back.packets_delta > 0, back
    assert len(back.new_connections) == 3, back
