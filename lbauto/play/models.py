"""The playbook's schema: the play, its tasks and every module's arguments, as pydantic models.

This is the playbook's one validation layer. Checks that need the inventory (a VIP that does
not exist, a DIP no VIP uses, an address of the wrong family) are validators that read the
:class:`Facts` passed as pydantic's validation context, so the same models validate a task
before the run (with what is known then) and again right before it runs (with its rendered
arguments and the inventory as the earlier tasks left it).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lbauto.core.model import IPAddress, Mode, Vip

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Names the runner defines itself; a play may not use them for its vars or registers.
RESERVED = frozenset({"item", "lbauto"})


@dataclass
class Facts:
    """What validators check against: the inventory's VIPs (as the run has them then)."""

    vips: dict[str, Vip] = field(default_factory=dict)
    #: Addresses the playbook may name as DIPs: the inventory's, plus those earlier tasks add.
    dips: set[IPAddress] = field(default_factory=set)

    @classmethod
    def of(cls, vips: tuple[Vip, ...]) -> Facts:
        return cls({v.name: v for v in vips}, {d for v in vips for d in v.dips})


def _facts(info: ValidationInfo) -> Facts | None:
    ctx = info.context
    return ctx if isinstance(ctx, Facts) else None


def _known_vip(name: str, info: ValidationInfo) -> str:
    facts = _facts(info)
    if facts is not None and name not in facts.vips:
        known = ", ".join(sorted(facts.vips)) or "none"
        raise ValueError(f"no VIP named {name!r} in the inventory (known: {known})")
    return name


