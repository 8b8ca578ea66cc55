"""Arista EOS: config sessions give true diffs and ``commit timer`` commit-confirm; policy-map
classes number up to 2^32-1; one PBR policy-map carries IPv4 and IPv6 classes."""

from lbauto.platforms.eos.parser import parse
from lbauto.platforms.spec import PlatformSpec

SPEC = PlatformSpec(
    name="eos",
    parser=parse,
    template_folder="eos",
    napalm_driver="eos",
    commit_confirm=True,
    aliases=("arista_eos",),
    max_pbr_seq=4_294_967_295,
    binding_per_family=False,
)
