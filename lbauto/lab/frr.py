"""One FRR instance per lab router: zebra, staticd, pbrd and bgpd with their own pathspace.

The pathspace (``-N``) gives each instance its own config dir ``/etc/frr/<ps>/`` and run dir
``/var/run/frr/<ps>/`` (pid files, vty sockets), so ``vtysh -N <ps>`` and
``frr-reload.py --reload -N <ps>`` reach exactly that router's daemons from any namespace.

Every router has one eBGP session, to a BGP peer in the lab's client namespace (a second bgpd,
without zebra, that listens nowhere and connects to the router), so BGP getters have a live
session to read. The session cannot move VIP traffic: the router accepts only
:data:`PEER_PREFIX` (benchmark space, no lab address is in it) and advertises nothing.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
from pathlib import Path

from lbauto.errors import LabError
from lbauto.lab.host import FRR_DIR, kill, netns_argv, pidfile_pid, run
from lbauto.lab.spec import CLIENT_HOST, CLIENT_NET4, LabRouter, v4

CONF_ROOT = Path("/etc/frr")
RUN_ROOT = Path("/var/run/frr")
DAEMONS = ("zebra", "staticd", "pbrd", "bgpd")
#: BGP labs also run bfdd: lbauto renders the agents' sessions with BFD
#: (``lbauto_lb_route: bgp`` in the lab inventory, applied by ``lbauto apply``).
BGP_DAEMONS = (*DAEMONS, "bfdd")


def with_mgmtd(daemons: tuple[str, ...]) -> tuple[str, ...]:
    """``daemons`` in start order on this FRR: from FRR 9 static routes are configured
    through mgmtd (without it ``ip route`` answers "mgmtd is not running"), which starts first;
    FRR 8.4 has no mgmtd."""
    if "staticd" in daemons and (FRR_DIR / "mgmtd").exists():
        return ("mgmtd", *daemons)
    return daemons


#: The lab's BGP numbers are documentation ASNs (RFC 5398).
ROUTER_AS = 64500
PEER_AS = 64501
AGENT_AS = 64510
#: BFD with the agents: 100 ms x 3 = a dead agent is detected within 300 ms.
BFD_INTERVAL_MS = 100
BFD_MULTIPLIER = 3
MAXIMUM_PATHS = 8
#: The only prefix the router learns over BGP (outside every lab address plan).
PEER_PREFIX = "198.19.255.0/24"
_PEER = "peer-bgpd"

_FRR_CONF = """\
! FRR configuration of lab router {name} (pathspace {ps}), written by `lbauto lab up`.
frr defaults traditional
hostname {ps}
service integrated-vtysh-config
!
ip forwarding
ipv6 forwarding
!
ip prefix-list LAB-PEER-IN seq 5 permit {prefix}
!
route-map LAB-PEER-IN permit 10
 match ip address prefix-list LAB-PEER-IN
exit
!
route-map LAB-PEER-OUT deny 10
exit
!
router bgp {asn}
 bgp router-id {router_id}
 neighbor {peer} remote-as {peer_as}
 neighbor {peer} description lab client BGP peer (no VIP routes)
 neighbor {peer} timers connect 1
 !
 address-family ipv4 unicast
  neighbor {peer} route-map LAB-PEER-IN in
  neighbor {peer} route-map LAB-PEER-OUT out
 exit-address-family
exit
!
"""
# The peer in the client namespace: announces PEER_PREFIX, connects to the router (-p 0: it
# listens nowhere, so one peer per router can share the client namespace).
_PEER_CONF = """\
hostname {ps}-peer
router bgp {peer_as}
 bgp router-id {peer}
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor {router_id} remote-as {asn}
 neighbor {router_id} timers connect 1
 !
 address-family ipv4 unicast
  network {prefix}
 exit-address-family
