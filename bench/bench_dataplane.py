"""The agent's data plane beside its peers, in one lab, in alternation (needs root).

    sudo .venv/bin/python bench/bench_dataplane.py [--rounds 3] [--seconds 2] [--json]

Paths to the same DIP hosts (nginx on port 80, iperf3 on port 5201), one VIP each, all set up
at once so that a round measures every path back to back (the start rotates per round):

- ``direct``: the router's bypass (VIP -> DIP d1), what a single-DIP VIP gets after ``apply``;
- ``floor``: the agent host forwarding with one ``fwd`` rule and no lookup: the cost of the
  extra hop itself, below which no agent ruleset can go;
- ``agent on`` / ``agent off``: the lbauto agent with flow tracking on / off (3 DIPs);
- ``haproxy``: HAProxy (Debian's, TCP mode) on the agent host, same DIPs, not DSR;
- ``nft dnat``: an nftables DNAT + conntrack balancer on the agent host the way kube-proxy's
  nftables mode builds it (service verdict map -> ``numgen random mod N`` -> endpoint chain
  -> ``dnat``, masquerade for outside clients), added only while it is measured.

Metrics per path and family: new connections per second (wrk, ``Connection: close``: one
request per connection), keep-alive requests per second (wrk), TCP throughput with 1 and 4
flows (iperf3, to a 1-DIP VIP of the path), CPU seconds per GB moved (iperf3's client and
server, which carry the forwarding softirq work, plus HAProxy's process on its path) and the
kernel cost per packet (a UDP sender's system time per packet: ``us/pkt est`` one flow,
``us/pkt new`` a new flow key per packet; only for the stateless paths and the agent). The
last line with ``--json`` is the machine-readable document.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lbauto.core.model import Mode
from tests.integration.agent_net import Net, addr, network, sh

REPO = Path(__file__).resolve().parent.parent
PATHS = ("direct", "floor", "agent on", "agent off", "haproxy", "nft dnat")
#: The agent's IP on the server segment: where the router sends VIPs of the agent's host.
AGENT = {4: "198.51.100.10", 6: "2001:db8:100::10"}
METRICS = (
    "conn/s",
    "req/s",
    "1-flow Gbit/s",
    "4-flow Gbit/s",
    "CPU s/GB (4-flow)",
    "us/pkt est",
    "us/pkt new",
)
#: VIP last octet / group per path: the 3-DIP VIP (wrk) and the 1-DIP VIP (iperf3).
HOST = {
    "direct": 11,
    "floor": 17,
    "agent on": 12,
    "agent off": 13,
    "haproxy": 14,
    "nft dnat": 15,
    "before on": 31,
    "before off": 32,
    "after on": 33,
    "after off": 34,
}
HOST1 = {"agent on": 22, "agent off": 23, "before on": 41, "before off": 42, "after on": 43}
HOST1["after off"] = 44


def vip(path: str, v: int, one: bool = False) -> str:
    n = (HOST1.get(path, HOST[path])) if one else HOST[path]
    return f"192.0.2.{n}" if v == 4 else f"2001:db8:10::{n:x}"


def url(address: str) -> str:
    return f"http://[{address}]/" if ":" in address else f"http://{address}/"


# ---------------------------------------------------------------------------- servers


def nginx_conf(d: Path, name: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text(
        f"worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n"
        "events { worker_connections 8192; }\n"
        "http {\n  access_log off;\n  keepalive_requests 10000000;\n"
        f"  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};\n"
        f"  uwsgi_temp_path {d}; scgi_temp_path {d};\n"
        "  server {\n    listen 80 backlog=4096;\n    listen [::]:80 backlog=4096;\n"
        f'    location / {{ return 200 "{name}\\n"; }}\n  }}\n}}\n'
    )
    return conf


def haproxy_conf(d: Path, net: Net) -> Path:
    lines = [
        "global",
        "  maxconn 8000",  # two fds per connection under the 20k open-file limit
        "defaults",
        "  mode tcp",
        "  timeout connect 5s",
        "  timeout client 30s",
        "  timeout server 30s",
    ]
    for v in (4, 6):
        table = net.dip4 if v == 4 else net.dip6
        d1 = table["d1"]
        fmt = (lambda a: a) if v == 4 else (lambda a: f"[{a}]")
        va = vip("haproxy", v)
        lines += [
            f"frontend web{v}",
            f"  bind {fmt(va)}:80",
            f"  default_backend web{v}",
            f"backend web{v}",
            "  balance roundrobin",
            *(f"  server {n} {fmt(a)}:80" for n, a in table.items()),
            f"frontend perf{v}",
            f"  bind {fmt(va)}:5201",
            f"  default_backend perf{v}",
            f"backend perf{v}",
            f"  server d1 {fmt(d1)}:5201",
        ]
    conf = d / "haproxy.cfg"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def kube_table(net: Net) -> str:
    """An nftables DNAT balancer laid out as kube-proxy's nftables mode lays it out."""
    out = [
        "table inet dpkube {",
        "  map service-ips { type ipv4_addr . inet_proto . inet_service : verdict;",
        f"    elements = {{ {vip('nft dnat', 4)} . tcp . 80 : goto svc4-web, "
        f"{vip('nft dnat', 4)} . tcp . 5201 : goto svc4-perf }} }}",
        "  map service-ips6 { type ipv6_addr . inet_proto . inet_service : verdict;",
        f"    elements = {{ {vip('nft dnat', 6)} . tcp . 80 : goto svc6-web, "
        f"{vip('nft dnat', 6)} . tcp . 5201 : goto svc6-perf }} }}",
        "  chain services {",
        "    ip daddr . meta l4proto . th dport vmap @service-ips",
        "    ip6 daddr . meta l4proto . th dport vmap @service-ips6",
        "  }",
        "  chain prerouting { type nat hook prerouting priority dstnat; jump services; }",
        "  chain mark-for-masquerade { meta mark set meta mark | 0x4000; }",
        "  chain postrouting { type nat hook postrouting priority srcnat;",
        "    meta mark & 0x4000 == 0 return",
        "    meta mark set meta mark ^ 0x4000",
        "    masquerade fully-random",
        "  }",
    ]
    for v in (4, 6):
        table = net.dip4 if v == 4 else net.dip6
        f = "ip" if v == 4 else "ip6"
        names = list(table)
        arms = ", ".join(f"{i} : goto ep{v}-{n}" for i, n in enumerate(names))
        out += [
            f"  chain svc{v}-web {{ jump mark-for-masquerade; "
            f"numgen random mod {len(names)} vmap {{ {arms} }}; }}",
            f"  chain svc{v}-perf {{ jump mark-for-masquerade; goto ep{v}-perf; }}",
            f"  chain ep{v}-perf {{ meta l4proto tcp dnat {f} to "
            f"{table['d1'] if v == 4 else '[' + table['d1'] + ']'}:5201; }}",
        ]
        for n in names:
            a = table[n] if v == 4 else f"[{table[n]}]"
            out.append(f"  chain ep{v}-{n} {{ meta l4proto tcp dnat {f} to {a}:80; }}")
    out.append("}")
    return "\n".join(out) + "\n"


