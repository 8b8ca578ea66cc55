"""The agent's batch API (``POST /v1/batch``, ``POST /v1/flows/counts``) through the HTTP
client, against a real agent app served by uvicorn on loopback (no kernel: the data plane
records its transactions; tests/integration/test_agent_batch.py has the kernel's side)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from lbauto.agent.client import HttpAgentClient
from lbauto.agent.dataplane import FlowEntry, RecordingDataplane, TableSpec, suffix
from lbauto.agent.models import BatchIn
from lbauto.agent.protocol import BatchRejectedError, VipDelete, VipPut, change_each
from lbauto.agent.service import AgentService
from lbauto.agent.store import StateStore
from lbauto.core.model import Drain, Mode, Transit
from lbauto.errors import AgentError
from lbauto.play.predict import MemoryAgent
from tests.unit.test_agent_client import Served as ClientServed

TOKEN = "batch-test-token"
ip = ipaddress.ip_address
V1, V2, V3 = ip("192.0.2.10"), ip("192.0.2.11"), ip("192.0.2.12")
V6 = ip("2001:db8::10")
D1, D2, D3 = ip("198.51.100.21"), ip("198.51.100.22"), ip("198.51.100.23")


class RefusingDataplane(RecordingDataplane):
    """A kernel that refuses the next transaction (as nft does one that names an object
    of the wrong type): it applies nothing of it."""

    refuse_next = False

    def apply(self, commands: Sequence[str]) -> None:
        if self.refuse_next:
            self.refuse_next = False
            raise AgentError("nft transaction failed: Error: Could not process rule")
        super().apply(commands)


class Served(ClientServed):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, dataplane=RefusingDataplane(), token=TOKEN)
        self.dp: RefusingDataplane

    def __enter__(self) -> Served:
        super().__enter__()
        return self

    def transactions(self) -> int:
        return len(self.dp.transactions)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with Served(tmp_path) as s:
        yield s


@pytest.fixture
def client(served: Served) -> Iterator[HttpAgentClient]:
    with HttpAgentClient(served.url, token=TOKEN, name="a1") as c:
        yield c


def put(address: ipaddress.IPv4Address | ipaddress.IPv6Address, *dips: str, **kw: object) -> VipPut:
    mode = Mode.SINGLE if len(dips) == 1 else Mode.MULTI
    return VipPut(address, mode, tuple(ip(d) for d in dips), True, **kw)  # type: ignore[arg-type]


def test_many_changes_are_one_transaction_and_one_state_write(
    served: Served, client: HttpAgentClient
) -> None:
    client.put_vip(V3, mode=Mode.SINGLE, dips=[D3], flow_tracking=False)
    before = served.transactions()
    saved = served.state.stat().st_mtime_ns
    out = client.change_vips(
        [
            put(V1, str(D1), str(D2), name="web"),
            put(V2, str(D2), drain=Drain((D3,), 30.0), transit=Transit(D3, 60.0)),
            VipDelete(V3, if_match=1),
        ]
    )
    assert served.transactions() == before + 1  # one nft transaction for all three
    assert served.state.stat().st_mtime_ns != saved
    w, a, gone = out
    assert gone is None and w is not None and a is not None
    assert (w.address, w.mode, w.dips, w.generation, w.name) == (V1, Mode.MULTI, (D1, D2), 1, "web")
    assert a.drain is not None and a.drain.dips == (D3,) and a.transit is not None
    assert set(client.list_vips()) == {V1, V2}
    txn = served.dp.transactions[-1]
    for v in (V1, V2, V3):  # each VIP's objects are in that one transaction
        assert any(f"v{suffix(v)}" in c for c in txn), v
    # the same request again is a no-op: no transaction, generations kept (as for a PUT)
    again = client.change_vips([put(V1, str(D1), str(D2), name="web")])
    assert again[0] is not None and again[0].generation == 1
    assert served.transactions() == before + 1
    # a batch entry equal to the last PUT is a no-op too
    client.put_vip(V2, mode=Mode.SINGLE, dips=[D2], flow_tracking=True)
    n = served.transactions()
    same = client.change_vips([put(V2, str(D2))])
    assert served.transactions() == n and same[0] is not None and same[0].generation == 2


def test_a_bad_entry_fails_the_whole_batch_and_changes_nothing(
    served: Served, client: HttpAgentClient
) -> None:
    client.change_vips([put(V1, str(D1), str(D2)), put(V2, str(D2))])
    before = (served.transactions(), served.state.read_bytes(), client.list_vips())
    with pytest.raises(BatchRejectedError) as e:
        client.change_vips(
            [
                put(V1, str(D1)),  # fine on its own
                put(V2, "2001:db8::21"),  # IPv6 DIP for an IPv4 VIP
                put(V3, str(D3)),  # fine on its own
            ]
        )
    assert [(r.index, r.address, r.status) for r in e.value.rejected] == [(1, str(V2), 400)]
    assert "IPv6" in e.value.rejected[0].detail and "nothing changed" in str(e.value)
    assert e.value.agent == "a1" and e.value.status == 400
    assert (served.transactions(), served.state.read_bytes(), client.list_vips()) == before


def test_every_stale_if_match_is_named(served: Served, client: HttpAgentClient) -> None:
    client.change_vips([put(V1, str(D1)), put(V2, str(D2))])
    n = served.transactions()
    with pytest.raises(BatchRejectedError) as e:
        client.change_vips(
            [
                put(V1, str(D2), if_match=1),  # current
                put(V2, str(D1), if_match=7),  # stale
                put(V3, str(D3), if_match=1),  # no such VIP
                VipDelete(ip("192.0.2.99"), if_match=4),  # absent: nothing to delete, fine
            ]
        )
    assert [(r.index, r.status) for r in e.value.rejected] == [(1, 412), (2, 412)]
    assert "does not match (generation 1)" in e.value.rejected[0].detail
    assert "no such VIP" in e.value.rejected[1].detail
    assert served.transactions() == n
    assert client.get_vip(V1).dips == (D1,)  # type: ignore[union-attr]


def test_an_address_twice_is_refused(client: HttpAgentClient) -> None:
    with pytest.raises(BatchRejectedError) as e:
        client.change_vips([put(V1, str(D1)), VipDelete(V1)])
    assert [(r.index, r.status) for r in e.value.rejected] == [(1, 400)]
    assert "also change 0" in e.value.rejected[0].detail
    assert client.list_vips() == {}


def test_a_schema_error_names_its_entry(served: Served) -> None:
    n = served.transactions()
    body = {
        "changes": [
            {"op": "put", "address": str(V1), "vip": {"mode": "single", "dips": [str(D1)],
                                                      "flow_tracking": True}},
            {"op": "put", "address": "192.0.2.300", "vip": {"mode": "single",
                                                            "dips": [str(D1)],
                                                            "flow_tracking": True}},
        ]
    }  # fmt: skip
    r = httpx.post(
        f"{served.url}/v1/batch", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][:3] == ["body", "changes", 1]
    assert served.transactions() == n
    # through the client: the entry the schema refused is named, as the agent's own refusals
    with (
        HttpAgentClient(served.url, token=TOKEN, name="a1") as c,
        pytest.raises(BatchRejectedError) as e,
    ):
        c.change_vips([put(V1, str(D1)), put(V2, str(D2), name="not a name")])
    assert [(x.index, x.address, x.status) for x in e.value.rejected] == [(1, str(V2), 422)]
    assert e.value.rejected[0].detail.startswith("vip.name:")
    assert served.transactions() == n


def test_a_transaction_the_kernel_refuses_changes_nothing(
    served: Served, client: HttpAgentClient
) -> None:
    client.change_vips([put(V1, str(D1), str(D2))])
    before = (served.state.read_bytes(), client.list_vips())
    served.dp.refuse_next = True
    with pytest.raises(AgentError, match="data plane error") as e:
        client.change_vips([put(V1, str(D1)), put(V2, str(D2))])
    assert not isinstance(e.value, BatchRejectedError) and e.value.status == 500
    assert (served.state.read_bytes(), client.list_vips()) == before
    # the agent is not stuck: the same batch goes through once the kernel takes it
    client.change_vips([put(V1, str(D1)), put(V2, str(D2))])
    assert set(client.list_vips()) == {V1, V2}


def test_an_empty_batch_sends_nothing(client: HttpAgentClient) -> None:
    assert client.change_vips([]) == []
    assert client.flows_per_dip_many([]) == {}


def test_flow_counts_of_many_vips_in_one_request(served: Served, client: HttpAgentClient) -> None:
    client.change_vips([put(V1, str(D1), str(D2)), put(V6, "2001:db8::21")])
    marks = served.svc.vips[V1].marks
    served.dp.flow_entries[suffix(V1)] = [
        FlowEntry("203.0.113.5", 1000 + i, 80, marks[D2 if i else D1], 250.0) for i in range(3)
    ] + [FlowEntry("203.0.113.6", 2000, 80, marks[D2], 10.0)]  # quiet for 290 of 300 s
    counts = client.flows_per_dip_many([V1, V6, V3])
    assert counts == {V1: {D1: 1, D2: 3}, V6: {}, V3: None}
    assert counts == {a: (client.flows_per_dip(a) if a != V3 else None) for a in (V1, V6, V3)}
    with HttpAgentClient(served.url, token=TOKEN, drain_idle=60) as idle:
        assert idle.flows_per_dip_many([V1])[V1] == {D1: 1, D2: 2}
        assert idle.flows_per_dip_many([V1])[V1] == idle.flows_per_dip(V1)


def test_the_in_memory_agent_refuses_a_stale_batch_whole() -> None:
    agent = MemoryAgent("m")
    agent.put_vip(V1, mode=Mode.SINGLE, dips=[D1], flow_tracking=True)
    with pytest.raises(BatchRejectedError) as e:
        change_each(agent, [put(V2, str(D2)), put(V1, str(D2), if_match=9)])
    assert [r.index for r in e.value.rejected] == [1]
    assert set(agent.vips) == {V1}
    out = agent.change_vips([put(V2, str(D2)), VipDelete(V1, if_match=1)])
    assert out[1] is None and set(agent.vips) == {V2}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def ticking(tmp_path: Path) -> tuple[AgentService, RefusingDataplane, Clock]:
    dp, clock = RefusingDataplane(), Clock()
    svc = AgentService(
        TableSpec("lbauto", "veth0"), dp, StateStore(tmp_path / "s.json"), clock=clock
    )
    svc.start()
    body = {"changes": [
        {"op": "put", "address": str(v), "vip": {
            "mode": "single", "dips": [str(D1)], "flow_tracking": True,
            "drain": {"dips": [str(D2)], "timeout": 5}}}
        for v in (V1, V2, V3)
    ]}  # fmt: skip
    svc.change(BatchIn.model_validate(body).changes)
    for v in (V1, V2, V3):  # an open connection on the draining DIP holds each drain
        mark = svc.vips[v].marks[D2]
        dp.flow_entries[suffix(v)] = [FlowEntry("203.0.113.5", 1000, 80, mark, 250.0)]
    return svc, dp, clock


def test_drains_that_end_at_one_tick_end_in_one_transaction(tmp_path: Path) -> None:
    svc, dp, clock = ticking(tmp_path)
    n = len(dp.transactions)
    svc.tick()
    assert len(dp.transactions) == n  # the connections hold the drains: no transaction
    clock.now += 6
    svc.tick()
    assert len(dp.transactions) == n + 1  # the timeout ends all three (flows cut) at once
    assert sum("delete element" in c for c in dp.transactions[-1]) >= 3
    assert all(svc.vips[v].drain is None for v in (V1, V2, V3))
    assert StateStore(tmp_path / "s.json").read().vips[V2].drain is None


def test_a_tick_the_kernel_refuses_whole_ends_each_vip_on_its_own(tmp_path: Path) -> None:
    svc, dp, clock = ticking(tmp_path)
    n = len(dp.transactions)
    clock.now += 6
    dp.refuse_next = True
    svc.tick()
    assert len(dp.transactions) == n + 3  # refused together, then one each
    assert all(svc.vips[v].drain is None for v in (V1, V2, V3))
