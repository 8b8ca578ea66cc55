"""What lbauto knows about one router platform, as data (DESIGN section 3).

Each platform folder (``lbauto/platforms/<name>/``) exports ``SPEC``, a :class:`PlatformSpec`:
the facts the renderer, the parser and the push pipeline need, its running-config parser and its
verification specifics. Its templates live in ``templates/<template_folder>/``. Nothing here does
I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lbauto.core.model import OwnedObject
    from lbauto.platforms._parsing import Found
    from lbauto.platforms.driver import NapalmDriver

#: Reads one running config into a :class:`~lbauto.platforms._parsing.Found`.
Parser = Callable[[str, "Found"], None]
#: Checks PBR objects on a live router: (driver, present, absent) -> problems.
PbrVerifier = Callable[
    ["NapalmDriver", Sequence["OwnedObject"], Sequence["OwnedObject"]], list[str]
]
#: Reads every static route of the given IP versions in one table read per version:
#: (driver, versions) -> prefix (``str(ip_network)``) -> entries in NAPALM ``get_route_to``'s
#: form (``protocol``, ``next_hop``, ``preference``, ``current_active``).
StaticReader = Callable[["NapalmDriver", Sequence[int]], dict[str, list[dict[str, Any]]]]


@dataclass(frozen=True)
class PlatformSpec:
    """Per-platform facts; one instance per platform folder."""

    #: The inventory's ``platform`` value (also the folder name).
    name: str
    #: Reads lbauto-owned objects from the running config (the inverse of the template).
    parser: Parser
    #: Folder under ``templates/`` (and under an inventory's template override folder).
    template_folder: str
    #: ``napalm.get_network_driver`` name; ``frr`` is lbauto's own ``napalm_frr`` driver.
    napalm_driver: str
    #: The device can commit with ``revert_in`` (it undoes the change by itself unless confirmed).
    commit_confirm: bool
    #: Other names Nornir, NAPALM and netmiko inventories use for this platform.
    aliases: tuple[str, ...] = ()
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
    #: The ``get_config`` format the parser reads (Junos: ``set`` commands).
    config_format: str = "text"
    #: Distance of a static route whose config line prints none.
    default_distance: int = 1
    #: Live check of PBR objects; None: the platform's PBR state is not verified.
    verify_pbr: PbrVerifier | None = None
    #: Batched read of the static routes verification checks (one read per router and
    #: version); None: NAPALM's ``get_route_to`` once per prefix.
    static_routes: StaticReader | None = None
    #: The parser reads the BGP LB route objects back (lbauto_lb_route: bgp); elsewhere they
    #: are rendered (golden-checked) but neither observed nor verified.
    parses_bgp: bool = False
