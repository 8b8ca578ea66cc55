"""The agent's BGP speaker: FRR zebra + bgpd + bfdd, run by the agent, announcing its VIPs.

FRR because BFD needs ``bfdd`` anyway and FRR is already lbauto's router dependency (ExaBGP
would need a BFD implementation of its own). The daemons are the agent's children, in the
agent's network namespace, with a private run directory (config, pid files, vty sockets, the
bfdd control socket), so several agents (or a lab's routers) never share a socket.

The daemons die with the agent, even by kill -9: a watcher (``sh``) holds the read end of a
pipe whose only write end is the agent's; when the agent dies the kernel closes it, the
watcher's ``read`` returns and it SIGKILLs its process group, which the daemons were started
in. (``PR_SET_PDEATHSIG`` does not work
here: the daemons drop to the ``frr`` user, and the kernel clears the parent-death signal on
that credential change; as root they refuse to start, root not being in ``frrvty``.) bgpd's
TCP sessions close at once, and the routers withdraw the agent's routes without waiting for
BFD or the hold timer.

A VIP is announced (``network P/32`` or ``P/128``, with ``no bgp network import-check``: the
agent has no route to its VIPs, it forwards them in nftables) while the agent holds it and its
own health check passes: its nftables table is in the kernel and its server interface is up.
"""

from __future__ import annotations

import grp
import ipaddress
import json
import logging
import os
import pwd
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from lbauto.agent.config import BgpConfig, BgpNeighbor
from lbauto.agent.models import BgpNeighborOut, BgpStatus
from lbauto.core.model import IPAddress, addr_key
from lbauto.errors import BgpSpeakerError

log = logging.getLogger("lbauto.agent.bgp")
FRR_DIR = Path("/usr/lib/frr")
#: Start order: bgpd and bfdd connect to zebra's zserv socket.
DAEMONS = ("zebra", "bfdd", "bgpd")
BFD_PROFILE = "lbauto"
START_TIMEOUT = 15.0
VTYSH_TIMEOUT = 10.0
#: Seconds between two runs of the health check (an ``nft`` call); VIPs are synced every tick.
HEALTH_EVERY = 0.5


def prefix(vip: IPAddress) -> str:
    return f"{vip}/{vip.max_prefixlen}"


def render_bgpd(cfg: BgpConfig) -> str:
    """bgpd's start-up config: sessions only, no VIP yet (the speaker adds them)."""
    out = [
        "hostname lbauto-agent",
        "frr defaults traditional",
        "!",
        "ip prefix-list LBAUTO-VIP4 seq 5 permit 0.0.0.0/0 ge 32",
        "ipv6 prefix-list LBAUTO-VIP6 seq 5 permit ::/0 ge 128",
        # Only VIP prefixes ever leave the agent, and it accepts nothing.
        "route-map LBAUTO-OUT4 permit 10",
        " match ip address prefix-list LBAUTO-VIP4",
        "exit",
        "route-map LBAUTO-OUT6 permit 10",
        " match ipv6 address prefix-list LBAUTO-VIP6",
    ]
    if cfg.address6 is not None:
        out.append(f" set ipv6 next-hop global {cfg.address6}")
    out += ["exit", "route-map LBAUTO-IN deny 10", "exit", "!"]
    out += [
        f"router bgp {cfg.asn}",
        f" bgp router-id {cfg.router_id}",
        " no bgp ebgp-requires-policy",
        " no bgp network import-check",
        " no bgp default ipv4-unicast",
        f" timers bgp {cfg.keepalive} {cfg.hold_time}",
    ]
    for n in cfg.neighbors:
        out += [f" neighbor {n.address} remote-as {n.remote_asn}"]
        out += [f" neighbor {n.address} timers connect 1"]
        if cfg.bfd:
            out += [f" neighbor {n.address} bfd"]
            out += [f" neighbor {n.address} bfd profile {BFD_PROFILE}"]
    for af, rmap in (("ipv4", "LBAUTO-OUT4"), ("ipv6", "LBAUTO-OUT6")):
        out.append(f" address-family {af} unicast")
        for n in _members(cfg, af):
            out += [f"  neighbor {n.address} activate"]
            out += [f"  neighbor {n.address} route-map LBAUTO-IN in"]
            out += [f"  neighbor {n.address} route-map {rmap} out"]
        out.append(" exit-address-family")
    out += ["exit", ""]
    return "\n".join(out)