def floor_table(net: Net) -> str:
    """One ``fwd`` per family, after lbauto's chain (its verdict-map miss is paid too)."""
    return (
        'table netdev dpfloor {\n  chain ingress { type filter hook ingress device "eth0" '
        "priority 10; policy accept;\n"
        f'    ip daddr {vip("floor", 4)} fwd ip to {net.dip4["d1"]} device "eth0"\n'
        f'    ip6 daddr {vip("floor", 6)} fwd ip6 to {net.dip6["d1"]} device "eth0"\n'
        "  }\n}\n"
    )


def ab_table(net: Net, rev: str) -> str:
    """One table holding the agent's rulesets of git revision ``rev`` (VIPs ``before on/off``)
    and of this tree (``after on/off``) side by side: the same dispatch for both (one verdict
    map), hooked ahead of the agent's own table, so the comparison is the VIP chains alone."""
    import importlib.util

    from lbauto.agent import dataplane as after
    from lbauto.agent.store import VipRecord

    src = subprocess.run(["git", "show", f"{rev}:lbauto/agent/dataplane.py"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    path = net.dir / "dataplane_before.py"
    path.write_text(src)
    spec_ = importlib.util.spec_from_file_location("dataplane_before", path)
    assert spec_ is not None and spec_.loader is not None
    before = importlib.util.module_from_spec(spec_)
    sys.modules["dataplane_before"] = before  # dataclasses look their module up there
    spec_.loader.exec_module(before)
    spec = after.TableSpec(table="dpab", interface="eth0")
    cmds = [c.replace("priority 0;", "priority -10;") for c in after.render_base(spec)]
    for v in (4, 6):
        table = net.dip4 if v == 4 else net.dip6
        dips = tuple(addr(a) for a in table.values())
        for mod, name in ((before, "before"), (after, "after")):
            for on, one in ((True, False), (False, False), (True, True), (False, True)):
                p = f"{name} {'on' if on else 'off'}"
                rec = VipRecord(address=addr(vip(p, v, one)), mode=Mode.MULTI,
                                dips=dips[:1] if one else dips, flow_tracking=on,
                                generation=1).with_marks()  # fmt: skip
                cmds += mod.render_vip(rec, spec)
    return "\n".join(cmds) + "\n"


def nft_f(net: Net, text: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", net.ns_agt, "nft", "-f", "-"], input=text, text=True, check=True
    )


@contextmanager
def processes(net: Net, work: Path) -> Iterator[None]:
    procs: list[subprocess.Popen[bytes]] = []
    work.mkdir(parents=True, exist_ok=True)
    try:
        for n in net.dip_names:
            conf = nginx_conf(work / f"nginx-{n}", n)
            log = work / f"nginx-{n}.log"
            procs.append(_spawn(net.ns_dip(n), log, "nginx", "-c", str(conf), "-e", str(log),
                                "-g", "daemon off;"))  # fmt: skip
        procs.append(_spawn(net.ns_dip("d1"), work / "iperf3.log", "iperf3", "-s"))
        conf = haproxy_conf(work, net)
        procs.append(_spawn(net.ns_agt, work / "haproxy.log", "haproxy", "-db", "-f", str(conf)))
        PROXY_PIDS["haproxy"] = procs[-1].pid  # ip netns exec execs haproxy: the same pid
        time.sleep(0.7)
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args!r} exited {p.returncode}: see {work}/*.log")
        yield
    finally:
        # SIGTERM first: a SIGKILLed nginx master leaves its workers running, orphaned.
        for p in procs:
            with suppress(ProcessLookupError):
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _spawn(ns: str, log: Path, *argv: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own copy
        return subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=out, stderr=out)


def setup(net: Net, before: str | None) -> None:
    ns = net.ns_agt
    net._sysctl(ns, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
                "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=0",
                "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0")  # fmt: skip
    # HAProxy and the DNAT balancer answer clients themselves (not DSR)
    sh("ip", "-n", ns, "-6", "route", "replace", "default", "via", "2001:db8:100::1")
    for v in (4, 6):
        plen = 32 if v == 4 else 128
        table = net.dip4 if v == 4 else net.dip6
        dips = [addr(a) for a in table.values()]
        for p in HOST:
            if p not in ("haproxy", "nft dnat"):
                net.add_vip(vip(p, v))
        for p in HOST1:
            net.add_vip(vip(p, v, one=True))
        sh("ip", "-n", ns, "addr", "add", f"{vip('haproxy', v)}/{plen}", "dev", "lo")
        net.route(vip("direct", v), table["d1"])
        for p in HOST:
            if p != "direct":
                net.route(vip(p, v), AGENT[v])
        for p in HOST1:
            net.route(vip(p, v, one=True), AGENT[v])
        with net.client() as c:
            c.put_vip(addr(vip("agent on", v)), mode=Mode.MULTI, dips=dips, flow_tracking=True)
            c.put_vip(addr(vip("agent off", v)), mode=Mode.MULTI, dips=dips, flow_tracking=False)
            one = [addr(table["d1"])]
            c.put_vip(addr(vip("agent on", v, True)), mode=Mode.MULTI, dips=one, flow_tracking=True)
            c.put_vip(addr(vip("agent off", v, True)), mode=Mode.SINGLE, dips=one,
                      flow_tracking=False)  # fmt: skip
    nft_f(net, floor_table(net))
    if before:
        nft_f(net, ab_table(net, before))
    for n in net.dip_names:  # the UDP probes end at the DIP's first hook, the same on every path
        sh("ip", "netns", "exec", net.ns_dip(n), "nft", "add table inet dpsink; add chain inet "
           "dpsink pre { type filter hook prerouting priority -300; }; add rule inet dpsink pre "
           "meta l4proto udp drop")  # fmt: skip


# ---------------------------------------------------------------------------- measurements


#: Processes whose CPU counts for a path besides iperf3's own (HAProxy's for its path).
PROXY_PIDS: dict[str, int] = {}


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(net: Net, address: str, seconds: int, close: bool) -> float:
    argv = ["ip", "netns", "exec", net.ns_cli, "wrk", "-t2", "-c32", f"-d{seconds}s"]
    if close:
        argv += ["-H", "Connection: close"]
    out = sh(*argv, url(address)).stdout
    errors = [ln for ln in out.splitlines() if "Socket errors" in ln or "Non-2xx" in ln]
    if errors:
        print(f"  wrk {address}: {errors}", file=sys.stderr)
    for ln in out.splitlines():
        if ln.startswith("Requests/sec:"):
            return float(ln.split()[1])
    raise RuntimeError(f"wrk printed no rate: {out}")


def iperf(
    net: Net, address: str, seconds: int, flows: int, proxy: int | None
) -> tuple[float, float]:
    """(Gbit/s, CPU s per GB): iperf3 client + server (user + system: the forwarding softirq
    runs in the sender's context and is charged to it) + the proxy process if the path has one.
    Not the machine's busy time: other jobs fill it."""
    p0 = proc_cpu_s(proxy) if proxy else 0.0
    out = sh("ip", "netns", "exec", net.ns_cli, "iperf3", "-c", address, "-t", str(seconds),
             "-P", str(flows), "-J").stdout  # fmt: skip
    p1 = proc_cpu_s(proxy) if proxy else 0.0
    doc = json.loads(out)["end"]
    got = doc["sum_received"]
    gb = float(got["bytes"]) / 1e9
    cpu = doc["cpu_utilization_percent"]
    wall = float(got["seconds"])
    own = (float(cpu["host_total"]) + float(cpu["remote_total"])) / 100 * wall
    return float(got["bits_per_second"]) / 1e9, (own + p1 - p0) / gb


#: A UDP sender: its kernel time per packet is the path's cost per packet (this kernel has no
#: IRQ time accounting, so the softirq work of forwarding the packet through the router, the
#: bridge and the agent, done on the sender's CPU as it sends, is charged to the sender).
SENDER = """
import resource, socket, sys
dst, n, new = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
socks = [socket.socket(fam, socket.SOCK_DGRAM) for _ in range(n // 65535 + 2)]
for s in socks:
    s.bind(("::" if ":" in dst else "0.0.0.0", 0))
one = socks[0]
one.connect((dst, 9))
r0 = resource.getrusage(resource.RUSAGE_SELF)
if new:  # a new flow key per packet: each (source port, destination port) once
    for i in range(n):
        socks[i // 65535 + 1].sendto(b"x", (dst, 1 + i % 65535))
else:
    for i in range(n):
        one.send(b"x")
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(r1.ru_stime - r0.ru_stime, r1.ru_utime - r0.ru_utime)
"""
PACKETS = 80_000


def pkt_cost(net: Net, address: str, new: bool) -> float:
    """Kernel microseconds per UDP packet from the client to the DIP (dropped there)."""
    out = sh("ip", "netns", "exec", net.ns_cli, sys.executable, "-c", SENDER, address,
             str(PACKETS), "1" if new else "0").stdout  # fmt: skip
    return float(out.split()[0]) / PACKETS * 1e6


def measure(net: Net, path: str, v: int, metric: str, seconds: int) -> dict[str, float]:
    dnat = path == "nft dnat"
    if dnat:
        nft_f(net, kube_table(net))
    try:
        if metric == "conn/s":
            return {metric: wrk(net, vip(path, v), seconds, close=True)}
        if metric == "req/s":
            return {metric: wrk(net, vip(path, v), seconds, close=False)}
        if metric.startswith("us/pkt"):
            if path in ("haproxy", "nft dnat"):
                return {}  # UDP to their VIPs is not balanced (and would loop via the router)
            return {metric: pkt_cost(net, vip(path, v), new=metric.endswith("new"))}
        flows = 1 if metric.startswith("1") else 4
        gbps, cpu = iperf(net, vip(path, v, one=True), seconds, flows, PROXY_PIDS.get(path))
        out = {metric: gbps}
        if flows == 4:
            out["CPU s/GB (4-flow)"] = cpu
        return out
    finally:
        if dnat:
            net.nft("delete", "table", "inet", "dpkube")


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # so the lab is removed
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=2)
    ap.add_argument("--paths", default=",".join(PATHS))
    ap.add_argument("--families", default="4,6")
    ap.add_argument("--metrics", default="conn/s,req/s,1-flow Gbit/s,4-flow Gbit/s")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--before", metavar="REV", help="also the rulesets of git REV and of this "
                    "tree side by side (paths 'before on/off', 'after on/off')")  # fmt: skip
    args = ap.parse_args()
    for tool in ("wrk", "iperf3", "nginx", "haproxy"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (bench/run --setup installs it)")
    paths = args.paths.split(",")
    if args.before:
        ab = ("before on", "before off", "after on", "after off")
        paths += [p for p in ab if p not in paths]
    fams = [int(x) for x in args.families.split(",")]
    metrics = args.metrics.split(",")
    res: dict[str, dict[str, dict[str, list[float]]]] = {}
    load = [os.getloadavg()[0]]
    t0 = time.perf_counter()
    dirs: list[Path] = []  # the lab's work folder (configs, logs) goes after the lab
    try:
        with network(dips=3, prefix="dp") as net:
            dirs.append(net.dir)
            work = net.dir / "bench"
            setup(net, args.before)
            with processes(net, work):
                for r in range(args.rounds):
                    order = paths[r % len(paths) :] + paths[: r % len(paths)]
                    for v in fams:
                        for metric in metrics:
                            for p in order:
                                got = measure(net, p, v, metric, args.seconds)
                                for k, x in got.items():
                                    res.setdefault(f"IPv{v}", {}).setdefault(p, {}).setdefault(
                                        k, []
                                    ).append(x)
                    load.append(os.getloadavg()[0])
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    doc = {
        "rounds": args.rounds,
        "seconds": args.seconds,
        "load": load,
        "wall_s": time.perf_counter() - t0,
        "results": res,
    }
    print_table(doc)
    if args.json:
        print(json.dumps(doc))


def print_table(doc: dict[str, object]) -> None:
    res = doc["results"]
    assert isinstance(res, dict)
    print(f"rounds {doc['rounds']} x {doc['seconds']} s, load average per round {doc['load']}")
    for fam, paths in res.items():
        print(f"\n{fam:<10}" + "".join(f"{m:>22}" for m in METRICS))
        direct = paths.get("direct", {})
        for p, ms in paths.items():
            cells = []
            for m in METRICS:
                xs = ms.get(m)
                if not xs:
                    cells.append(f"{'-':>22}")
                    continue
                med = statistics.median(xs)
                rel = ""
                if direct.get(m) and m != "CPU s/GB (4-flow)":
                    rel = f" {med / statistics.median(direct[m]):.2f}x"
                cells.append(f"{med:>10.1f} ({min(xs):.0f}-{max(xs):.0f}){rel}".rjust(22))
            print(f"{p:<10}" + "".join(cells))


if __name__ == "__main__":
    main()
