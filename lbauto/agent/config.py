"""Agent settings: a YAML file, overridden by command-line flags, validated once at start.

One validation layer: :class:`AgentConfig` is a pydantic model, and every problem is reported
as ``file:line: setting: problem (fix)`` (``command line: setting: ...`` for flags), all of them
at once. Messages quote at most a short excerpt of a value, never a whole line of the file.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)

from lbauto.agent.token import read_token_env, read_token_file, world_readable
from lbauto.core.addresses import excerpt
from lbauto.errors import ConfigError

__all__ = ["DEFAULT_MAX_BODY_BYTES", "AgentConfig", "ConfigError", "load_config", "read_token"]

log = logging.getLogger("lbauto.agent")
DEFAULT_STATE_FILE = Path("/var/lib/lbauto/agent/state.json")
#: Largest request body the API reads (a PUT with 1,024 IPv6 DIPs is about 50 KiB).
DEFAULT_MAX_BODY_BYTES = 1 << 20
#: The config file is a handful of settings; a bigger file is the wrong file.
MAX_CONFIG_BYTES = 64 * 1024
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def _pattern(rx: re.Pattern[str], rule: str) -> AfterValidator:
    def check(v: str) -> str:
        if not rx.match(v):
            raise ValueError(f"{excerpt(v)} {rule}")
        return v

    return AfterValidator(check)


def _ip(v: str) -> str:
    try:
        ipaddress.ip_address(v)
    except ValueError:
        raise ValueError(f"{excerpt(v)} is not an IP address") from None
    return v


IfName = Annotated[str, _pattern(_IFNAME, "is not a valid interface name (see `ip link`)")]
TableName = Annotated[str, _pattern(_NAME, f"must match {_NAME.pattern}")]
EnvName = Annotated[str, _pattern(_ENV, "is not an environment variable name")]
ListenAddress = Annotated[str, AfterValidator(_ip)]

#: How to fix a setting, appended to its problem.
FIXES: dict[str, str] = {
    "interface": "the server-facing interface, e.g. eth1",
    "listen": "an address of this host, e.g. 127.0.0.1",
    "port": "1..65535",
    "token_file": "a file holding the token",
    "token_env": "the name of an environment variable holding the token",
    "state_file": "a path such as /var/lib/lbauto/agent/state.json",
    "flow_timeout": "1..86400 seconds",
    "flow_table_size": "1..16777216 entries",
    "insecure_no_auth": "true or false",
    "tls_cert": "a PEM certificate file",
    "tls_key": "a PEM key file",
    "table": "a short name such as lbauto",
    "buckets_per_dip": "1..10000",
    "tick": "a number of seconds in (0, 60]",
    "max_body_bytes": f"1024..67108864 bytes (default {DEFAULT_MAX_BODY_BYTES})",
    "bgp": "see docs/scale-out.md: asn, router_id, neighbors [{address, remote_asn}]",
}


class BgpNeighbor(BaseModel):
    """A router the agent announces its VIPs to (one IPv4 or IPv6 session)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: ListenAddress
    remote_asn: StrictInt = Field(ge=1, le=4294967295)


