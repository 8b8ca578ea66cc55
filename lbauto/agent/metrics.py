"""Prometheus metrics: per-VIP state read from the kernel at scrape time, plus apply latency."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from lbauto.agent.dataplane import VipCounters
from lbauto.agent.service import AgentService
from lbauto.core.model import Mode, addr_key
from lbauto.errors import LbautoError

log = logging.getLogger("lbauto.agent")


class VipCollector(Collector):
    def __init__(self, service: AgentService) -> None:
        self.service = service

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        svc = self.service
        mode = GaugeMetricFamily(
            "lbauto_agent_vip_mode", "1 for the VIP's mode", labels=["vip", "mode"]
        )
        flows = GaugeMetricFamily("lbauto_agent_vip_flows", "Flow entries", labels=["vip"])
        pkts = CounterMetricFamily("lbauto_agent_vip_packets", "Packets seen", labels=["vip"])
        byts = CounterMetricFamily("lbauto_agent_vip_bytes", "Bytes seen", labels=["vip"])
        hits = CounterMetricFamily(
            "lbauto_agent_vip_transit_hits", "Packets pinned by a transit pin", labels=["vip"]
        )
        drain = GaugeMetricFamily(
            "lbauto_agent_vip_drain_remaining_flows",
            "Flows left on a draining DIP",
            labels=["vip", "dip"],
        )
        try:
            with svc.lock:
                recs = sorted(svc.vips.values(), key=lambda r: addr_key(r.address))
            # kernel reads outside the lock: big flow maps take seconds to list
            counters = svc.dp.counters(svc.spec.table)
            # raw marks counted in the kernel's listing (closing flows carry the closed bit)
            per_vip = {r.address: svc.flow_counts(r) for r in recs}
        except LbautoError as e:
            log.error("metrics: cannot read the kernel: %s", e)
            return
        for r in recs:
            v = str(r.address)
            for m in Mode:
                mode.add_metric([v, m.value], 1.0 if r.mode is m else 0.0)
            raw = per_vip[r.address]
            flows.add_metric([v], float(sum(raw.values())))
            c = counters.get(v, VipCounters())
            pkts.add_metric([v], float(c.packets))
            byts.add_metric([v], float(c.bytes))
            hits.add_metric([v], float(c.transit_hits))
            if r.drain:
                for d in r.drain.dips:  # open flows only: a DIP mark has no closed bit
                    drain.add_metric([v, str(d)], float(raw.get(r.marks.get(d, -1), 0)))
        yield from (mode, flows, pkts, byts, hits, drain)


def make_registry(service: AgentService) -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    registry.register(VipCollector(service))
    apply = Histogram(
        "lbauto_agent_apply_seconds",
        "Time of one nft transaction (API call or timer to kernel state applied)",
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    )
    return registry, apply
