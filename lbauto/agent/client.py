"""Client of the agent API (docs/agent.md), used by the executor and the CLI.

:class:`HttpAgentClient` implements :class:`lbauto.agent.protocol.AgentApi` with httpx (the
``transport`` is injectable, e.g. ``httpx.ASGITransport`` or ``httpx.MockTransport``).
Every failure is raised as :class:`lbauto.errors.AgentError` (HTTP 412 as ConflictError).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import httpx
from pydantic import ValidationError

from lbauto.agent.models import (
    BatchErrorOut,
    BatchOut,
    BgpStatus,
    FlowCountsOut,
    FlowsOut,
    VipOut,
)
from lbauto.agent.protocol import (
    BatchRejectedError,
    FlowCounts,
    Rejected,
    VipChange,
    VipDelete,
)
from lbauto.agent.token import read_token_env, read_token_file
from lbauto.core.model import Agent, AgentVip, Drain, IPAddress, Mode, Transit
from lbauto.errors import AgentError, ConfigError, ConflictError


def vip_from_json(doc: Mapping[str, Any]) -> AgentVip:
    """An AgentVip from the agent's VIP document, validated by the agent's own model."""
    try:
        out = VipOut.model_validate(doc)
        return _vip(out)
    except (ValidationError, ValueError) as exc:
        raise AgentError(f"the agent answered an invalid VIP document: {exc}") from exc


def _vip(out: VipOut) -> AgentVip:
    t, d = out.transit, out.drain
    return AgentVip(
        address=ipaddress.ip_address(out.address),
        mode=out.mode,
        dips=tuple(ipaddress.ip_address(x) for x in out.dips),
        flow_tracking=out.flow_tracking,
        generation=out.generation,
        name=out.name,
        transit=Transit(ipaddress.ip_address(t.dip), t.seconds) if t else None,
        drain=Drain(tuple(ipaddress.ip_address(x) for x in d.dips), d.timeout) if d else None,
        needs_resend=out.unconfirmed,
    )


def vip_body(
    mode: Mode,
    dips: Sequence[IPAddress],
    flow_tracking: bool,
    name: str | None,
    transit: Transit | None,
    drain: Drain | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "mode": mode.value,
        "dips": [str(x) for x in dips],
        "flow_tracking": flow_tracking,
    }
    if name is not None:
        body["name"] = name
    if transit is not None:
        body["transit"] = {"dip": str(transit.dip), "seconds": transit.seconds}
    if drain is not None:
        body["drain"] = {"dips": [str(x) for x in drain.dips], "timeout": drain.timeout}
    return body


def change_body(change: VipChange) -> dict[str, Any]:
    """One entry of ``POST /v1/batch``."""
    entry: dict[str, Any]
    if isinstance(change, VipDelete):
        entry = {"op": "delete", "address": str(change.address)}
    else:
        entry = {
            "op": "put",
            "address": str(change.address),
            "vip": vip_body(
                change.mode,
                change.dips,
                change.flow_tracking,
                change.name,
                change.transit,
                change.drain,
            ),
        }
    if change.if_match is not None:
        entry["if_match"] = change.if_match
    return entry


def agent_token(agent: Agent) -> str | None:
    """The agent's token from its ``token_env`` or ``token_file`` (never logged), checked as
    the agent checks its own (lbauto.agent.token): a bad one is a clear error naming where it
    comes from, never an HTTP library error quoting it."""
    try:
        if agent.token_env:
            return read_token_env(agent.token_env)
        if agent.token_file:
            return read_token_file(Path(agent.token_file))
    except ConfigError as e:
        raise AgentError(str(e), agent.name) from e
    return None


class HttpAgentClient:
    """One agent over HTTP. ``drain_idle``: :meth:`flows_per_dip` counts a connection as ended
    once it has carried no packet for that many seconds (None: only when its entry expires)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        name: str | None = None,
        ca_file: Path | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        drain_idle: float | None = None,
    ) -> None:
        self.name = name or base_url
        self.drain_idle = drain_idle
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        )
        if base_url.startswith("http://") and transport is None:
            # No TLS on this connection (and redirects are not followed), so no SSL context:
            # httpx would build one with the CA bundle for nothing, 60 ms per client, per run.
            # An https:// agent always verifies.
            verify = False
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=timeout,
            transport=transport,
            verify=verify,
        )

    @classmethod
    def for_agent(
        cls,
        agent: Agent,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        drain_idle: float | None = None,
    ) -> HttpAgentClient:
        return cls(
            agent.api,
            token=agent_token(agent),
            name=agent.name,
            ca_file=agent.ca_file,
            timeout=timeout,
            transport=transport,
            drain_idle=drain_idle,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpAgentClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        ok: Sequence[int] = (200,),
    ) -> httpx.Response:
        try:
            r = self._http.request(method, path, json=json, headers=headers)
        except httpx.TimeoutException as e:
            raise AgentError(f"{method} {path}: timed out ({e})", self.name) from e
        except httpx.HTTPError as e:
            raise AgentError(
                f"{method} {path}: cannot reach {self._http.base_url} ({e}); "
                "is the agent running and the api URL right?",
                self.name,
            ) from e
        if r.status_code in ok:
            return r
        self._raise(method, path, r)

    def _raise(self, method: str, path: str, r: httpx.Response) -> NoReturn:
        detail = _detail(r)
        if r.status_code == 412:
            raise ConflictError(
                f"{method} {path}: the VIP changed meanwhile ({detail}); re-read and plan again",
                self.name,
                412,
            )
        if r.status_code == 401:
            raise AgentError(
                f"{method} {path}: token rejected; check the agent's token_env/token_file",
                self.name,
                401,
            )
        raise AgentError(
            f"{method} {path}: HTTP {r.status_code}: {detail}", self.name, r.status_code
        )

    def health(self) -> dict[str, Any]:
        data: dict[str, Any] = self._request("GET", "/v1/health").json()
        return data

    def bgp(self) -> BgpStatus:
        """The agent's BGP speaker: announced VIPs, per-router BGP and BFD state."""
        return BgpStatus.model_validate(self._request("GET", "/v1/bgp").json())

    def list_vips(self) -> dict[IPAddress, AgentVip]:
        docs = self._request("GET", "/v1/vips").json()["vips"]
        vips = [vip_from_json(d) for d in docs]
        return {v.address: v for v in vips}

    def get_vip(self, address: IPAddress) -> AgentVip | None:
        r = self._request("GET", f"/v1/vips/{address}", ok=(200, 404))
        return None if r.status_code == 404 else vip_from_json(r.json())

    def put_vip(
        self,
        address: IPAddress,
        *,
        mode: Mode,
        dips: Sequence[IPAddress],
        flow_tracking: bool,
        name: str | None = None,
        transit: Transit | None = None,
        drain: Drain | None = None,
        if_match: int | None = None,
    ) -> AgentVip:
        body = vip_body(mode, dips, flow_tracking, name, transit, drain)
        headers = {"If-Match": f'"{if_match}"'} if if_match is not None else None
        r = self._request("PUT", f"/v1/vips/{address}", json=body, headers=headers, ok=(200, 201))
        return vip_from_json(r.json())

    def delete_vip(
        self, address: IPAddress, *, if_match: int | None = None, missing_ok: bool = True
    ) -> None:
        headers = {"If-Match": f'"{if_match}"'} if if_match is not None else None
        ok = (204, 404) if missing_ok else (204,)
        self._request("DELETE", f"/v1/vips/{address}", headers=headers, ok=ok)

    def change_vips(self, changes: Sequence[VipChange]) -> list[AgentVip | None]:
        if not changes:
            return []
        body = {"changes": [change_body(c) for c in changes]}
        r = self._request("POST", "/v1/batch", json=body, ok=(200, 400, 412, 422))
        if r.status_code != 200:
            rejected = _rejected(r, changes)
            if not rejected:
                self._raise("POST", "/v1/batch", r)
            raise BatchRejectedError(rejected, self.name)
        try:
            out = BatchOut.model_validate_json(r.content)
        except ValidationError as exc:
            raise AgentError(f"the agent answered an invalid batch document: {exc}") from exc
        if len(out.results) != len(changes):
            raise AgentError(
                f"the agent answered {len(out.results)} result(s) for {len(changes)} change(s)",
                self.name,
            )
        try:
            return [None if x.vip is None else _vip(x.vip) for x in out.results]
        except ValueError as exc:
            raise AgentError(f"the agent answered an invalid VIP document: {exc}") from exc

    def flows(self, address: IPAddress, active_within: float | None = None) -> FlowCounts:
        query = "limit=0" + (f"&active_within={active_within:g}" if active_within else "")
        r = self._request("GET", f"/v1/vips/{address}/flows?{query}")
        try:
            doc = FlowsOut.model_validate_json(r.content)
        except ValidationError as exc:
            raise AgentError(f"the agent answered an invalid flows document: {exc}") from exc
        return FlowCounts(total=doc.total, per_dip=_per_dip(doc))

    def flows_per_dip(self, address: IPAddress) -> Mapping[IPAddress, int]:
        return self.flows(address, active_within=self.drain_idle).per_dip

    def flows_per_dip_many(
        self, addresses: Sequence[IPAddress]
    ) -> dict[IPAddress, Mapping[IPAddress, int] | None]:
        if not addresses:
            return {}
        body: dict[str, Any] = {"vips": [str(a) for a in addresses]}
        if self.drain_idle:
            body["active_within"] = self.drain_idle
        r = self._request("POST", "/v1/flows/counts", json=body)
        try:
            doc = FlowCountsOut.model_validate_json(r.content)
        except ValidationError as exc:
            raise AgentError(f"the agent answered an invalid flow counts document: {exc}") from exc
        out: dict[IPAddress, Mapping[IPAddress, int] | None] = {}
        for a in addresses:
            counts = doc.vips.get(str(a))
            out[a] = None if counts is None else _per_dip(counts)
        return out


