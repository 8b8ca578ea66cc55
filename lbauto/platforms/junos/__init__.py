"""Juniper Junos: ``commit confirmed N`` counts whole minutes; filter terms are free-form
names; configs are read in ``set`` format; a static route's default preference is 5."""

from lbauto.platforms.junos.parser import parse
from lbauto.platforms.spec import PlatformSpec

SPEC = PlatformSpec(
    name="junos",
    parser=parse,
    template_folder="junos",
    napalm_driver="junos",
    commit_confirm=True,
    aliases=("juniper_junos", "juniper"),
    revert_step=60,
    route_removal_whole_prefix=True,
    comment_char="#",
    config_format="set",
    default_distance=5,
)
