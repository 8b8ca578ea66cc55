"""Agent settings: a YAML file, overridden by command-line flags, validated once at start."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from lbauto.errors import LbautoError

DEFAULT_STATE_FILE = Path("/var/lib/lbauto/agent/state.json")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")


class ConfigError(LbautoError):
    """The agent configuration is missing or invalid."""


@dataclass(frozen=True)
class AgentConfig:
    interface: str
    listen: str = "127.0.0.1"
    port: int = 8080
    token_file: Path | None = None
    token_env: str | None = None
    state_file: Path = DEFAULT_STATE_FILE
    flow_timeout: int = 300
    #: Maximum entries of one VIP's flow map (nftables ``size``).
    flow_table_size: int = 1_048_576
    insecure_no_auth: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    table: str = "lbauto"
    buckets_per_dip: int = 100
    #: Seconds between timer ticks (transit expiry, drain completion).
    tick: float = 1.0

    def validate(self, source: str) -> AgentConfig:
        """Return self if valid, else raise ConfigError naming ``source`` and the fix."""
        problems: list[str] = []
        if not _IFNAME.match(self.interface or ""):
            problems.append(f"interface {self.interface!r} is not a valid interface name")
        try:
            ipaddress.ip_address(self.listen)
        except ValueError:
            problems.append(f"listen {self.listen!r} is not an IP address")
        if not 0 < self.port < 65536:
            problems.append(f"port {self.port} is not in 1..65535")
        if not _NAME.match(self.table):
            problems.append(f"table {self.table!r} must match {_NAME.pattern}")
        if not 1 <= self.flow_timeout <= 86400:
            problems.append(f"flow_timeout {self.flow_timeout} must be 1..86400 seconds")
        if not 1 <= self.buckets_per_dip <= 10000:
            problems.append(f"buckets_per_dip {self.buckets_per_dip} must be 1..10000")
        if bool(self.tls_cert) != bool(self.tls_key):
            problems.append("tls_cert and tls_key must be given together")
        if self.token_file is None and self.token_env is None and not self.insecure_no_auth:
            problems.append(
                "no token_file or token_env: set one (or insecure_no_auth: true, labs only)"
            )
        if problems:
            raise ConfigError(f"{source}: " + "; ".join(problems))
        return self


_PATH_KEYS = {"token_file", "state_file", "tls_cert", "tls_key"}
_INT_KEYS = {"port", "flow_timeout", "flow_table_size", "buckets_per_dip"}


def _coerce(key: str, value: Any, source: str) -> Any:
    if value is None:
        return None
    if key in _PATH_KEYS:
        return Path(str(value))
    if key in _INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
        return value
    if key == "tick":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{source}: tick must be a number, got {value!r}")
        return float(value)
    if key == "insecure_no_auth":
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: insecure_no_auth must be true or false")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
    return value


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> AgentConfig:
    """Read ``path`` (YAML mapping) and apply non-None ``overrides``; validate the result."""
    known = {f.name for f in fields(AgentConfig)}
    data: dict[str, Any] = {}
    source = str(path) if path else "command line"
    if path is not None:
        try:
            raw = yaml.safe_load(path.read_text())
        except OSError as e:
            raise ConfigError(f"{path}: cannot read agent config: {e.strerror}") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from e
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the agent config must be a mapping of settings")
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown setting(s) {', '.join(map(str, unknown))}")
        data = {k: _coerce(k, v, source) for k, v in raw.items() if v is not None}
    for k, v in (overrides or {}).items():
        if v is not None:
            data[k] = _coerce(k, v, source)
    if "interface" not in data:
        raise ConfigError(f"{source}: interface (the server-facing interface) is required")
    cfg = AgentConfig(**data)
    return cfg.validate(source)


def read_token(cfg: AgentConfig) -> str | None:
    """The bearer token from the file or environment variable; None only with insecure_no_auth."""
    if cfg.token_file is not None:
        try:
            token = cfg.token_file.read_text().strip()
        except OSError as e:
            raise ConfigError(f"token_file {cfg.token_file}: cannot read: {e.strerror}") from e
        if not token:
            raise ConfigError(f"token_file {cfg.token_file} is empty: write a token into it")
        return token
    if cfg.token_env is not None:
        token = os.environ.get(cfg.token_env, "").strip()
        if not token:
            raise ConfigError(f"environment variable {cfg.token_env} (token_env) is unset or empty")
        return token
    if cfg.insecure_no_auth:
        return None
    raise ConfigError("no token configured (token_file or token_env)")


def with_overrides(cfg: AgentConfig, **kw: Any) -> AgentConfig:
    return replace(cfg, **kw)
