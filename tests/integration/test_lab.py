"""The namespace lab, for real: namespaces, FRR, sshd, servers and the measuring client."""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lbauto.cli.lab import app
from lbauto.errors import LabError
from lbauto.lab import Lab, LabSpec, down, run_traffic, start_traffic
from lbauto.lab.state import lab_dir
from tests.integration.conftest import MakeLab, vtysh, wait_route

pytestmark = pytest.mark.integration

LAB = "lbt1"
FRR_ROOTS = (Path("/etc/frr"), Path("/var/run/frr"))


@pytest.fixture(scope="module")
def lab(make_lab: MakeLab) -> Lab:
    return make_lab(LAB)


def footprint(name: str) -> dict[str, list[str]]:
    """Everything a lab named ``name`` could leave on the host."""
    netns = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout
    links = json.loads(
        subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=False).stdout
    )
    ps = subprocess.run(
        ["ps", "-eww", "-o", "pid,args"], capture_output=True, text=True, check=False
    ).stdout
    lab_root = lab_dir(name).parent
    return {
        "netns": [n.split()[0] for n in netns.splitlines() if n.startswith(f"{name}-")],
        "links": [k["ifname"] for k in links if k["ifname"].startswith(f"{name}-")],
        "frr": [str(p) for root in FRR_ROOTS for p in root.glob(f"{name}-*")],
        "procs": [line for line in ps.splitlines() if f"{name}-" in line or f"/{name}/" in line],
        "files": [str(p) for p in lab_root.glob(f"*{name}*")] if lab_root.exists() else [],
    }


def py_in(lab: Lab, netns: str, code: str) -> str:
    return lab.run(netns, sys.executable, "-c", code).stdout.strip()


def echo(lab: Lab, vip: str, line: str = "hello") -> str:
    code = (
        "import socket;"
        f"s=socket.create_connection(({vip!r}, 7), timeout=2);"
        f"s.sendall(b{line!r}+b'\\n');"
        "print(s.makefile().readline().strip())"
    )
    return py_in(lab, lab.client.netns, code)


def http(lab: Lab, vip: str) -> str:
    host = f"[{vip}]" if ":" in vip else vip
    code = (
        "import urllib.request;"
        f"print(urllib.request.urlopen('http://{host}/', timeout=2).read().decode().strip())"
    )
    return py_in(lab, lab.client.netns, code)


def bypass(lab: Lab, vip: str, dip: str, remove: str | None = None, router: str = "r1") -> None:
    """Route ``vip`` to ``dip`` by hand (optionally removing the route to ``remove``)."""
    is6 = ":" in vip
    plen, kw = ("128", "ipv6") if is6 else ("32", "ip")
    cmds = [f"{kw} route {vip}/{plen} {dip}"]
    if remove:
        cmds.append(f"no {kw} route {vip}/{plen} {remove}")
    vtysh(lab, router, *cmds)
    wait_route(lab, router, f"{vip}/{plen}" if not is6 else vip, dip)


def unroute(lab: Lab, vip: str, dip: str, router: str = "r1") -> None:
    is6 = ":" in vip
    plen, kw = ("128", "ipv6") if is6 else ("32", "ip")
    vtysh(lab, router, f"no {kw} route {vip}/{plen} {dip}")


# ---------------------------------------------------------------------------- lifecycle


def test_up_then_down_leaves_nothing_behind(lab_host: None) -> None:
    name = "lbtclean"
    assert footprint(name) == {"netns": [], "links": [], "frr": [], "procs": [], "files": []}
    try:
        lab = Lab.up(LabSpec(name=name, routers=2, agents=2, dips=2))
        seen = footprint(name)
        assert len(seen["netns"]) == 2 + 2 + 2 + 2  # routers, agents, DIPs, client + switch
        assert f"{name}-mgmt" in seen["links"]
        assert len(seen["frr"]) == 4  # config and run dir per router
        assert len(seen["procs"]) >= 2 * 4 + 2  # zebra, staticd, pbrd, sshd per router; servers
        assert lab.state_dir.is_dir()
    finally:
        down(name)
    assert footprint(name) == {"netns": [], "links": [], "frr": [], "procs": [], "files": []}