def _per_dip(doc: FlowsOut) -> dict[IPAddress, int]:
    # keys that are not addresses ("mark:N") are flows of a DIP whose drain just ended
    return {ipaddress.ip_address(k): v for k, v in doc.per_dip.items() if _is_ip(k)}


def _rejected(r: httpx.Response, changes: Sequence[VipChange]) -> list[Rejected]:
    """The entries a refused batch names: the agent's own list (400, 412), or the entries
    its schema check pointed at (422: ``loc`` is body, changes, index, ...)."""
    try:
        raw = r.json()
    except ValueError:
        return []
    if not isinstance(raw, dict):
        return []
    if r.status_code != 422:
        try:
            doc = BatchErrorOut.model_validate(raw)
        except ValidationError:
            return []
        return [Rejected(x.index, x.address, x.status, x.detail) for x in doc.rejected]
    out: dict[int, Rejected] = {}
    problems = raw.get("detail")
    for p in problems if isinstance(problems, list) else []:
        loc = p.get("loc", []) if isinstance(p, dict) else []
        if len(loc) < 3 or loc[:2] != ["body", "changes"] or not isinstance(loc[2], int):
            return []  # not about one entry: the request as a whole is wrong
        i = loc[2]
        if 0 <= i < len(changes) and i not in out:
            rest = loc[4:] if loc[3:4] in (["put"], ["delete"]) else loc[3:]  # the union's tag
            where = ".".join(str(x) for x in rest)
            msg = f"{where}: {p.get('msg')}" if where else str(p.get("msg"))
            out[i] = Rejected(i, str(changes[i].address), 422, msg)
    return [out[i] for i in sorted(out)]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _detail(r: httpx.Response) -> str:
    try:
        d = r.json().get("detail")
    except ValueError:
        return r.text[:300] or r.reason_phrase
    if isinstance(d, list):  # FastAPI schema errors
        return "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', [])[1:])}: {e.get('msg')}" for e in d
        )
    return str(d)
