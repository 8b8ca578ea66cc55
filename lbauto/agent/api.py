"""The agent's HTTP API (FastAPI), versioned under /v1. See docs/agent.md.

In front of FastAPI sits :class:`Guard`, a small ASGI layer that sees every request first: it
checks the bearer token from the headers and the body size before a single body byte is read,
so a client without the token cannot make the agent read (or buffer) anything, and nobody can
make it buffer more than ``max_body_bytes``.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import lbauto
from lbauto.agent.bgp import Speaker
from lbauto.agent.config import DEFAULT_MAX_BODY_BYTES
from lbauto.agent.metrics import make_registry
from lbauto.agent.models import (
    BatchErrorOut,
    BatchIn,
    BatchOut,
    BatchResultOut,
    BgpStatus,
    ErrorOut,
    FlowCountsIn,
    FlowCountsOut,
    FlowsOut,
    Health,
    VipIn,
    VipList,
    VipOut,
)
from lbauto.agent.service import AgentService, BatchError, Ticker, parse_vip
from lbauto.errors import LbautoError, RequestError

log = logging.getLogger("lbauto.agent")
_bearer = HTTPBearer(auto_error=False, description="The agent's token (token_file/token_env)")
ERRORS: dict[int | str, dict[str, object]] = {
    s: {"model": ErrorOut} for s in (400, 401, 404, 412, 413)
}
#: Paths answered without a token (health is minimal then: only its status).
OPEN_PATHS = frozenset({"/v1/health"})
#: Scope key the guard sets: did the request carry the right token?
AUTHENTICATED = "lbauto.authenticated"
#: At most this many validation problems are returned, each message cut to MAX_MESSAGE.
MAX_PROBLEMS = 20
MAX_MESSAGE = 160


def _etag(generation: int) -> str:
    return f'"{generation}"'


def token_matches(header: bytes | None, token: str) -> bool:
    """Constant-time check of an ``Authorization: Bearer <token>`` header value."""
    if header is None:
        return False
    scheme, _, cred = header.partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(cred.strip(), token.encode())


class Guard:
    """Token and body-size checks before the application reads the body (ASGI middleware)."""

    def __init__(self, app: ASGIApp, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        authed = self.token is None or token_matches(headers.get(b"authorization"), self.token)
        scope[AUTHENTICATED] = authed
        if not authed and scope["path"] not in OPEN_PATHS:
            await _reply(
                send, 401, "missing or wrong bearer token", [(b"www-authenticate", b"Bearer")]
            )
            return
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await _reply(send, 400, "Content-Length is not a number")
                return
            if int(length) > self.max_body:
                await _reply(send, 413, self._too_large())
                return
        body = await self._read_body(receive)
        if body is None:
            await _reply(send, 413, self._too_large())
            return
        await self.app(scope, _replay(body, receive), send)

    def _too_large(self) -> str:
        return f"request body larger than {self.max_body} bytes (max_body_bytes)"

    async def _read_body(self, receive: Receive) -> list[Message] | None:
        """The body's messages, or None as soon as it grows past the limit (a chunked body
        has no Content-Length to refuse up front)."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > self.max_body:
                return None
            if not message.get("more_body", False):
                return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands out the buffered body first, then the real one (disconnects)."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def _reply(
    send: Send, status: int, detail: str, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        # the request body was not read: the connection cannot carry another request
        (b"connection", b"close"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _cut(value: object) -> object:
    """A location part or message, cut short: errors never echo the request body."""
    if isinstance(value, str) and len(value) > MAX_MESSAGE:
        return value[:MAX_MESSAGE] + "..."
    return value


def validation_problems(errors: Sequence[Any]) -> list[dict[str, object]]:
    """FastAPI's 422 detail without the input (pydantic adds the offending input, which may be
    the whole body) and without context objects; at most MAX_PROBLEMS entries."""
    out: list[dict[str, object]] = [
        {
            "loc": [_cut(part) for part in e.get("loc", ())],
            "msg": _cut(str(e.get("msg", ""))),
            "type": str(e.get("type", "")),
        }
        for e in errors[:MAX_PROBLEMS]
    ]
    if len(errors) > MAX_PROBLEMS:
        more = len(errors) - MAX_PROBLEMS
        out.append({"loc": [], "msg": f"and {more} more problem(s)", "type": "truncated"})
    return out


def create_app(
    service: AgentService,
    token: str | None,
    tick: float | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    speaker: Speaker | None = None,
) -> Guard:
    """The app as served: the API behind the :class:`Guard` (``.app`` is the FastAPI app).
    ``speaker``: the BGP speaker, started after the kernel is reconciled, stopped first."""
    return Guard(_api(service, token, tick, speaker), token, max_body_bytes)


def _api(
    service: AgentService, token: str | None, tick: float | None, speaker: Speaker | None = None
) -> FastAPI:
    """The API over ``service``. ``token`` None = no auth (``insecure_no_auth``, labs only).
    The app's lifespan reconciles the kernel (``service.start``) and, if ``tick`` is given,
    runs the transit/drain timers. ``/openapi.json`` needs the token; ``/docs`` and ``/redoc``
    are off (they would load scripts from the internet and cannot send the token)."""
    registry, apply_hist = make_registry(service)
    service.on_apply = apply_hist.observe

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        ticker = Ticker(service, tick) if tick else None
        if ticker:
            ticker.start()
        if speaker:
            speaker.start()
        try:
            yield
        finally:
            if speaker:
                speaker.stop()
            if ticker:
                ticker.stop()

    def auth(cred: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        # The Guard already refused a wrong token; this check keeps the rule in one more place
        # and documents the scheme in the OpenAPI document.
        if token is None:
            return
        if cred is None or not hmac.compare_digest(cred.credentials.encode(), token.encode()):
            raise RequestError(401, "missing or wrong bearer token")

    app = FastAPI(
        title="lbauto agent",
        version=lbauto.__version__,
        description="Control API of the bundled LB agent (nftables data plane).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, e: RequestError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        body: dict[str, object] = {"detail": str(e)}
        if isinstance(e, BatchError):
            body["rejected"] = e.rejected[:MAX_PROBLEMS]
        return JSONResponse(body, status_code=e.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_problems(e.errors())}, status_code=422)

    @app.exception_handler(LbautoError)
    async def _agent_error(_: Request, e: LbautoError) -> JSONResponse:
        log.error("%s", e)
        return JSONResponse({"detail": f"data plane error: {e}"}, status_code=500)

    @app.get("/v1/health", response_model=Health, response_model_exclude_none=True)
    def health(request: Request) -> Health:
        problems = service.problems()
        status: Literal["ok", "degraded"] = "degraded" if problems else "ok"
        if not request.scope.get(AUTHENTICATED):
            return Health(status=status)
        return Health(
            status=status, vips=len(service.vips), version=lbauto.__version__, problems=problems
        )

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(auth)], responses=ERRORS)

    @v1.get("/vips", response_model=VipList)
    def list_vips() -> VipList:
        # documents read flow maps (drains): outside the lock, on a snapshot
        with service.lock:
            recs = list(service.vips.values())
        return VipList(vips=[service.document(r) for r in recs])

    @v1.get("/vips/{address}", response_model=VipOut)
    def get_vip(address: str, response: Response) -> VipOut:
        rec = service.get(parse_vip(address))
        response.headers["ETag"] = _etag(rec.generation)
        return service.document(rec)

    @v1.put("/vips/{address}", response_model=VipOut, responses={201: {"model": VipOut}})
    def put_vip(
        address: str,
        body: VipIn,
        response: Response,
        if_match: str | None = Header(default=None),
        if_none_match: str | None = Header(default=None),
    ) -> VipOut:
        rec, created = service.put(parse_vip(address), body, if_match, if_none_match)
        response.status_code = 201 if created else 200
        response.headers["ETag"] = _etag(rec.generation)
        return service.document(rec)

    @v1.delete("/vips/{address}", status_code=204, response_class=Response)
    def delete_vip(address: str, if_match: str | None = Header(default=None)) -> Response:
        service.delete(parse_vip(address), if_match)
        return Response(status_code=204)

    @v1.get("/vips/{address}/flows", response_model=FlowsOut)
    def flows(
        address: str,
        limit: int = Query(default=100, ge=0, le=100_000),
        active_within: float | None = Query(
            default=None,
            ge=1,
            le=86_400,
            description="Count only flows that carried a packet within this many seconds "
            "(an entry's timer restarts on every packet); lets a drain wait end when the "
            "draining DIPs' connections have gone quiet.",
        ),
    ) -> FlowsOut:
        return service.flows(parse_vip(address), limit, active_within)

    @v1.post(
        "/batch",
        response_model=BatchOut,
        responses={s: {"model": BatchErrorOut} for s in (400, 412)},
    )
    def batch(body: BatchIn) -> BatchOut:
        """Many PUTs and DELETEs in one nft transaction, all or nothing: an entry the agent
        refuses fails the whole request (``rejected`` lists every refused entry) and nothing
        changes."""
        done = service.change(body.changes)
        # documents read flow maps (drains): outside the lock, as a PUT's are
        return BatchOut(
            results=[
                BatchResultOut(
                    address=str(c.address),
                    vip=service.document(rec) if rec is not None else None,
                    created=created,
                )
                for c, (rec, created) in zip(body.changes, done, strict=True)
            ]
        )

    @v1.post("/flows/counts", response_model=FlowCountsOut)
    def flow_counts(body: FlowCountsIn) -> FlowCountsOut:
        """``GET /v1/vips/{address}/flows?limit=0`` of many VIPs in one request."""
        counts = service.flow_counts_many(body.vips, body.active_within)
        return FlowCountsOut(vips={str(a): c for a, c in counts.items()})

    @v1.get("/bgp", response_model=BgpStatus)
    def bgp() -> BgpStatus:
        return speaker.status() if speaker else BgpStatus(enabled=False)

    app.include_router(v1)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        dependencies=[Depends(auth)],
        responses={401: {"model": ErrorOut}},
    )
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