class BgpConfig(BaseModel):
    """``bgp:``: announce held VIPs to routers (FRR bgpd + bfdd run by the agent, see
    docs/scale-out.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    asn: StrictInt = Field(ge=1, le=4294967295)
    router_id: Annotated[str, AfterValidator(_ip)]
    neighbors: list[BgpNeighbor] = Field(min_length=1, max_length=64)
    #: BFD with every neighbor (sub-second failure detection); off = BGP hold timer only.
    bfd: StrictBool = True
    bfd_interval_ms: StrictInt = Field(default=100, ge=10, le=60000)
    bfd_multiplier: StrictInt = Field(default=3, ge=2, le=255)
    keepalive: StrictInt = Field(default=3, ge=1, le=3600)
    hold_time: StrictInt = Field(default=9, ge=3, le=65535)
    #: The agent's own IPv6 address on the server segment: next hop of its IPv6 VIPs (None:
    #: bgpd picks the interface's global address).
    address6: ListenAddress | None = None
    #: Where the agent's FRR daemons keep their config, pid files and vty sockets.
    run_dir: Path = Path("/var/run/lbauto-agent/frr")

    @model_validator(mode="after")
    def _timers(self) -> BgpConfig:
        if ipaddress.ip_address(self.router_id).version != 4:
            raise ValueError("bgp.router_id must be an IPv4 address")
        if self.hold_time < 3 * self.keepalive:
            raise ValueError("bgp.hold_time must be at least 3 x bgp.keepalive")
        return self


class AgentConfig(BaseModel):
    """The agent's settings (see docs/agent.md). Unknown settings are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interface: IfName
    listen: ListenAddress = "127.0.0.1"
    port: StrictInt = Field(default=8080, ge=1, le=65535)
    token_file: Path | None = None
    token_env: EnvName | None = None
    state_file: Path = DEFAULT_STATE_FILE
    flow_timeout: StrictInt = Field(default=300, ge=1, le=86400)
    #: Maximum entries of one VIP's flow map (nftables ``size``).
    flow_table_size: StrictInt = Field(default=1_048_576, ge=1, le=1 << 24)
    insecure_no_auth: StrictBool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    table: TableName = "lbauto"
    buckets_per_dip: StrictInt = Field(default=100, ge=1, le=10000)
    #: Seconds between timer ticks (transit expiry, drain completion).
    tick: float = Field(default=1.0, gt=0, le=60, strict=True)
    #: Largest request body read; a bigger one is answered 413 without being read.
    max_body_bytes: StrictInt = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=1 << 26)
    #: Announce held VIPs over BGP (None: no speaker, routers use static LB routes).
    bgp: BgpConfig | None = None

    @model_validator(mode="after")
    def _together(self) -> AgentConfig:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.token_file is None and self.token_env is None and not self.insecure_no_auth:
            raise ValueError(
                "no token_file or token_env: set one (or insecure_no_auth: true, labs only)"
            )
        if self.token_file is not None and self.token_env is not None:
            raise ValueError("both token_file and token_env are set: keep one")
        return self


def _key_lines(text: str) -> dict[str, int]:
    """1-based line of each top-level key (for ``file:line`` messages)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {
        str(k.value): k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)
    }


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read agent config: {e.strerror}") from e
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: larger than {MAX_CONFIG_BYTES} bytes, not an agent config (check --config)"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); check --config") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        # the problem and its position only: PyYAML's own message quotes the line
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: invalid YAML: {problem}") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the agent config must be a mapping of settings (key: value)")
    return {str(k): v for k, v in data.items() if v is not None}, _key_lines(text)


def _problems(err: ValidationError, source: str, lines: dict[str, int]) -> list[str]:
    out: list[str] = []
    for e in err.errors(include_url=False, include_input=False):
        key = str(e["loc"][0]) if e["loc"] else ""
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg, fix = "unknown setting", "see docs/agent.md for the settings"
        elif e["type"] == "missing":
            msg, fix = "is required", FIXES.get(key, "")
        else:
            fix = FIXES.get(key, "")
        if len(e["loc"]) > 1:  # a nested setting (bgp.neighbors.0.address): name all of it
            msg = ".".join(str(p) for p in e["loc"][1:]) + ": " + msg
        where = f"{source}:{lines[key]}" if key in lines else source
        text = f"{where}: {key}: {msg}" if key else f"{where}: {msg}"
        out.append(f"{text} ({fix})" if fix else text)
    return out


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> AgentConfig:
    """Read ``path`` (YAML mapping) and apply non-None ``overrides``; validate the result.
    Raises ConfigError listing every problem, one per line."""
    data: dict[str, Any] = {}
    lines: dict[str, int] = {}
    source = str(path) if path else "command line"
    if path is not None:
        data, lines = _read_yaml(path)
    for k, v in (overrides or {}).items():
        if v is not None:
            data[k] = v
            lines.pop(k, None)  # a flag wins: its problem is not on a line of the file
    try:
        return AgentConfig(**data)
    except ValidationError as e:
        raise ConfigError("\n".join(_problems(e, source, lines))) from None


def read_token(cfg: AgentConfig) -> str | None:
    """The bearer token from the file or environment variable; None only with insecure_no_auth.
    Checked on load (one line of printable ASCII, at least 16 characters); messages never
    contain the token or the file's content."""
    if cfg.token_file is not None:
        token = read_token_file(cfg.token_file)
        if world_readable(cfg.token_file):
            log.warning("token_file %s is readable by other users: chmod 600 it", cfg.token_file)
        return token
    if cfg.token_env is not None:
        return read_token_env(cfg.token_env)
    if cfg.insecure_no_auth:
        return None
    raise ConfigError("no token configured (token_file or token_env)")