def test_up_repairs_and_down_cleans_a_damaged_lab(lab_host: None) -> None:
    name = "lbtcrash"
    try:
        lab = Lab.up(LabSpec(name=name, dips=1))
        # A dead DIP server: the next ``up`` rebuilds the lab instead of reporting it.
        servers_pid = int((lab.state_dir / "d1" / "servers.pid").read_text())
        subprocess.run(["kill", "-9", str(servers_pid)], check=True)
        time.sleep(0.2)
        assert not all(m.ok for m in lab.status())
        lab = Lab.up(LabSpec(name=name, dips=1))
        assert all(m.ok for m in lab.status())
        # The router's namespace deleted under FRR's feet: its daemons live on, unnamed, and
        # ``down`` still finds them through their pid files.
        zebra = int(Path(f"/var/run/frr/{name}-r1/zebra.pid").read_text())
        subprocess.run(["ip", "netns", "del", f"{name}-r1"], check=True)
        assert Path(f"/proc/{zebra}").exists()
    finally:
        down(name)
    assert footprint(name) == {"netns": [], "links": [], "frr": [], "procs": [], "files": []}


def test_failed_up_removes_what_it_made(lab_host: None) -> None:
    name = "lbtfail"
    # A root link with the name the management veth of r1 needs: up fails half-way (after the
    # namespaces and the server/client bridges exist), for real.
    subprocess.run(
        ["ip", "link", "add", f"{name}-mr1", "type", "veth", "peer", "name", f"{name}-x"],
        check=True,
    )
    try:
        with pytest.raises(LabError, match=f"{name}-mr1"):
            Lab.up(LabSpec(name=name))
        assert footprint(name) == {"netns": [], "links": [], "frr": [], "procs": [], "files": []}
    finally:
        down(name)


def test_second_up_is_idempotent_and_refuses_another_shape(lab: Lab) -> None:
    started = time.monotonic()
    again = Lab.up(LabSpec(name=LAB))
    assert time.monotonic() - started < 2
    assert again.index == lab.index
    assert [m.ok for m in again.status()] == [True] * len(again.status())
    with pytest.raises(LabError, match="already up with 1 router"):
        Lab.up(LabSpec(name=LAB, routers=2))
    assert Lab.load(LAB).layout == lab.layout


def test_refuses_a_management_subnet_clash(lab_host: None) -> None:
    subprocess.run(["ip", "route", "add", "blackhole", "198.18.63.0/25"], check=True)
    try:
        with pytest.raises(LabError, match=r"198\.18\.63\.0/25 .*clash"):
            Lab.up(LabSpec(name="lbtclash", index=63))
        assert footprint("lbtclash")["netns"] == []
        assert not lab_dir("lbtclash").exists()
    finally:
        subprocess.run(["ip", "route", "del", "blackhole", "198.18.63.0/25"], check=True)
        down("lbtclash")


def test_refuses_a_bad_name_and_a_non_root_user(lab_host: None) -> None:
    with pytest.raises(LabError, match="lab name"):
        Lab.up(LabSpec(name="Bad-Name"))
    code = "from lbauto.lab import Lab, LabSpec; Lab.up(LabSpec(name='lbtuser'))"
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "the lab needs root" in proc.stderr


# ---------------------------------------------------------------------------- routers


def test_router_answers_show_running_config_over_ssh_with_netmiko(lab: Lab) -> None:
    from netmiko import ConnectHandler

    r = lab.router("r1")
    conn = ConnectHandler(
        device_type="linux",
        host=str(r.mgmt_ip),
        port=r.ssh_port,
        username=r.ssh_user,
        key_file=str(r.key_file),
        use_keys=True,
        allow_agent=False,
    )
    try:
        out = conn.send_command(f"vtysh -N {r.pathspace} -c 'show running-config no-header'")
    finally:
        conn.disconnect()
    assert "frr version" in out
    assert "service integrated-vtysh-config" in out


