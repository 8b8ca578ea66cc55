"""Request and response bodies of the agent API (pydantic: strict, unknown fields rejected)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from lbauto.core.addresses import MAX_DIPS, excerpt, parse_address
from lbauto.core.model import IPAddress, Mode


def _parse_address(v: Any) -> Any:
    # The one address policy (lbauto.core.addresses), shared with the inventory loader.
    if isinstance(v, str):
        result = parse_address(v)
        if isinstance(result, str):
            raise ValueError(f"{excerpt(v)} {result}")
        return result
    return v


def _parse_mode(v: Any) -> Any:
    # strict mode wants a Mode instance; JSON gives its value
    if isinstance(v, str):
        try:
            return Mode(v)
        except ValueError:
            raise ValueError(
                f"mode must be one of single, multi, empty (got {excerpt(v)})"
            ) from None
    return v


Address = Annotated[IPAddress, BeforeValidator(_parse_address)]
ModeIn = Annotated[Mode, BeforeValidator(_parse_mode)]
MAX_SECONDS = 86400.0


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class TransitIn(Strict):
    dip: Address = Field(description="Pin flows without state that are not openers here")
    seconds: float = Field(gt=0, le=MAX_SECONDS, description="How long the pin lasts")


class DrainIn(Strict):
    dips: list[Address] = Field(min_length=1, max_length=MAX_DIPS)
    timeout: float = Field(ge=0, le=MAX_SECONDS, description="Seconds at most to keep old flows")


class VipIn(Strict):
    """``PUT /v1/vips/{address}``. Omitting ``transit``/``drain`` keeps a running one (if still
    valid for the new DIPs); ``null`` cancels it."""

    mode: ModeIn
    dips: list[Address] = Field(max_length=MAX_DIPS)
    flow_tracking: bool
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    transit: TransitIn | None = None
    drain: DrainIn | None = None


#: Most entries one batch may carry (the body limit, ``max_body_bytes``, bounds it too).
MAX_BATCH = 10_000


class PutChange(Strict):
    """A batch entry that creates or replaces ``address`` with ``vip`` (as ``PUT`` does;
    ``if_match``: the generation the VIP must have, as the ``If-Match`` header)."""

    op: Literal["put"]
    address: Address
    vip: VipIn
    if_match: StrictInt | None = Field(default=None, ge=0)


class DeleteChange(Strict):
    """A batch entry that removes ``address`` (a VIP the agent does not have: nothing to do)."""

    op: Literal["delete"]
    address: Address
    if_match: StrictInt | None = Field(default=None, ge=0)


Change = Annotated[PutChange | DeleteChange, Field(discriminator="op")]


class BatchIn(Strict):
    """``POST /v1/batch``: every change in one kernel transaction, all or nothing."""

    changes: list[Change] = Field(max_length=MAX_BATCH)


class FlowCountsIn(Strict):
    """``POST /v1/flows/counts``: the flow counts of many VIPs (what drain waits poll)."""

    vips: list[Address] = Field(max_length=MAX_BATCH)
    active_within: float | None = Field(default=None, ge=1, le=MAX_SECONDS)


class TransitOut(BaseModel):
    dip: str
    seconds: float
    expires_at: float


class DrainOut(BaseModel):
    dips: list[str]
    timeout: float
    expires_at: float
    remaining_flows: dict[str, int]


class VipOut(BaseModel):
    address: str
    name: str | None = None
    mode: Mode
    dips: list[str]
    flow_tracking: bool
    generation: int
    transit: TransitOut | None = None
    drain: DrainOut | None = None
    #: Recovered from the kernel after the state file was unusable and not yet rewritten by a
    #: PUT: ``apply`` sends it again even where it matches the inventory.
    unconfirmed: bool = False


class VipList(BaseModel):
    vips: list[VipOut]


class FlowOut(BaseModel):
    client: str
    client_port: int
    vip_port: int
    dip: str | None
    expires: float | None
    #: The client sent FIN or RST: the entry lives on only for the rest of the close.
    closing: bool = False


class FlowsOut(BaseModel):
    #: Flow entries in the kernel, closing ones included.
    total: int
    #: Of ``total``, the entries of connections that sent FIN or RST (not in ``per_dip``).
    closing: int = 0
    #: Open flows per DIP (what drain waits count).
    per_dip: dict[str, int]
    entries: list[FlowOut]


class BatchResultOut(BaseModel):
    address: str
    #: The VIP document after the change (null for a delete).
    vip: VipOut | None = None
    created: bool = False


class BatchOut(BaseModel):
    #: One result per change, in the request's order.
    results: list[BatchResultOut]


class RejectedOut(BaseModel):
    index: int
    address: str
    status: int
    detail: str


class BatchErrorOut(BaseModel):
    detail: str
    #: Every entry the agent refused (the request changed nothing).
    rejected: list[RejectedOut] = Field(default_factory=list)


class FlowCountsOut(BaseModel):
    #: Per VIP of the request: its counts (``entries`` empty), null if the agent has no such VIP.
    vips: dict[str, FlowsOut | None]


class Health(BaseModel):
    """Without a token only ``status``; with the token also the version, VIP count and why
    the agent is degraded."""

    status: Literal["ok", "degraded"]
    vips: int | None = None
    version: str | None = None
    problems: list[str] | None = None


class ErrorOut(BaseModel):
    detail: str


class BgpNeighborOut(BaseModel):
    """One BGP session of the agent's speaker, as its bgpd and bfdd see it."""

    address: str
    remote_asn: int
    #: BGP FSM state (``Established``, ``Active``, ``Connect``, ...; ``unknown``: bgpd silent).
    state: str
    uptime_s: float | None = None
    #: VIP prefixes this neighbor has been sent (as far as bgpd reports it).
    prefixes_sent: int | None = None
    #: BFD session state (``up``, ``down``, ``init``, ``adminDown``; ``off``: BFD not used).
    bfd_state: str = "off"


class BgpStatus(BaseModel):
    """``GET /v1/bgp``: what the agent announces and to whom."""

    enabled: bool
    asn: int | None = None
    router_id: str | None = None
    #: The agent's own health check (data plane present, server interface up): VIPs are
    #: announced only while it passes.
    healthy: bool = False
    #: Why the health check fails (empty when it passes).
    problems: list[str] = Field(default_factory=list)
    announced: list[str] = Field(default_factory=list)
    #: The speaker's daemons (zebra, bgpd, bfdd) are running.
    daemons_running: bool = False
    neighbors: list[BgpNeighborOut] = Field(default_factory=list)
