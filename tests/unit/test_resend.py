"""An agent that lost its state file recovers its VIPs from the kernel and stays degraded until
each is written again (issue 11, item 5): the agent marks them, the client reads the mark, and
the planner re-sends them even where they match the inventory."""

from __future__ import annotations

from dataclasses import replace

from lbauto.agent.client import vip_from_json
from lbauto.core.model import Mode
from lbauto.core.plan import Action, Kind
from lbauto.core.planner import make_plan
from tests.builders import agent, agent_vip, inventory, state, vip

WEB = vip("web", "192.0.2.10", "198.51.100.21", "198.51.100.22")
LB1 = agent("a1")


def test_a_matching_vip_is_left_alone_unless_the_agent_asks_for_it_again() -> None:
    inv = inventory([WEB], agents=[LB1])
    same = agent_vip("192.0.2.10", Mode.MULTI, "198.51.100.21", "198.51.100.22", name="web")
    (t,) = make_plan(inv, state({"a1": [same]})).transitions
    assert t.kind is Kind.NONE and not t.steps
    recovered = replace(same, needs_resend=True)
    (t,) = make_plan(inv, state({"a1": [recovered]})).transitions
    assert t.kind is Kind.REPAIR
    assert [s.action for s in t.steps] == [Action.SET_VIP]


def test_the_client_reads_the_agents_mark() -> None:
    doc = {
        "address": "192.0.2.10",
        "mode": "multi",
        "dips": ["198.51.100.21"],
        "flow_tracking": True,
        "generation": 4,
    }
    assert not vip_from_json(doc).needs_resend
    assert vip_from_json({**doc, "unconfirmed": True}).needs_resend
