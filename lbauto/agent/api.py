"""The agent's HTTP API (FastAPI), versioned under /v1. See docs/agent.md."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import lbauto
from lbauto.agent.metrics import make_registry
from lbauto.agent.models import ErrorOut, FlowsOut, Health, VipIn, VipList, VipOut
from lbauto.agent.service import AgentService, RequestError, Ticker, parse_vip
from lbauto.errors import LbautoError

log = logging.getLogger("lbauto.agent")
_bearer = HTTPBearer(auto_error=False, description="The agent's token (token_file/token_env)")
ERRORS: dict[int | str, dict[str, object]] = {s: {"model": ErrorOut} for s in (400, 401, 404, 412)}


def _etag(generation: int) -> str:
    return f'"{generation}"'


def create_app(service: AgentService, token: str | None, tick: float | None = None) -> FastAPI:
    """The API over ``service``. ``token`` None = no auth (``insecure_no_auth``, labs only).
    The app's lifespan reconciles the kernel (``service.start``) and, if ``tick`` is given,
    runs the transit/drain timers."""
    registry, apply_hist = make_registry(service)
    service.on_apply = apply_hist.observe

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        ticker = Ticker(service, tick) if tick else None
        if ticker:
            ticker.start()
        try:
            yield
        finally:
            if ticker:
                ticker.stop()

    def auth(cred: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        if token is None:
            return
        if cred is None or not hmac.compare_digest(cred.credentials.encode(), token.encode()):
            raise RequestError(401, "missing or wrong bearer token")

    app = FastAPI(
        title="lbauto agent",
        version=lbauto.__version__,
        description="Control API of the bundled LB agent (nftables data plane).",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, e: RequestError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return JSONResponse({"detail": str(e)}, status_code=e.status, headers=headers)

    @app.exception_handler(LbautoError)
    async def _agent_error(_: Request, e: LbautoError) -> JSONResponse:
        log.error("%s", e)
        return JSONResponse({"detail": f"data plane error: {e}"}, status_code=500)

    @app.get("/v1/health", response_model=Health)
    def health() -> Health:
        return Health(status="ok", vips=len(service.vips), version=lbauto.__version__)

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
