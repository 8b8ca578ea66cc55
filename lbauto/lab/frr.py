"""One FRR instance per lab router: zebra, staticd and pbrd with their own pathspace.

The pathspace (``-N``) gives each instance its own config dir ``/etc/frr/<ps>/`` and run dir
``/var/run/frr/<ps>/`` (pid files, vty sockets), so ``vtysh -N <ps>`` and
``frr-reload.py --reload -N <ps>`` reach exactly that router's daemons from any namespace.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
from pathlib import Path

from lbauto.errors import LabError
from lbauto.lab.host import FRR_DIR, kill, netns_argv, pidfile_pid, run
from lbauto.lab.spec import LabRouter

CONF_ROOT = Path("/etc/frr")
RUN_ROOT = Path("/var/run/frr")
DAEMONS = ("zebra", "staticd", "pbrd")

_FRR_CONF = """\
! FRR configuration of lab router {name} (pathspace {ps}), written by `lbauto lab up`.
frr defaults traditional
service integrated-vtysh-config
!
ip forwarding
ipv6 forwarding
!
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


def write_config(router: LabRouter) -> None:
    uid, gid, vty_gid = _ids()
    ps = router.pathspace
    for directory in (conf_dir(ps), run_dir(ps), router.dir / "frr"):
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, uid, gid)
        directory.chmod(0o755)
    cdir = conf_dir(ps)
    _write(cdir / "frr.conf", _FRR_CONF.format(name=router.name, ps=ps), uid, gid, 0o640)
    _write(cdir / "vtysh.conf", _VTYSH_CONF, uid, vty_gid, 0o640)
    _write(cdir / "daemons", _DAEMONS.format(name=router.name), uid, gid, 0o640)


def start(router: LabRouter) -> None:
    """Start the daemons (zebra first: the others connect to its zserv socket)."""
    ps = router.pathspace
    log = router.dir / "frr" / "frr.log"
    for daemon in DAEMONS:
        argv = [str(FRR_DIR / daemon), "-N", ps, "-d", "-A", "127.0.0.1", "-P", "0"]
        argv += ["--log", f"file:{log}", "--log-level", "informational"]
        if daemon == "zebra":
            argv += ["-s", "90000000"]
        # FRR's -d returns only once the daemon is ready (or has failed).
        run(netns_argv(router.netns, argv))
    # Load frr.conf through vtysh, as frrinit.sh does for integrated configs.
    run(["vtysh", "-N", ps, "-b"])


def stop(pathspace: str) -> None:
    pids = [pidfile_pid(run_dir(pathspace) / f"{d}.pid", pathspace) for d in DAEMONS]
    kill([p for p in pids if p is not None])


def remove(pathspace: str) -> None:
    for directory in (conf_dir(pathspace), run_dir(pathspace)):
        shutil.rmtree(directory, ignore_errors=True)