def address(text: object) -> IPAddress:
    """An address from text (ValueError naming the text if it is not one)."""
    if isinstance(text, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return text
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an IP address")
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


def _known_dip(address: IPAddress, info: ValidationInfo) -> IPAddress:
    facts = _facts(info)
    if facts is not None and address not in facts.dips:
        raise ValueError(f"{address} is not a DIP of any VIP in the inventory")
    return address


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- play and task


class PlayModel(Strict):
    name: str = Field(min_length=1, description="add `name:` saying what the play is for")
    inventory: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    tasks: list[dict[str, Any]] = Field(min_length=1, description="add `tasks:` with a list")

    @field_validator("vars")
    @classmethod
    def _var_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            _identifier(key, "a var")
        return value


def _identifier(name: str, what: str) -> str:
    if not _IDENT.fullmatch(name):
        raise ValueError(f"{what} name must be an identifier ([A-Za-z_][A-Za-z0-9_]*): {name!r}")
    if name in RESERVED:
        raise ValueError(f"{name!r} is reserved (the runner defines it)")
    return name


Condition = str | bool


class TaskModel(Strict):
    """A task's keywords (its one module key is taken out before this model sees it)."""

    KEYWORDS: ClassVar[frozenset[str]] = frozenset(
        {"name", "when", "register", "loop", "ignore_errors"}
    )

    name: str = Field(min_length=1, description="add `name:` saying what the task does")
    when: Condition | list[Condition] | None = None
    #: ``register`` (renamed: pydantic models have a ``register`` attribute of their own).
    register_: str | None = Field(default=None, alias="register")
    loop: list[Any] | str | None = None
    ignore_errors: bool = False

    @field_validator("register_")
    @classmethod
    def _register(cls, value: str | None) -> str | None:
        return None if value is None else _identifier(value, "a register")


# --------------------------------------------------------------------------- module arguments

Seconds = Annotated[float, Field(ge=0, le=86_400)]


class PlanKnobs(Strict):
    drain_timeout: Seconds = 30.0
    transit: Seconds = 60.0


class ScaleArgs(PlanKnobs):
    """Change one VIP's DIPs in vips.yaml and apply that VIP's transition."""

    vip: str
    dips: list[str] | None = None
    add: str | None = None
    remove: str | None = None

    _vip = field_validator("vip")(_known_vip)

    @field_validator("dips")
    @classmethod
    def _dips(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            seen = [address(d) for d in value]
            if len(set(seen)) != len(seen):
                raise ValueError("lists a DIP twice")
        return value

    @field_validator("add")
    @classmethod
    def _add(cls, value: str | None) -> str | None:
        if value is not None:
            address(value)
        return value

    @field_validator("remove")
    @classmethod
    def _remove(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            _known_dip(address(value), info)
        return value

    @model_validator(mode="after")
    def _one_change(self, info: ValidationInfo) -> ScaleArgs:
        given = [k for k in ("dips", "add", "remove") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of dips, add, remove")
        facts = _facts(info)
        vip = facts.vips.get(self.vip) if facts else None
        if vip is not None:
            for text in [*(self.dips or []), *(x for x in (self.add, self.remove) if x)]:
                dip = address(text)
                if dip.version != vip.address.version:
                    raise ValueError(
                        f"DIP {dip} is IPv{dip.version}, VIP {self.vip} is "
                        f"IPv{vip.address.version} (a VIP and its DIPs share one family)"
                    )
                if dip == vip.address:
                    raise ValueError(f"DIP {dip} equals the VIP address")
        return self


class ApplyArgs(PlanKnobs):
    """Converge the devices with the inventory (every VIP, or those named)."""

    vips: list[str] | None = None

    @field_validator("vips")
    @classmethod
    def _vips(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        for name in value or []:
            _known_vip(name, info)
        return value


class PlanArgs(ApplyArgs):
    """Plan without changing anything; register the plan for later tasks."""


def _dip_list(value: object) -> list[str]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        address(item)
    if not items:
        raise ValueError("name at least one address")
    return [str(i) for i in items]


class DrainDipArgs(Strict):
    """Take a DIP (or a DIP host's addresses) out of every VIP that uses it, then wait."""

    dip: str | list[str]
    timeout: Seconds = 30.0
    vips: list[str] | None = None
    allow_empty: bool = False
    fail_on_timeout: bool = False

    @field_validator("dip", mode="before")
    @classmethod
    def _dip(cls, value: object, info: ValidationInfo) -> list[str]:
        out = _dip_list(value)
        for d in out:
            _known_dip(address(d), info)
        return out

    _vips = field_validator("vips")(ApplyArgs._vips.__func__)  # type: ignore[attr-defined]

    def addresses(self) -> list[IPAddress]:
        return [address(d) for d in self.dip]


class RestoreDipArgs(PlanKnobs):
    """Put a drained DIP back into the VIPs it was taken out of (or into ``vips``)."""

    dip: str | list[str]
    vips: list[str] | None = None

    @field_validator("dip", mode="before")
    @classmethod
    def _dip(cls, value: object) -> list[str]:
        return _dip_list(value)

    _vips = field_validator("vips")(ApplyArgs._vips.__func__)  # type: ignore[attr-defined]

    def addresses(self) -> list[IPAddress]:
        return [address(d) for d in self.dip]


class FlowRange(Strict):
    min: Annotated[int, Field(ge=0)] | None = None
    max: Annotated[int, Field(ge=0)] | None = None


class ConditionArgs(Strict):
    """Conditions on the observed state (all must hold)."""

    vip: str | None = None
    dip: str | None = None
    mode: Mode | None = None
    dips: list[str] | None = None
    bypass: bool | None = None
    flow_tracking: bool | None = None
    flows: Annotated[int, Field(ge=0)] | FlowRange | None = None
    in_sync: bool | None = None
    that: list[str] | None = None

    _vip = field_validator("vip")(_known_vip)

    @field_validator("that", mode="before")
    @classmethod
    def _that(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("dip")
    @classmethod
    def _dip(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            _known_dip(address(value), info)
        return value

    @field_validator("dips")
    @classmethod
    def _dips(cls, value: list[str] | None) -> list[str] | None:
        for d in value or []:
            address(d)
        return value

    @model_validator(mode="after")
    def _some(self) -> ConditionArgs:
        conditions = ("mode", "dips", "bypass", "flow_tracking", "flows", "in_sync", "that")
        if all(getattr(self, k) is None for k in conditions):
            raise ValueError(f"give at least one condition: {', '.join(conditions)}")
        needs_vip = [
            k for k in ("mode", "dips", "bypass", "flow_tracking") if getattr(self, k) is not None
        ]
        if needs_vip and self.vip is None:
            raise ValueError(f"{needs_vip[0]} needs `vip:`")
        if self.flows is not None and self.vip is None and self.dip is None:
            raise ValueError("flows needs `vip:` or `dip:`")
        return self


class AssertArgs(ConditionArgs):
    """Fail the task unless every condition holds now."""

    msg: str | None = None


class WaitArgs(Strict):
    """Sleep ``seconds``, or poll ``until`` its conditions hold (at most ``timeout``)."""

    seconds: Seconds | None = None
    until: ConditionArgs | None = None
    timeout: Seconds = 60.0
    interval: Annotated[float, Field(gt=0, le=3600)] = 1.0

    @model_validator(mode="after")
    def _one(self) -> WaitArgs:
        if (self.seconds is None) == (self.until is None):
            raise ValueError("give exactly one of seconds, until")
        return self


MODULES: dict[str, type[Strict]] = {
    "scale": ScaleArgs,
    "apply": ApplyArgs,
    "plan": PlanArgs,
    "drain_dip": DrainDipArgs,
    "restore_dip": RestoreDipArgs,
    "assert": AssertArgs,
    "wait": WaitArgs,
}
