"""``lbauto lab ...``: build, inspect, measure and remove a namespace lab.

Thin: parse, call :mod:`lbauto.lab`, print (rich tables, or JSON with ``--output json``).
"""

from __future__ import annotations

import functools
import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lbauto.errors import LbautoError

if TYPE_CHECKING:
    # Every lbauto command registers this group: the lab package and rich load only when a
    # lab command runs.
    from rich.console import Console

    from lbauto.lab.lab import Lab
    from lbauto.lab.traffic import TrafficReport

app = typer.Typer(
    help="A lab of network namespaces on this host: FRR routers over SSH, agents, DIP hosts "
    "with echo/HTTP servers and a client; writes an inventory lbauto can drive (needs root).",
    no_args_is_help=True,
)


@functools.cache
def _console() -> Console:
    from rich.console import Console

    return Console()


NameOpt = Annotated[str, typer.Option("--name", "-n", help="Lab name (1-8 chars, a-z0-9).")]


class Output(StrEnum):
    table = "table"
    json = "json"


class MethodChoice(StrEnum):
    static = "static"
    pbr = "pbr"


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json.")]


def _fail(err: LbautoError) -> typer.Exit:
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(1)


def _lab_json(lab: Lab) -> dict[str, Any]:
    return {
        "name": lab.name,
        "index": lab.index,
        "state_dir": str(lab.state_dir),
        "inventory": str(lab.inventory_dir),
        "key_file": str(lab.key_file),
        "members": [
            {
                "name": m.name,
                "role": m.role,
                "netns": m.netns,
                "address": m.address,
                "ok": m.ok,
                "processes": m.processes,
            }
            for m in lab.status()
        ],
    }


def _print_lab(lab: Lab, output: Output) -> None:
    from rich.table import Table

    data = _lab_json(lab)
    if output is Output.json:
        typer.echo(json.dumps(data, indent=2))
        return
    console = _console()
    table = Table(title=f"lab {lab.name} (management 198.18.{lab.index}.0/24)")
    for col in ("member", "role", "namespace", "address", "processes"):
        table.add_column(col)
    for m in data["members"]:
        procs = " ".join(
            f"[green]{p}[/green]" if ok else f"[red]{p} DOWN[/red]"
            for p, ok in m["processes"].items()
        )
        table.add_row(m["name"], m["role"], m["netns"], m["address"], procs)
    console.print(table)
    console.print(f"inventory: {data['inventory']}")
    console.print(f"try: lbauto --inventory {data['inventory']} plan")


@app.command()
def up(
    name: NameOpt = "lab",
    routers: Annotated[int, typer.Option(help="Number of FRR routers.")] = 1,
    agents: Annotated[int, typer.Option(help="Number of agent hosts.")] = 1,
    dips: Annotated[int, typer.Option(help="Number of DIP hosts.")] = 3,
    method: Annotated[MethodChoice, typer.Option(help="Bypass method.")] = MethodChoice.static,
    index: Annotated[
        int | None, typer.Option(help="Management subnet 198.18.<index>.0/24 (default: free).")
    ] = None,
    start_agents: Annotated[
        bool, typer.Option("--start-agents/--no-start-agents", help="Start the agents too.")
    ] = False,
    bgp: Annotated[
        bool,
        typer.Option(
            "--bgp/--no-bgp",
            help="Agents announce VIPs over BGP + BFD to every router (ECMP across agents).",
        ),
    ] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Build the lab (idempotent: an existing lab of this shape is reported as is)."""
    from lbauto.lab.lab import Lab
    from lbauto.lab.spec import LabSpec

    spec = LabSpec(
        name=name,
        routers=routers,
        agents=agents,
        dips=dips,
        method=method.value,
        start_agents=start_agents,
        index=index,
        bgp=bgp,
    )
    try:
        lab = Lab.up(spec)
    except LbautoError as err:
        raise _fail(err) from err
    _print_lab(lab, output)


@app.command("down")
def down_cmd(name: NameOpt = "lab") -> None:
    """Remove the lab and everything it made (also after a half-failed up)."""
    from lbauto.lab.lab import down

    try:
        down(name)
    except LbautoError as err:
        raise _fail(err) from err
    typer.echo(f"lab {name} removed")


@app.command()
def status(name: NameOpt = "lab", output: OutputOpt = Output.table) -> None:
    """Show the lab's members, addresses and whether their processes run."""
    from lbauto.lab.lab import Lab

    try:
        lab = Lab.load(name)
    except LbautoError as err:
        raise _fail(err) from err
    _print_lab(lab, output)
    if not all(m.ok for m in lab.status()):
        raise typer.Exit(2)


def _print_report(report: TrafficReport) -> None:
    from rich.table import Table

    console = _console()
    c = report.counts
    table = Table(title=f"traffic to {report.vip}:{report.port} for {report.duration:g} s")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for label, value in (
        ("long-lived connections opened", c.long_lived_opened),
        ("long-lived connections that could not open", c.long_lived_failed),
        ("broken (reset, timeout, other DIP)", c.broken),
        ("closed cleanly (lifetime / end of run)", f"{c.closed_lifetime} / {c.closed_cleanly}"),
        ("answers checked", c.exchanges),
        ("new connections ok", c.new_ok),
        ("new connections failed", c.new_failed),
    ):
        table.add_row(label, str(value))
    for kind, counts in report.distribution.items():
        if counts:
            table.add_row(f"DIPs: {kind}", ", ".join(f"{d}={n}" for d, n in counts.items()))
    console.print(table)
    for b in report.broken:
        other = f" (answered by {b.answered_by})" if b.answered_by else ""
        console.print(f"broken: connection {b.conn} on {b.dip} at {b.t:.3f} s: {b.reason}{other}")
    for f in report.failures:
        console.print(f"failed: {f.kind} connection at {f.t:.3f} s: {f.reason}")


@app.command()
def traffic(
    vip: Annotated[str, typer.Option(help="VIP address to connect to (echo, port 7).")],
    name: NameOpt = "lab",
    connections: Annotated[int, typer.Option(help="Long-lived connections.")] = 10,
    duration: Annotated[float, typer.Option(help="Seconds to run.")] = 10.0,
    lifetime: Annotated[
        float | None, typer.Option(help="Close each long-lived connection after S s, reopen.")
    ] = None,
    new_per_second: Annotated[float, typer.Option(help="Short connections per second.")] = 0.0,
    strict: Annotated[
        bool, typer.Option(help="Exit 2 when any connection broke or failed.")
    ] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Hold long-lived connections and open short ones to a VIP from the client; report.
    Ctrl-C stops the client and prints the report so far (exit 130)."""
    from lbauto.lab.lab import Lab
    from lbauto.lab.traffic import start_traffic

    try:
        lab = Lab.load(name)
        handle = start_traffic(lab, vip, connections, duration, lifetime, new_per_second)
        try:
            report, interrupted = handle.wait(timeout=duration + 30), False
        except KeyboardInterrupt:
            # The client runs in the lab's namespace: stop it (it may have had the SIGINT of
            # the terminal too) and keep what it measured.
            report, interrupted = handle.stop_and_report(), True
    except LbautoError as err:
        raise _fail(err) from err
    if output is Output.json:
        typer.echo(report.to_json())
    else:
        _print_report(report)
    c = report.counts
    if interrupted:
        raise typer.Exit(130)
    if strict and (c.broken or c.new_failed or c.long_lived_failed):
        raise typer.Exit(2)
