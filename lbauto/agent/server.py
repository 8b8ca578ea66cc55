"""Runs the agent: config -> token -> service -> FastAPI app -> uvicorn."""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence

import uvicorn

from lbauto.agent.api import create_app
from lbauto.agent.bgp import Speaker, health_problems
from lbauto.agent.config import AgentConfig, read_token
from lbauto.agent.dataplane import TableSpec, make_dataplane
from lbauto.agent.service import AgentService
from lbauto.agent.store import StateStore
from lbauto.errors import ConfigError

log = logging.getLogger("lbauto.agent")


def build_service(cfg: AgentConfig, nft_argv: Sequence[str] = ("nft",)) -> AgentService:
    spec = TableSpec(
        table=cfg.table,
        interface=cfg.interface,
        flow_timeout=cfg.flow_timeout,
        flow_table_size=cfg.flow_table_size,
        buckets_per_dip=cfg.buckets_per_dip,
    )
    return AgentService(spec, make_dataplane(nft_argv), StateStore(cfg.state_file))


def serve(cfg: AgentConfig) -> None:
    """Serve until interrupted. Raises ConfigError before binding if no token is configured."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    token = read_token(cfg)
    try:
        socket.if_nametoindex(cfg.interface)
    except OSError:
        raise ConfigError(
            f"interface {cfg.interface!r} does not exist in this network namespace; "
            "set interface to the server-facing interface (ip link)"
        ) from None
    if token is None:
        log.warning(
            "!!! INSECURE: the agent API on %s:%d accepts requests WITHOUT a token "
            "(insecure_no_auth). Use this only in a lab. !!!",
            cfg.listen,
            cfg.port,
        )
    service = build_service(cfg)
    speaker = None
    if cfg.bgp is not None:
        speaker = Speaker(
            cfg.bgp,
            vips=lambda: list(service.vips),
            health=lambda: health_problems(cfg.interface, cfg.table),
        )
    app = create_app(
        service, token, tick=cfg.tick, max_body_bytes=cfg.max_body_bytes, speaker=speaker
    )
    log.info(
        "agent: table netdev %s on %s, API on %s://%s:%d, state %s",
        cfg.table,
        cfg.interface,
        "https" if cfg.tls_cert else "http",
        cfg.listen,
        cfg.port,
        cfg.state_file,
    )
    uvicorn.run(
        app,
        host=cfg.listen,
        port=cfg.port,
        ssl_certfile=str(cfg.tls_cert) if cfg.tls_cert else None,
        ssl_keyfile=str(cfg.tls_key) if cfg.tls_key else None,
        log_level="info",
        access_log=False,
    )