def test_password_login_is_refused(lab: Lab) -> None:
    r = lab.router("r1")
    proc = subprocess.run(
        [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            f"root@{r.mgmt_ip}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert proc.returncode == 255
    assert "Permission denied" in proc.stderr


def test_static_route_through_vtysh_reaches_the_kernel(lab: Lab) -> None:
    vtysh(lab, "r1", "ip route 192.0.2.99/32 198.51.100.23 tag 4242 200")
    try:
        wait_route(lab, "r1", "192.0.2.99", "198.51.100.23")
        out = lab.run(lab.router("r1").netns, "ip", "route", "show", "192.0.2.99").stdout
        assert "proto static" in out
    finally:
        vtysh(lab, "r1", "no ip route 192.0.2.99/32 198.51.100.23")
    wait_route(lab, "r1", "192.0.2.99", None)


def test_frr_reload_works_on_the_pathspace(lab: Lab, tmp_path: Path) -> None:
    r = lab.router("r1")
    running = subprocess.run(
        ["vtysh", "-N", r.pathspace, "-c", "show running-config no-header"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    new = tmp_path / "frr.conf"
    new.write_text(running.replace("end\n", "ip route 192.0.2.98/32 198.51.100.22 tag 4242\nend\n"))
    try:
        subprocess.run(
            ["/usr/lib/frr/frr-reload.py", "--reload", "-N", r.pathspace, "--stdout", str(new)],
            check=True,
            capture_output=True,
            text=True,
        )
        wait_route(lab, "r1", "192.0.2.98", "198.51.100.22")
    finally:
        vtysh(lab, "r1", "no ip route 192.0.2.98/32 198.51.100.22")


# ---------------------------------------------------------------------------- servers


@pytest.mark.parametrize(
    ("vip", "dip"),
    [("192.0.2.10", "198.51.100.22"), ("2001:db8:10::10", "2001:db8:100::23")],
)
def test_vip_routed_by_hand_is_answered_by_that_dip(lab: Lab, vip: str, dip: str) -> None:
    name = {"198.51.100.22": "d2", "2001:db8:100::23": "d3"}[dip]
    bypass(lab, vip, dip)
    try:
        assert echo(lab, vip, "ping 1") == f"{name} ping 1"
        assert http(lab, vip) == name
    finally:
        unroute(lab, vip, dip)


# ---------------------------------------------------------------------------- traffic


def test_traffic_reports_no_break_on_a_stable_path(lab: Lab) -> None:
    vip = "192.0.2.10"
    bypass(lab, vip, "198.51.100.21")
    try:
        report = run_traffic(lab, vip, connections=20, duration=3, new_per_second=20)
    finally:
        unroute(lab, vip, "198.51.100.21")
    c = report.counts
    assert (c.broken, c.new_failed, c.long_lived_failed) == (0, 0, 0), report.to_json()
    assert report.distribution["long_lived"] == {"d1": 20}
    assert report.distribution["final"] == {"d1": 20}
    assert report.distribution["new"] == {"d1": c.new_ok}
    assert 50 <= c.new_ok <= 61
    # ~10 answers per connection per second, all checked.
    assert c.exchanges >= 20 * 3 * 10 * 0.8
    assert c.closed_cleanly == 20


def test_traffic_reports_breaks_when_the_route_switches_mid_run(lab: Lab) -> None:
    vip = "192.0.2.11"
    bypass(lab, vip, "198.51.100.21")
    try:
        handle = start_traffic(lab, vip, connections=20, duration=None, new_per_second=10)
        handle.wait_ready()
        time.sleep(1.0)
        switched = time.time()
        # d2 has no state for these connections: it resets each of them.
        bypass(lab, vip, "198.51.100.22", remove="198.51.100.21")
        time.sleep(1.5)
        report = handle.stop_and_report()
    finally:
        unroute(lab, vip, "198.51.100.22")
        unroute(lab, vip, "198.51.100.21")
    t_switch = switched - report.started_at
    assert report.distribution["long_lived"] == {"d1": 20}
    assert report.counts.broken == 20, report.to_json()
    assert {b.reason for b in report.broken} == {"reset"}
    assert {b.dip for b in report.broken} == {"d1"}
    assert len({b.conn for b in report.broken}) == 20
    for b in report.broken:
        assert t_switch - 0.05 <= b.t <= t_switch + 1.0, (t_switch, b)
        assert b.last_ok <= b.t
    # Broken connections were replaced: the new ones and the short ones land on d2.
    assert report.distribution["replacements"] == {"d2": 20}
    assert report.distribution["final"] == {"d2": 20}
    assert set(report.distribution["new"]) <= {"d1", "d2"}
    assert report.counts.new_failed == 0


def test_traffic_lifetime_closes_and_replaces_connections(lab: Lab) -> None:
    vip = "192.0.2.10"
    bypass(lab, vip, "198.51.100.23")
    try:
        report = run_traffic(lab, vip, connections=5, duration=2.6, lifetime=1.0)
    finally:
        unroute(lab, vip, "198.51.100.23")
    c = report.counts
    assert c.broken == 0
    assert c.closed_lifetime == 10  # each slot closed at 1 s and 2 s
    assert c.closed_cleanly == 15
    assert c.long_lived_opened == 15
    assert report.distribution["replacements"] == {"d3": 10}


def test_traffic_to_an_unrouted_vip_fails_every_connection(lab: Lab) -> None:
    report = run_traffic(lab, "192.0.2.77", connections=2, duration=1.5, new_per_second=2)
    assert report.counts.long_lived_opened == 0
    assert report.counts.long_lived_failed >= 2
    assert report.counts.new_ok == 0
    assert report.counts.new_failed >= 2
    # r1 has no route: it answers with ICMP unreachable (rate-limited: the rest time out).
    reasons = {f.reason for f in report.failures}
    assert "unreachable" in reasons and reasons <= {"unreachable", "timeout"}


# ---------------------------------------------------------------------------- more labs


def test_two_labs_side_by_side_and_three_routers(lab: Lab, make_lab: MakeLab) -> None:
    other = make_lab("lbt2", routers=3, dips=2, method="pbr")
    assert other.index != lab.index
    assert [r.name for r in other.routers] == ["r1", "r2", "r3"]
    # The same data-plane addresses in both labs, separate namespaces: routes do not mix.
    lab.add_vip("192.0.2.12")
    other.add_vip("192.0.2.12")
    bypass(lab, "192.0.2.12", "198.51.100.21")
    bypass(other, "192.0.2.12", "198.51.100.22")
    try:
        assert echo(lab, "192.0.2.12") == "d1 hello"
        assert echo(other, "192.0.2.12") == "d2 hello"
    finally:
        unroute(lab, "192.0.2.12", "198.51.100.21")
        unroute(other, "192.0.2.12", "198.51.100.22")
        lab.remove_vip("192.0.2.12")
    # Every router of the second lab is reachable over SSH with its lab key and runs its FRR.
    for r in other.routers:
        proc = subprocess.run(
            [
                "ssh",
                "-i",
                str(r.key_file),
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                f"root@{r.mgmt_ip}",
                f"vtysh -N {r.pathspace} -c 'show interface brief'",
            ],
            capture_output=True,
            text=True,
            timeout=15,
            check=True,
        )
        assert "srv" in proc.stdout and "cli" in proc.stdout
    hosts = (other.inventory_dir / "hosts.yaml").read_text()
    assert "method: pbr" in hosts and "r3:" in hosts


def test_inventory_is_written_for_the_lab(lab: Lab) -> None:
    import yaml

    inv = lab.inventory_dir
    hosts = yaml.safe_load((inv / "hosts.yaml").read_text())
    r1 = hosts["r1"]
    assert r1["hostname"] == str(lab.router("r1").mgmt_ip)
    assert r1["platform"] == "frr" and r1["username"] == "root"
    assert r1["data"] == {"lbauto_method": "static", "lbauto_ingress": ["cli"]}
    args = r1["connection_options"]["napalm"]["extras"]["optional_args"]
    assert args == {"key_file": str(lab.key_file), "pathspace": f"{LAB}-r1", "transport": "ssh"}
    agents = yaml.safe_load((inv / "agents.yaml").read_text())["agents"]
    a1 = lab.agent("a1")
    assert agents == [
        {
            "name": "a1",
            "api": a1.api_url,
            "address": "198.51.100.10",
            "address6": "2001:db8:100::10",
            "token_file": str(a1.token_file),
        }
    ]
    assert a1.token_file.stat().st_mode & 0o777 == 0o600
    vips = {v["name"]: v for v in yaml.safe_load((inv / "vips.yaml").read_text())["vips"]}
    assert vips["web"]["dips"] == ["198.51.100.21", "198.51.100.22", "198.51.100.23"]
    assert vips["api"]["dips"] == ["198.51.100.21"]
    assert vips["v6web"]["address"] == "2001:db8:10::10"
    config = yaml.safe_load(a1.config_file.read_text())
    assert config == {
        "listen": str(a1.mgmt_ip),
        "port": 8080,
        "interface": "srv",
        "token_file": str(a1.token_file),
        "state_file": str(a1.state_file),
    }
    groups = yaml.safe_load((inv / "groups.yaml").read_text())
    assert groups["lab"]["platform"] == "frr"
    assert yaml.safe_load((inv / "defaults.yaml").read_text()) == {"username": "root", "port": 22}


def test_agent_host_is_prepared(lab: Lab) -> None:
    a = lab.agent("a1")
    for key, want in (
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.send_redirects", "0"),
        ("net.ipv4.conf.srv.send_redirects", "0"),
        ("net.ipv4.conf.all.accept_redirects", "0"),
        ("net.ipv6.conf.srv.accept_dad", "0"),
    ):
        assert lab.run(a.netns, "sysctl", "-n", key).stdout.strip() == want, key
    d = lab.dip("d1")
    assert lab.run(d.netns, "sysctl", "-n", "net.ipv4.conf.all.arp_ignore").stdout.strip() == "1"
    assert "192.0.2.10/32" in lab.run(d.netns, "ip", "addr", "show", "lo").stdout


def test_agents_start_and_stop_in_their_namespace(lab: Lab) -> None:
    import httpx

    a = lab.agent("a1")
    # A second ``up`` asking for agents starts them on the running lab.
    Lab.up(LabSpec(name=LAB, start_agents=True))
    try:
        pid = lab.agent_pid("a1")
        assert pid is not None
        assert lab.start_agent("a1") == pid  # already running: same process
        where = subprocess.run(
            ["ip", "netns", "identify", str(pid)], capture_output=True, text=True, check=True
        )
        assert where.stdout.strip() == a.netns
        token = a.token_file.read_text().strip()
        ok = httpx.get(f"{a.api_url}/v1/vips", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert httpx.get(f"{a.api_url}/v1/vips").status_code == 401
        assert {m.name: m.processes.get("agent") for m in lab.status()}["a1"] is True
    finally:
        lab.stop_agent("a1", kill=True)
    assert lab.agent_pid("a1") is None
    assert not (Path("/proc") / str(pid)).exists()


@pytest.mark.parametrize(
    ("vip", "dips"),
    [
        ("192.0.2.13", ["198.51.100.21", "198.51.100.22", "198.51.100.23"]),
        ("2001:db8:10::13", ["2001:db8:100::21", "2001:db8:100::22"]),
    ],
)
def test_agent_host_forwards_with_dsr(lab: Lab, vip: str, dips: list[str]) -> None:
    """The agent host as prepared by the lab: the real agent spreads a VIP over DIPs (DSR)."""
    import httpx

    a = lab.agent("a1")
    lab.add_vip(vip)
    lab.start_agent("a1")
    headers = {"Authorization": f"Bearer {a.token_file.read_text().strip()}"}
    body = {"mode": "multi", "dips": dips, "flow_tracking": True}
    next_hop = str(a.address6 if ":" in vip else a.address)
    try:
        put = httpx.put(f"{a.api_url}/v1/vips/{vip}", headers=headers, json=body, timeout=10)
        assert put.status_code in (200, 201), put.text
        bypass(lab, vip, next_hop)
        report = run_traffic(lab, vip, connections=30, duration=2, new_per_second=20)
    finally:
        unroute(lab, vip, next_hop)
        httpx.delete(f"{a.api_url}/v1/vips/{vip}", headers=headers, timeout=10)
        lab.stop_agent("a1")
        lab.remove_vip(vip)
    c = report.counts
    assert (c.broken, c.new_failed, c.long_lived_failed) == (0, 0, 0), report.to_json()
    # Spread over every DIP (30 connections: each DIP gets some, with overwhelming odds).
    assert set(report.distribution["long_lived"]) == {f"d{k + 1}" for k in range(len(dips))}


# ---------------------------------------------------------------------------- CLI


def test_cli_status_and_traffic_json(lab: Lab) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["status", "--name", LAB, "--output", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["name"] == LAB and all(m["ok"] for m in data["members"])
    assert {m["role"] for m in data["members"]} == {"router", "agent", "dip", "client"}

    bypass(lab, "192.0.2.10", "198.51.100.22")
    try:
        result = runner.invoke(
            app,
            [
                "traffic",
                "--name",
                LAB,
                "--vip",
                "192.0.2.10",
                "--connections",
                "3",
                "--duration",
                "1",
                "--output",
                "json",
                "--strict",
            ],
        )
    finally:
        unroute(lab, "192.0.2.10", "198.51.100.22")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["distribution"]["long_lived"] == {"d2": 3}


def test_cli_errors_are_one_line(lab_host: None) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["status", "--name", "lbtnone"])
    assert result.exit_code == 1
    want = "error: no lab named lbtnone: run `lbauto lab up --name lbtnone`"
    assert result.output.strip() == want
    result = runner.invoke(app, ["up", "--name", "Bad!"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["down", "--name", "lbtnone"])
    assert result.exit_code == 0


# ---------------------------------------------------------------------------- client, exactly


class _Misbehaving(socketserver.StreamRequestHandler):
    """Echo server whose connection ``cK`` misbehaves after 3 good answers, by K."""

    def handle(self) -> None:
        for answered, raw in enumerate(self.rfile):
            line = raw.rstrip(b"\n")
            conn = int(line.split()[0][1:])
            if answered == 3 and conn <= 4:
                if conn == 0:  # another DIP answers
                    self.wfile.write(b"dB " + line + b"\n")
                elif conn == 1:  # silence: the client must time out after 2 s
                    time.sleep(3)
                elif conn == 2:  # the answer does not echo the line
                    self.wfile.write(b"dA garbage\n")
                elif conn == 3:  # polite close
                    pass
                else:  # reset: close at once with linger 0 (no FIN first)
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                return
            self.wfile.write(b"dA " + line + b"\n")


def test_client_detects_every_kind_of_break() -> None:
    """The measuring client against a local server that breaks connections on purpose."""
    socketserver.ThreadingTCPServer.daemon_threads = True
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Misbehaving) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            port = server.server_address[1]
            argv = [sys.executable, "-m", "lbauto.lab.client", "--vip", "127.0.0.1"]
            argv += ["--port", str(port), "--connections", "6", "--duration", "3"]
            out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30)
        finally:
            server.shutdown()
    from lbauto.lab.traffic import TrafficReport

    report = TrafficReport.from_dict(json.loads(out.stdout))
    by_conn = {b.conn: b for b in report.broken}
    assert {k: b.reason for k, b in by_conn.items()} == {
        0: "wrong-dip",
        1: "timeout",
        2: "bad-answer",
        3: "closed",
        4: "reset",
    }
    assert by_conn[0].answered_by == "dB"
    assert all(b.dip == "dA" for b in report.broken)
    # Each broke right after its 3 good answers (~0.3 s), the timeout 2 s later.
    for k, b in by_conn.items():
        assert b.last_ok < 0.5, b
        assert (2.0 <= b.t - b.last_ok <= 2.4) if k == 1 else (b.t - b.last_ok <= 0.2), b
    assert report.counts.broken == 5
    assert report.distribution["long_lived"] == {"dA": 6}
    # The five broken connections were replaced: six connections at the end.
    assert report.distribution["final"] == {"dA": 6}
    assert report.counts.long_lived_opened == 11
