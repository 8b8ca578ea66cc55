"""Cisco IOS / IOS-XE: ``configure replace ... time N`` (minutes) needs ``archive``; merge
"diffs" are the candidate lines; IPv4 static routes in mask notation."""

from lbauto.platforms.ios.parser import parse
from lbauto.platforms.spec import PlatformSpec

SPEC = PlatformSpec(
    name="ios",
    parser=parse,
    template_folder="ios",
    napalm_driver="ios",
    commit_confirm=True,
    aliases=("cisco_ios", "cisco_xe", "iosxe", "ios_xe"),
    revert_step=60,
    revert_max=7200,
    needs_archive=True,
    true_diff=False,
)