exit
"""
_VTYSH_CONF = "service integrated-vtysh-config\n"
# Read by frrinit.sh only; kept so the directory looks like any other FRR instance.
_DAEMONS = """\
# Daemons of lab router {name}; started by `lbauto lab up`, not by frrinit.sh.
zebra=yes
staticd=yes
pbrd=yes
vtysh_enable=yes
zebra_options="-A 127.0.0.1 -P 0 -s 90000000"
staticd_options="-A 127.0.0.1 -P 0"
pbrd_options="-A 127.0.0.1 -P 0"
"""


def conf_dir(pathspace: str) -> Path:
    return CONF_ROOT / pathspace


def run_dir(pathspace: str) -> Path:
    return RUN_ROOT / pathspace


def _ids() -> tuple[int, int, int]:
    try:
        return (
            pwd.getpwnam("frr").pw_uid,
            grp.getgrnam("frr").gr_gid,
            grp.getgrnam("frrvty").gr_gid,
        )
    except KeyError as err:
        raise LabError(
            f"FRR's user or group is missing ({err}): reinstall the Debian package frr"
        ) from err


def _write(path: Path, text: str, uid: int, gid: int, mode: int) -> None:
    path.write_text(text)
    os.chown(path, uid, gid)
    path.chmod(mode)


def _bgp_values(router: LabRouter) -> dict[str, object]:
    return {
        "ps": router.pathspace,
        "asn": ROUTER_AS,
        "peer_as": PEER_AS,
        "router_id": router.client_ip,
        "peer": v4(CLIENT_NET4, CLIENT_HOST),
        "prefix": PEER_PREFIX,
    }


def _client_netns(router: LabRouter) -> str:
    # Router namespaces are ``<lab>-r<k>`` and the client's ``<lab>-c`` (lbauto.lab.spec).
    return router.netns.rsplit("-", 1)[0] + "-c"


def write_config(router: LabRouter) -> None:
    uid, gid, vty_gid = _ids()
    ps = router.pathspace
    for directory in (conf_dir(ps), run_dir(ps), run_dir(ps) / _PEER, router.dir / "frr"):
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, uid, gid)
        directory.chmod(0o755)
    cdir = conf_dir(ps)
    values = _bgp_values(router)
    _write(cdir / "frr.conf", _FRR_CONF.format(name=router.name, **values), uid, gid, 0o640)
    _write(run_dir(ps) / _PEER / "bgpd.conf", _PEER_CONF.format(**values), uid, gid, 0o640)
    _write(run_dir(ps) / _PEER / "zebra.conf", f"hostname {ps}-peer\n", uid, gid, 0o640)
    _write(cdir / "vtysh.conf", _VTYSH_CONF, uid, vty_gid, 0o640)
    _write(cdir / "daemons", _DAEMONS.format(name=router.name), uid, gid, 0o640)


def start(router: LabRouter, bgp: bool = False) -> None:
    """Start the daemons (zebra first: the others connect to its zserv socket)."""
    ps = router.pathspace
    log = router.dir / "frr" / "frr.log"
    for daemon in with_mgmtd(BGP_DAEMONS if bgp else DAEMONS):
        argv = [str(FRR_DIR / daemon), "-N", ps, "-d", "-A", "127.0.0.1", "-P", "0"]
        argv += ["--log", f"file:{log}", "--log-level", "informational"]
        if daemon == "zebra":
            argv += ["-s", "90000000"]
        # FRR's -d returns only once the daemon is ready (or has failed).
        run(netns_argv(router.netns, argv))
    # Load frr.conf through vtysh, as frrinit.sh does for integrated configs.
    run(["vtysh", "-N", ps, "-b"])
    _start_peer(router, log)


def _start_peer(router: LabRouter, log: Path) -> None:
    """The router's BGP peer: zebra + bgpd in the client namespace. Their pid files, vty and
    zserv sockets stay in the router's run dir (``stop`` finds them there) under names of their
    own, so ``vtysh -N <ps>`` never reaches them and they never reach the router's zebra (bgpd
    needs a zebra of its own namespace to learn its interfaces: without one, FRR 8.4 resets
    every session with "nexthop_set failed")."""
    pdir = run_dir(router.pathspace) / _PEER
    for daemon in ("zebra", "bgpd"):
        argv = [str(FRR_DIR / daemon), "-N", router.pathspace, "-d", "-A", "127.0.0.1"]
        argv += ["-P", "0", "-f", str(pdir / f"{daemon}.conf"), "-i", str(pdir / f"{daemon}.pid")]
        argv += ["-z", str(pdir / "zserv.api"), "--vty_socket", str(pdir)]
        argv += ["--log", f"file:{log}", "--log-level", "warnings"]
        if daemon == "bgpd":
            argv += ["-p", "0"]
        run(netns_argv(_client_netns(router), argv))


def stop(pathspace: str) -> None:
    pidfiles = [run_dir(pathspace) / f"{d}.pid" for d in ("mgmtd", *BGP_DAEMONS)]
    pidfiles += [run_dir(pathspace) / _PEER / f"{d}.pid" for d in ("bgpd", "zebra")]
    pids = [pidfile_pid(pf, pathspace) for pf in pidfiles]
    kill([p for p in pids if p is not None])


def remove(pathspace: str) -> None:
    for directory in (conf_dir(pathspace), run_dir(pathspace)):
        shutil.rmtree(directory, ignore_errors=True)
