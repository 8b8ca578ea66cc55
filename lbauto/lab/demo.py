"""``lbauto demo``: the mission, live, in the namespace lab, narrated.

Two VIPs, ``web`` (IPv4) and ``v6web`` (IPv6), each with 3 DIPs, are balanced by the agent with
their flows tracked; they scale to 1 DIP (drain, router bypass, tracking off: the agent's
counters for the VIP stop and its flow entries drop to 0); they scale back to 3 (transit pin,
bypass removed: traffic returns to the agent, new connections are balanced). Long-lived TCP
connections run to both through all of it, and the report at the end counts every one that
broke, per VIP.
"""

from __future__ import annotations

import ipaddress
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lbauto.agent.client import agent_token
from lbauto.core.model import Agent, Inventory, IPAddress
from lbauto.core.plan import PlanOptions
from lbauto.errors import LbautoError
from lbauto.inventory import load_inventory
from lbauto.lab import Lab, LabSpec, start_traffic
from lbauto.lab.traffic import TrafficReport, run_traffic
from lbauto.orchestrate.apply import ApplyOutcome, ScaleRequest, run_apply, run_scale
from lbauto.orchestrate.live import live_devices
from lbauto.orchestrate.status import bypass_on
from lbauto.orchestrate.vipsfile import rewrite_dips, write_atomic

VIP_NAME = "web"
#: The VIPs the demo cycles: one per address family.
VIP_NAMES = ("web", "v6web")


@dataclass
class Phase:
    name: str
    vip: str = VIP_NAME
    mode: str = "-"
    packets_delta: int = 0
    flow_entries: int = 0
    bypass: str = "-"
    new_connections: dict[str, int] = field(default_factory=dict)
    transition_s: float = 0.0


@dataclass
class DemoResult:
    phases: list[Phase]
    traffic: TrafficReport  # web (IPv4)
    traffic6: TrafficReport | None = None  # v6web (IPv6)

    @property
    def reports(self) -> list[TrafficReport]:
        return [r for r in (self.traffic, self.traffic6) if r is not None]

    @property
    def ok(self) -> bool:
        return all(
            r.counts.broken == 0 and r.counts.new_failed == 0 and r.counts.long_lived_failed == 0
            for r in self.reports
        )


def agent_counters(agent: Agent, vip: IPAddress) -> tuple[int, int]:
    """(packets, flow entries) of ``vip`` from the agent's Prometheus metrics."""
    token = agent_token(agent)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(f"{agent.api.rstrip('/')}/metrics", headers=headers, timeout=5.0)
    r.raise_for_status()
    packets = flows = 0
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            if s.labels.get("vip") != str(vip):
                continue
            if s.name in ("lbauto_agent_vip_packets_total", "lbauto_agent_vip_packets"):
                packets = int(s.value)
            elif s.name == "lbauto_agent_vip_flows":
                flows = int(s.value)
    return packets, flows