def _members(cfg: BgpConfig, af: str) -> list[BgpNeighbor]:
    """Sessions that carry ``af``: IPv4 VIPs over IPv4 sessions; IPv6 VIPs over IPv6 sessions,
    or over the IPv4 ones when no router has an IPv6 session (next hop: the agent's IPv6
    address on the same interface)."""
    v4 = [n for n in cfg.neighbors if ipaddress.ip_address(n.address).version == 4]
    v6 = [n for n in cfg.neighbors if ipaddress.ip_address(n.address).version == 6]
    return v4 if af == "ipv4" else (v6 or v4)


def render_bfdd(cfg: BgpConfig) -> str:
    return "\n".join(
        [
            "hostname lbauto-agent",
            "bfd",
            f" profile {BFD_PROFILE}",
            f"  detect-multiplier {cfg.bfd_multiplier}",
            f"  receive-interval {cfg.bfd_interval_ms}",
            f"  transmit-interval {cfg.bfd_interval_ms}",
            " exit",
            "exit",
            "",
        ]
    )


def render_announce(asn: int, add: Iterable[IPAddress], remove: Iterable[IPAddress]) -> str:
    """vtysh config lines that announce ``add`` and withdraw ``remove`` (empty: nothing)."""
    lines: list[str] = []
    for version, af in ((4, "ipv4"), (6, "ipv6")):
        cmds = [f"  no network {prefix(v)}" for v in sorted(remove, key=addr_key)
                if v.version == version]  # fmt: skip
        cmds += [f"  network {prefix(v)}" for v in sorted(add, key=addr_key)
                 if v.version == version]  # fmt: skip
        if cmds:
            lines += [f" address-family {af} unicast", *cmds, " exit-address-family"]
    if not lines:
        return ""
    return "\n".join([f"router bgp {asn}", *lines, "exit", ""])


