"""Rendered FRR config on a real FRR 8.4: it loads, reads back through the parser unchanged,
round-trips through frr-reload without spurious changes, and change lines move it exactly.

One throwaway FRR (zebra, staticd, pbrd) runs in network namespace ``lbrender-<pid>`` with its
own pathspace; a veth pair inside gives the server segment (``srv0``) and an ingress (``in0``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbauto.core.model import (
    Method,
    OwnedObject,
    PbrBinding,
    PbrRule,
    Router,
    StaticRoute,
)
from lbauto.lab.frr import with_mgmtd
from lbauto.platforms import parse_owned
from lbauto.platforms.render import render_changes, render_config

pytestmark = pytest.mark.integration

TAG = 4242
FRR_BIN = Path("/usr/lib/frr")
ROUTER = Router("r1", "localhost", "frr", Method.PBR, ingress=("in0",), tag=TAG)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


class Frr:
    def __init__(self, name: str) -> None:
        self.name = name
        self.rundir = Path("/var/run/frr") / name
        self.confdir = Path("/etc/frr") / name

    def start(self) -> None:
        sh("ip", "netns", "add", self.name)
        ns = ("ip", "-n", self.name)
        sh(*ns, "link", "set", "lo", "up")
        sh(*ns, "link", "add", "srv0", "type", "veth", "peer", "name", "in0")
        sh(*ns, "addr", "add", "198.51.100.1/24", "dev", "srv0")
        sh(*ns, "addr", "add", "2001:db8:100::1/64", "dev", "srv0", "nodad")
        sh(*ns, "link", "set", "srv0", "up")
        sh(*ns, "link", "set", "in0", "up")
        for d in (self.rundir, self.confdir):
            sh("install", "-d", "-o", "frr", "-g", "frr", str(d))
        (self.confdir / "vtysh.conf").touch()
        for daemon in with_mgmtd(("zebra", "staticd", "pbrd")):
            sh(
                "ip", "netns", "exec", self.name, str(FRR_BIN / daemon),
                "-N", self.name, "-d", "-f", "/dev/null", "-A", "127.0.0.1", "-P", "0",
                "--log", "syslog",
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while sh("vtysh", "-N", self.name, "-c", "show version", check=False).returncode:
            assert time.monotonic() < deadline, "FRR did not come up"
            time.sleep(0.1)

    def stop(self) -> None:
        for pidfile in self.rundir.glob("*.pid"):
            with contextlib.suppress(ValueError, ProcessLookupError, OSError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        sh("ip", "netns", "del", self.name, check=False)
        shutil.rmtree(self.rundir, ignore_errors=True)
        shutil.rmtree(self.confdir, ignore_errors=True)

    def load(self, text: str, tmp: Path) -> None:
        path = tmp / "load.conf"
        path.write_text(text)
        res = sh("vtysh", "-N", self.name, "-f", str(path), check=False)
        assert res.returncode == 0, res.stdout + res.stderr

    def running(self) -> str:
        return sh("vtysh", "-N", self.name, "-c", "show running-config no-header").stdout

    def ns(self, *argv: str) -> str:
        return sh("ip", "netns", "exec", self.name, *argv).stdout


@pytest.fixture(scope="module")
def frr() -> Iterator[Frr]:
    if os.geteuid() != 0 or not (FRR_BIN / "pbrd").exists() or not shutil.which("vtysh"):
        pytest.skip("needs root and FRR (zebra, staticd, pbrd, vtysh)")
    box = Frr(f"lbrender-{os.getpid()}")
    try:
        box.start()
        yield box
    finally:
        box.stop()


@pytest.fixture
def clean(frr: Frr, tmp_path: Path) -> Frr:
    """Remove whatever lbauto objects the previous test left."""
    left = parse_owned("frr", frr.running(), TAG)
    if left:
        frr.load("\n".join(render_changes(ROUTER, sorted(left, key=repr), [], left)), tmp_path)
    assert parse_owned("frr", frr.running(), TAG) == frozenset()
    return frr


def v4(n: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"192.0.2.{n}/32")


def v6(n: int) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network(f"2001:db8:10::{n:x}/128")


def hop(version: int, n: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if version == 4:
        return ipaddress.IPv4Address(f"198.51.100.{n}")
    return ipaddress.IPv6Address(f"2001:db8:100::{n:x}")


def deployment() -> frozenset[OwnedObject]:
    objs: set[OwnedObject] = set()
    for n in (10, 11, 12):
        for v, prefix in ((4, v4(n)), (6, v6(n))):
            objs.update(StaticRoute(prefix, hop(v, a), 200, TAG) for a in (10, 11))
    objs.add(StaticRoute(v4(11), hop(4, 21), 1, TAG))
    objs.add(StaticRoute(v6(11), hop(6, 21), 1, TAG))
    objs.add(PbrRule(1, v4(12), hop(4, 22)))
    objs.add(PbrRule(2, v6(12), hop(6, 22)))
    objs.update({PbrBinding("in0", 4), PbrBinding("in0", 6)})
    return frozenset(objs)


def test_rendered_config_reads_back_identically(clean: Frr, tmp_path: Path) -> None:
    objs = deployment()
    clean.load(render_config(ROUTER, objs), tmp_path)
    assert parse_owned("frr", clean.running(), TAG) == objs
    # and it is really in force: the bypass wins in the kernel, the PBR rules are installed
    assert "via 198.51.100.21" in clean.ns("ip", "route", "show", "192.0.2.11")
    rules = clean.ns("ip", "rule") + clean.ns("ip", "-6", "rule")
    assert "to 192.0.2.12 iif in0" in rules
    assert "to 2001:db8:10::c iif in0" in rules


def test_frr_reload_sees_no_change_against_the_live_config(clean: Frr, tmp_path: Path) -> None:
    objs = deployment()
    clean.load(render_config(ROUTER, objs), tmp_path)
    running, new = tmp_path / "running.conf", tmp_path / "new.conf"
    running.write_text(clean.running())
    new.write_text(render_config(ROUTER, objs))
    res = sh("python3", str(FRR_BIN / "frr-reload.py"), "--test", "--input", str(running), str(new))
    ours = [
        line
        for line in res.stdout.splitlines()
        if any(w in line for w in ("route ", "pbr", "match ", "set nexthop", "interface in0"))
    ]
    assert ours == [], res.stdout


def test_change_lines_move_the_live_config_exactly(clean: Frr, tmp_path: Path) -> None:
    """Random walks over deployments: after each change the router holds exactly the target."""
    rnd = random.Random(7)
    current: frozenset[OwnedObject] = frozenset()
    for _ in range(12):
        target: set[OwnedObject] = set()
        rules_v: set[int] = set()
        for n in rnd.sample(range(10, 40), rnd.randint(0, 8)):
            v = rnd.choice((4, 6))
            prefix = v4(n) if v == 4 else v6(n)
            target.update(StaticRoute(prefix, hop(v, a), 200, TAG) for a in (10, 11))
            kind = rnd.choice(("multi", "static", "pbr"))
            if kind == "static":
                target.add(StaticRoute(prefix, hop(v, rnd.randint(21, 25)), 1, TAG))
            elif kind == "pbr":
                target.add(PbrRule(n, prefix, hop(v, rnd.randint(21, 25))))
                rules_v.add(v)
        target.update(PbrBinding("in0", v) for v in rules_v)
        remove = sorted(current - target, key=repr)
        add = sorted(target - current, key=repr)
        lines = render_changes(ROUTER, remove, add, current)
        check = tmp_path / "check.conf"
        check.write_text("\n".join(lines) + "\n")
        assert sh("vtysh", "-C", "-f", str(check), check=False).returncode == 0, lines
        clean.load("\n".join(lines) + "\n", tmp_path)
        assert parse_owned("frr", clean.running(), TAG) == target, lines
        current = frozenset(target)


def test_rule_next_hop_change_is_installed(clean: Frr, tmp_path: Path) -> None:
    """Removing and re-adding the only seq (a bypass move) leaves the policy working."""
    old: set[OwnedObject] = {PbrRule(1, v4(12), hop(4, 22)), PbrBinding("in0", 4)}
    clean.load(render_config(ROUTER, old), tmp_path)
    new_rule = PbrRule(1, v4(12), hop(4, 23))
    lines = render_changes(ROUTER, [PbrRule(1, v4(12), hop(4, 22))], [new_rule], old)
    clean.load("\n".join(lines) + "\n", tmp_path)
    deadline = time.monotonic() + 5
    while True:
        rule = [x for x in clean.ns("ip", "rule").splitlines() if "to 192.0.2.12 iif in0" in x]
        table = rule[0].split("lookup ")[1].split()[0] if rule else None
        routes = clean.ns("ip", "route", "show", "table", table) if table else ""
        if "via 198.51.100.23" in routes:
            break
        assert time.monotonic() < deadline, (rule, routes)
        time.sleep(0.1)
