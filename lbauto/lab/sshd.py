"""An sshd per lab router, on the router's management address, root login by the lab key only.

lbauto then reaches a lab router exactly as a production FRR box: SSH with a key, then
``vtysh -N <pathspace> ...``.
"""

from __future__ import annotations

from pathlib import Path

from lbauto.lab.host import kill, netns_argv, pidfile_pid, run, tcp_open, wait_for, which
from lbauto.lab.spec import LabRouter

# sshd refuses to start without its privilege separation directory (systemd usually makes it).
PRIVSEP_DIR = Path("/run/sshd")

_SSHD_CONFIG = """\
# sshd of lab router {name}, written by `lbauto lab up`.
ListenAddress {address}
Port {port}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp
# A lab router is this host in a namespace, so root's ~/.bashrc would run before every command
# (bash sources it for commands from sshd unless SHLVL says it is nested): on this project's
# machines it runs `pyenv init`, 0.2 s of CPU per SSH command, which a production FRR box's
# shell does not cost. The benchmarks measure lbauto and FRR, not this host's dotfiles.
SetEnv SHLVL=1
"""


def keygen(path: Path, comment: str) -> None:
    """An ed25519 key pair at ``path`` (and ``path.pub``) unless it already exists."""
    if path.exists() and path.with_suffix(".pub").exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def config_file(router: LabRouter) -> Path:
    return router.dir / "sshd_config"


def pid_file(router: LabRouter) -> Path:
    return router.dir / "sshd.pid"


def start(router: LabRouter, lab_name: str) -> None:
    router.dir.mkdir(parents=True, exist_ok=True)
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    host_key = router.dir / "ssh_host_ed25519_key"
    keygen(host_key, f"lbauto lab {lab_name} {router.name} host key")
    config_file(router).write_text(
        _SSHD_CONFIG.format(
            name=router.name,
            address=router.mgmt_ip,
            port=router.ssh_port,
            host_key=host_key,
            pid_file=pid_file(router),
            authorized_keys=router.key_file.with_suffix(".pub"),
        )
    )
    sshd = which("sshd") or "/usr/sbin/sshd"
    run(netns_argv(router.netns, [sshd, "-f", str(config_file(router))]))
    wait_for(
        lambda: tcp_open(str(router.mgmt_ip), router.ssh_port),
        5,
        f"sshd of lab router {router.name} on {router.mgmt_ip}:{router.ssh_port}",
    )


def stop(router: LabRouter) -> None:
    pid = pidfile_pid(pid_file(router), str(config_file(router)))
    if pid is not None:
        kill([pid])
