"""FRR through lbauto's own ``napalm_frr`` driver: commit-confirm by a router-side timer, any
number of seconds. pbrd's ``pbr-map NAME seq N`` accepts 1..700; one map holds both families
and an interface takes a single ``pbr-policy`` (checked on FRR 8.4)."""

from lbauto.platforms.frr.parser import parse
from lbauto.platforms.frr.verify import static_routes, verify_pbr
from lbauto.platforms.spec import PlatformSpec

SPEC = PlatformSpec(
    name="frr",
    parser=parse,
    template_folder="frr",
    napalm_driver="frr",
    commit_confirm=True,
    aliases=("frrouting",),
    max_pbr_seq=700,
    binding_per_family=False,
    verify_pbr=verify_pbr,
    static_routes=static_routes,
    parses_bgp=True,
)