def health_problems(interface: str, table: str, nft: Sequence[str] = ("nft",)) -> list[str]:
    """The agent's own health check: empty when it may announce its VIPs."""
    problems = []
    try:
        state = Path(f"/sys/class/net/{interface}/operstate").read_text().strip()
    except OSError:
        state = "missing"
    if state not in ("up", "unknown"):
        problems.append(f"server interface {interface} is {state}")
    try:
        proc = subprocess.run(
            [*nft, "list", "tables", "netdev"],
            check=False,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if f"table netdev {table}" not in proc.stdout.splitlines():
            problems.append(f"nftables table netdev {table} is not in the kernel")
    except (OSError, subprocess.TimeoutExpired) as exc:
        problems.append(f"nft cannot be run: {exc}")
    return problems


#: The watcher: blocks until the agent's end of the pipe closes, then kills its process group
#: (itself and the daemons).
_WATCH = "read _ignored; kill -9 0"


def _frr_ids() -> tuple[int, int] | None:
    try:
        return pwd.getpwnam("frr").pw_uid, grp.getgrnam("frr").gr_gid
    except KeyError:
        return None


class Speaker:
    """Runs and supervises the agent's FRR daemons; announces ``vips()`` while healthy."""

    def __init__(
        self,
        cfg: BgpConfig,
        vips: Callable[[], Iterable[IPAddress]],
        health: Callable[[], list[str]],
        frr_dir: Path = FRR_DIR,
        interval: float = 0.1,
    ) -> None:
        self.cfg = cfg
        self.vips = vips
        self.health = health
        self.frr_dir = frr_dir
        self.interval = interval
        self.dir = cfg.run_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.announced: set[IPAddress] = set()
        self.problems: list[str] = ["not started"]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._checked = 0.0
        self._watcher: subprocess.Popen[bytes] | None = None
        self._watch_fd: int | None = None

    # ------------------------------------------------------------------ daemons

    def _prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        ids = _frr_ids()
        if ids is not None:  # the daemons write pid files and sockets here as user frr
            os.chown(self.dir, *ids)
        for stale in self.dir.iterdir():
            if stale.suffix in (".vty", ".api", ".sock", ".pid"):
                stale.unlink(missing_ok=True)
        (self.dir / "zebra.conf").write_text("hostname lbauto-agent\n")
        (self.dir / "bfdd.conf").write_text(render_bfdd(self.cfg))
        (self.dir / "bgpd.conf").write_text(render_bgpd(self.cfg))

    def _argv(self, daemon: str) -> list[str]:
        d = self.dir
        argv = [str(self.frr_dir / daemon), "-A", "127.0.0.1"]
        argv += ["-P", "0", "-f", str(d / f"{daemon}.conf"), "-i", str(d / f"{daemon}.pid")]
        argv += ["--vty_socket", str(d), "-z", str(d / "zserv.api")]
        argv += ["--log", f"file:{d / 'frr.log'}", "--log-level", "informational"]
        if daemon == "bfdd":
            argv += ["--bfdctl", str(d / "bfdd.sock")]
        if daemon == "bgpd":
            argv += ["-n"]  # nothing the agent learns is installed (it learns nothing anyway)
        return argv

    def _spawn_all(self) -> None:
        self._prepare()
        leader = self._watch()
        for daemon in DAEMONS:
            err = (self.dir / f"{daemon}.err").open("ab")
            try:
                # In the watcher's process group: it kills the whole group when the agent dies.
                proc = subprocess.Popen(
                    self._argv(daemon),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    process_group=leader,
                )
            except OSError as exc:
                self._kill_all()
                raise BgpSpeakerError(f"BGP speaker: cannot start FRR {daemon}: {exc}") from exc
            finally:
                err.close()
            self.procs[daemon] = proc
            self._wait_socket(daemon)
        self.announced = set()
        log.info("BGP speaker: zebra, bfdd, bgpd started (run dir %s)", self.dir)

    def _wait_socket(self, daemon: str) -> None:
        sock = self.dir / f"{daemon}.vty"
        deadline = time.monotonic() + START_TIMEOUT
        while not sock.exists():
            proc = self.procs[daemon]
            if proc.poll() is not None or time.monotonic() > deadline:
                err = (self.dir / f"{daemon}.err").read_text(errors="replace").strip()
                self._kill_all()
                raise BgpSpeakerError(
                    f"BGP speaker: FRR {daemon} did not start (see {self.dir / 'frr.log'})"
                    + (f": {err.splitlines()[-1]}" if err else "")
                )
            time.sleep(0.02)

    def _watch(self) -> int:
        """Start the watcher, leader of a new process group; returns that group's id. Started
        before the daemons, so no daemon ever runs unwatched."""
        read_end, self._watch_fd = os.pipe()  # both ends non-inheritable: no child has them
        try:
            self._watcher = subprocess.Popen(
                ["sh", "-c", _WATCH],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # A group of its own in the agent's session (a daemon can only join a group of
                # its own session); not the terminal's foreground group, so a ^C reaches only
                # the agent, which stops the daemons in order.
                process_group=0,
            )
        except OSError as exc:
            self._kill_all()
            raise BgpSpeakerError(f"BGP speaker: cannot start its watcher: {exc}") from exc
        finally:
            os.close(read_end)
        return self._watcher.pid

    def _kill_all(self, grace: float = 2.0) -> None:
        # The watcher first (so the daemons can stop in order), then bgpd: its SIGTERM sends a
        # Cease to every router, which withdraws at once.
        if self._watcher is not None:
            self._watcher.kill()
            self._watcher.wait()
            self._watcher = None
        if self._watch_fd is not None:
            os.close(self._watch_fd)
            self._watch_fd = None
        for daemon in reversed(DAEMONS):
            proc = self.procs.pop(daemon, None)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(grace)

    def running(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs.values())

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the daemons, their watcher and the supervisor thread."""
        with self._lock:
            self._spawn_all()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="lbauto-agent-bgp", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self._kill_all()
            self.announced = set()
        log.info("BGP speaker stopped: every VIP withdrawn")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except BgpSpeakerError as exc:
                log.error("%s", exc)
                self._stop.wait(1.0)

    def step(self) -> None:
        """Supervise the daemons, run the health check when due, sync the announcements."""
        with self._lock:
            if not self.running():
                dead = [d for d, p in self.procs.items() if p.poll() is not None]
                log.error("BGP speaker: FRR %s exited; restarting the speaker", ", ".join(dead))
                self._kill_all()
                self._spawn_all()
            now = time.monotonic()
            if now - self._checked >= HEALTH_EVERY:
                self._checked = now
                problems = self.health()
                if problems != self.problems:
                    log.warning("BGP speaker: %s", "; ".join(problems) or "healthy: announcing")
                self.problems = problems
            want = set(self.vips()) if not self.problems else set()
            self._sync(want)

    def _sync(self, want: set[IPAddress]) -> None:
        add, remove = want - self.announced, self.announced - want
        text = render_announce(self.cfg.asn, add, remove)
        if not text:
            return
        path = self.dir / "announce.conf"
        path.write_text(text)
        proc = self._vtysh(["-f", str(path)], check=False)
        if proc.returncode != 0:
            raise BgpSpeakerError(
                f"BGP speaker: vtysh refused the announcements (exit {proc.returncode}): "
                + (proc.stdout + proc.stderr).strip()[-200:]
            )
        self.announced = set(want)
        if add:
            log.info("BGP: announced %s", ", ".join(prefix(v) for v in sorted(add, key=addr_key)))
        if remove:
            log.info("BGP: withdrew %s", ", ".join(prefix(v) for v in sorted(remove, key=addr_key)))

    def _vtysh(self, args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["vtysh", "--vty_socket", str(self.dir), "--config_dir", str(self.dir), *args]
        try:
            proc = subprocess.run(
                argv, check=False, capture_output=True, text=True, timeout=VTYSH_TIMEOUT
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BgpSpeakerError(f"BGP speaker: vtysh failed: {exc}") from exc
        if check and proc.returncode != 0:
            raise BgpSpeakerError(f"BGP speaker: vtysh {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    # ------------------------------------------------------------------ status

    def _show(self, daemon: str, command: str) -> Any:
        try:
            proc = self._vtysh(["-d", daemon, "-c", command])
            return json.loads(proc.stdout or "null")
        except (BgpSpeakerError, ValueError):
            return None

    def status(self) -> BgpStatus:
        running = self.running()
        bgp = self._show("bgpd", "show bgp neighbors json") if running else None
        bfd = self._show("bfdd", "show bfd peers json") if running and self.cfg.bfd else None
        bfd_by_peer = {
            str(p.get("peer")): str(p.get("status", "unknown"))
            for p in (bfd if isinstance(bfd, list) else [])
            if isinstance(p, dict)
        }
        neighbors = []
        for n in self.cfg.neighbors:
            info = bgp.get(n.address, {}) if isinstance(bgp, dict) else {}
            up_ms = info.get("bgpTimerUpMsec")
            sent = 0
            for af in (info.get("addressFamilyInfo") or {}).values():
                if isinstance(af, dict):
                    sent += int(af.get("sentPrefixCounter", 0) or 0)
            neighbors.append(
                BgpNeighborOut(
                    address=n.address,
                    remote_asn=n.remote_asn,
                    state=str(info.get("bgpState", "unknown")),
                    uptime_s=round(up_ms / 1000, 3)
                    if isinstance(up_ms, int) and info.get("bgpState") == "Established"
                    else None,
                    prefixes_sent=sent if info else None,
                    bfd_state=bfd_by_peer.get(n.address, "unknown") if self.cfg.bfd else "off",
                )
            )
        return BgpStatus(
            enabled=True,
            asn=self.cfg.asn,
            router_id=self.cfg.router_id,
            healthy=not self.problems,
            problems=list(self.problems),
            announced=[prefix(v) for v in sorted(self.announced, key=addr_key)],
            daemons_running=running,
            neighbors=neighbors,
        )


def parse_prefix(text: str) -> IPAddress:
    """``192.0.2.10/32`` -> the address (for readers of :class:`BgpStatus`)."""
    return ipaddress.ip_interface(text).ip