class Demo:
    def __init__(
        self,
        console: Console,
        name: str = "demo",
        connections: int = 60,
        lifetime: float = 3.0,
        drain_timeout: float = 10.0,
        transit: float = 30.0,
    ) -> None:
        self.console = console
        self.name = name
        self.connections = connections
        self.lifetime = lifetime
        self.options = PlanOptions(transit_seconds=transit, drain_timeout=drain_timeout)

    def say(self, text: str) -> None:
        self.console.print(Text("» ", style="bold cyan") + Text.from_markup(text))

    def _inventory(self, lab: Lab) -> Inventory:
        return load_inventory(lab.inventory_dir)

    def _apply(self, run: Callable[..., ApplyOutcome], *args: object) -> float:
        inv = self._inventory(self.lab)
        devices = live_devices(inv, drain_idle=2.0)
        start = time.monotonic()

        def hook(vip: str, action: str, event: str) -> None:
            if event != "start":
                style = "green" if event == "end" else "bold red"
                self.console.print(Text(f"    {vip:<6} {action:<20} {event}", style=style))

        try:
            run(
                inv,
                *args,
                devices,
                options=self.options,
                dry_run=False,
                confirm=lambda _: True,
                on_event=hook,
            )
        finally:
            devices.close()
        return time.monotonic() - start

    def _observe_phase(self, phase: Phase, vip: IPAddress, agent: Agent) -> None:
        p0, _ = agent_counters(agent, vip)
        time.sleep(2.0)
        p1, flows = agent_counters(agent, vip)
        phase.packets_delta = p1 - p0
        phase.flow_entries = flows
        inv = self._inventory(self.lab)
        devices = live_devices(inv)
        try:
            observed = devices.observe()
        finally:
            devices.close()
        have = observed.agents.get(agent.name, {}).get(vip)
        phase.mode = have.mode.value if have else "absent"
        where = bypass_on(observed, vip, inv.agents)
        phase.bypass = ", ".join(f"{r}: {d}" for r, d in where.items()) or "-"
        probe = run_traffic(self.lab, str(vip), connections=0, duration=2.0, new_per_second=15)
        phase.new_connections = dict(probe.distribution.get("new", {}))
        self.say(
            f"agent packets for {vip} in 2 s: [bold]{phase.packets_delta}[/], flow entries: "
            f"[bold]{phase.flow_entries}[/], router bypass: [bold]{phase.bypass}[/], "
            f"new connections by DIP: {phase.new_connections}"
        )

    def run(self) -> DemoResult:
        self.say(f"bringing up the namespace lab [bold]{self.name}[/] (FRR router, agent, 3 DIPs)")
        self.lab = Lab.up(LabSpec(name=self.name, start_agents=True))
        inv = self._inventory(self.lab)
        vips = {n: next(v for v in inv.vips if v.name == n) for n in VIP_NAMES}
        agent = inv.agents[0]
        dips = {
            "web": [str(d.address) for d in self.lab.dips],
            "v6web": [str(d.address6) for d in self.lab.dips],
        }
        self._reset_vips(dips)
        self.say("converging the lab to its inventory ([bold]lbauto apply[/])")
        self._apply(run_apply)
        self.say(
            f"starting {self.connections} long-lived TCP connections to each of "
            + " and ".join(str(v.address) for v in vips.values())
            + f" (each lives {self.lifetime:.0f} s, then a new one takes its place) "
            "and 10 new connections per second"
        )
        handles = {
            n: start_traffic(
                self.lab,
                str(v.address),
                connections=self.connections,
                lifetime=self.lifetime,
                new_per_second=10,
            )
            for n, v in vips.items()
        }
        phases: list[Phase] = []
        steps = [
            ("3 DIPs: balanced by the agent", None, ""),
            ("scaled to 1 DIP: router bypass", 1, "bypass-enable"),
            ("back to 3 DIPs: through the agent", 3, "bypass-disable"),
        ]
        reports: dict[str, TrafficReport] = {}
        try:
            for h in handles.values():
                h.wait_ready()
            for label, count, kind in steps:
                for n, v in vips.items():
                    phase = Phase(label, vip=n)
                    if count is not None:
                        target = dips[n][:count]
                        self.say(
                            f"[bold]lbauto scale vip {n} --dips {','.join(target)}[/] ({kind})"
                        )
                        phase.transition_s = self._apply(run_scale, ScaleRequest(n, dips=target))
                    else:
                        self.say(f"[bold]{n}: {label}[/]")
                    self._observe_phase(phase, v.address, agent)
                    phases.append(phase)
        finally:
            for n, h in handles.items():
                reports[n] = h.stop_and_report()
        result = DemoResult(phases, reports["web"], reports.get("v6web"))
        self._summary(result)
        return result

    def _reset_vips(self, dips: dict[str, list[str]]) -> None:
        """Start from all DIPs on the demo VIPs (an earlier demo may have left them scaled)."""
        path = self.lab.inventory_dir / "vips.yaml"
        for name, want_text in dips.items():
            want = [ipaddress.ip_address(d) for d in want_text]
            vip = next(v for v in self._inventory(self.lab).vips if v.name == name)
            if list(vip.dips) != want:
                write_atomic(path, rewrite_dips(path, name, want))

    def _summary(self, result: DemoResult) -> None:
        table = Table(title="lbauto demo: summary")
        for col in (
            "phase",
            "VIP",
            "agent mode",
            "agent packets/2 s",
            "flow entries",
            "router bypass",
            "new connections by DIP",
            "transition s",
        ):
            table.add_column(col)
        for p in result.phases:
            table.add_row(
                p.name,
                p.vip,
                p.mode,
                str(p.packets_delta),
                str(p.flow_entries),
                p.bypass,
                ", ".join(f"{k}: {v}" for k, v in sorted(p.new_connections.items())) or "-",
                f"{p.transition_s:.1f}" if p.transition_s else "-",
            )
        self.console.print(table)
        style = "bold green" if result.ok else "bold red"
        for report in result.reports:
            c = report.counts
            self.console.print(
                Text(
                    f"{report.vip}: long-lived connections: {c.long_lived_opened} opened, "
                    f"{c.broken} broken, {c.closed_cleanly} closed cleanly; new connections: "
                    f"{c.new_ok} ok, {c.new_failed} failed",
                    style=style,
                )
            )
            for b in report.broken[:10]:
                self.console.print(Text(f"  broken: {b}", style="red"))


def run_demo(console: Console, name: str = "demo", keep: bool = True) -> DemoResult:
    if shutil.which("ip") is None:
        raise LbautoError("the demo needs iproute2 (`ip`): run `make demo` or scripts/bootstrap.sh")
    demo = Demo(console, name=name)
    try:
        return demo.run()
    finally:
        if not keep:
            from lbauto.lab import down

            down(name)
