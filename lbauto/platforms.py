"""What lbauto knows about each router platform, as data (DESIGN section 3).

Adding a platform = a folder of templates under ``lbauto/templates/<folder>/`` + one entry here +
golden files under ``tests/golden/<platform>/``. Nothing in this module does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from lbauto.core.model import Platform


@dataclass(frozen=True)
class PlatformSpec:
    """Per-platform facts the renderer, the parser and the push pipeline need."""

    platform: Platform
    #: Folder under ``lbauto/templates`` (and under an inventory's template override folder).
    template_folder: str
    #: ``napalm.get_network_driver`` name; ``frr`` is lbauto's own ``napalm_frr`` driver.
    napalm_driver: str
    #: The device can commit with ``revert_in`` (it undoes the change by itself unless confirmed).
    commit_confirm: bool
    #: ``revert_in`` must be a multiple of this many seconds (Junos and IOS count whole minutes).
    revert_step: int = 1
    revert_max: int | None = None
    #: IOS: commit-confirm only works where the ``archive`` feature is configured.
    needs_archive: bool = False
    #: The NAPALM driver's compare_config is a device-side diff (False: candidate lines echoed).
    true_diff: bool = True
    #: Highest PBR rule number lbauto may allocate.
    max_pbr_seq: int = 65_535
    #: Removing one next hop of a static route may remove the whole prefix (Junos ``delete``).
    route_removal_whole_prefix: bool = False
    #: IPv4 and IPv6 policies are bound to an interface separately (one binding per version).
    #: False: one policy covers both families, bound once per interface.
    binding_per_family: bool = True
    #: Line comment character of the platform's config language.
    comment_char: str = "!"
    #: The ``get_config`` format :mod:`lbauto.parse` reads (Junos: ``set`` commands).
    config_format: str = "text"


PLATFORMS: Mapping[Platform, PlatformSpec] = MappingProxyType(
    {
        # Our own driver: commit-confirm by a router-side timer, any number of seconds.
        # pbrd's ``pbr-map NAME seq N`` accepts 1..700; one map holds both families and an
        # interface takes a single ``pbr-policy`` (checked on FRR 8.4).
        Platform.FRR: PlatformSpec(
            Platform.FRR,
            template_folder="frr",
            napalm_driver="frr",
            commit_confirm=True,
            max_pbr_seq=700,
            binding_per_family=False,
        ),
        # Config sessions: ``commit timer`` gives commit-confirm; policy-map classes number up to
        # 2^32-1; one PBR policy-map carries IPv4 and IPv6 classes.
        Platform.EOS: PlatformSpec(
            Platform.EOS,
            template_folder="eos",
            napalm_driver="eos",
            commit_confirm=True,
            max_pbr_seq=4_294_967_295,
            binding_per_family=False,
        ),
        # ``configure replace ... time N`` (minutes) needs ``archive``; merge diffs are the
        # candidate lines.
        Platform.IOS: PlatformSpec(
            Platform.IOS,
            template_folder="ios",
            napalm_driver="ios",
            commit_confirm=True,
            revert_step=60,
            revert_max=7200,
            needs_archive=True,
            true_diff=False,
        ),
        # ``nxos`` (NX-API) rather than ``nxos_ssh``: structured output and checkpoints for
        # rollback. NX-OS has no commit-confirm.
        Platform.NXOS: PlatformSpec(
            Platform.NXOS,
            template_folder="nxos",
            napalm_driver="nxos",
            commit_confirm=False,
            true_diff=False,
        ),
        # ``commit confirmed N`` counts whole minutes; filter terms are free-form names.
        Platform.JUNOS: PlatformSpec(
            Platform.JUNOS,
            template_folder="junos",
            napalm_driver="junos",
            commit_confirm=True,
            revert_step=60,
            route_removal_whole_prefix=True,
            comment_char="#",
            config_format="set",
        ),
    }
)


def spec(platform: Platform) -> PlatformSpec:
    """The spec of ``platform`` (every :class:`Platform` member has one)."""
    return PLATFORMS[platform]
