"""Cisco NX-OS through ``nxos`` (NX-API) rather than ``nxos_ssh``: structured output and
checkpoints for rollback. NX-OS has no commit-confirm."""

from lbauto.platforms.nxos.parser import parse
from lbauto.platforms.spec import PlatformSpec

SPEC = PlatformSpec(
    name="nxos",
    parser=parse,
    template_folder="nxos",
    napalm_driver="nxos",
    commit_confirm=False,
    aliases=("nxos_ssh", "cisco_nxos"),
    true_diff=False,
)
