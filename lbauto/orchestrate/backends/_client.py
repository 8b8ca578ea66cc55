"""A thin client for etcd's v3 JSON gateway (etcd3gw), with lbauto's errors.

etcd3gw speaks HTTP/JSON to etcd's grpc-gateway: no gRPC stack to match versions with. It
finds the gateway's path (``/v3/`` on etcd 3.4 and later, ``/v3beta/`` on 3.3) by asking
``/version``, which is also our reachability probe. Every etcd3gw and requests exception is
turned into :class:`~lbauto.errors.BackendUnavailableError` (no answer) or
:class:`~lbauto.errors.BackendError` (an answer that refuses); a password is only read from
the environment variable the inventory names, and never appears in a message.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from etcd3gw import exceptions as etcd_exc
from etcd3gw.client import Etcd3Client

from lbauto.core.model import EtcdBackend
from lbauto.errors import BackendError, BackendUnavailableError

T = TypeVar("T")

FIX = (
    "nothing was changed; start etcd there, fix backend.endpoints in lbauto.yaml, or remove "
    "`backend:` to use the local lock"
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def unb64(text: str) -> str:
    return base64.b64decode(text).decode("utf-8", errors="replace")


def _reason(exc: BaseException, timeout: float) -> str:
    """A short cause: requests' own text is a page of connection-pool internals."""
    detail = exc.detail_text if isinstance(exc, etcd_exc.Etcd3Exception) else None
    text = detail or str(exc) or type(exc).__name__
    for needle, short in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("Temporary failure in name resolution", "unknown host"),
        ("No route to host", "no route to host"),
        ("Network is unreachable", "network unreachable"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted (check backend.ca_file)"),
        ("Connection reset", "connection reset"),
    ):
        if needle in text:
            return short
    if isinstance(exc, etcd_exc.ConnectionTimeoutError | requests.Timeout) or "timed out" in text:
        return f"no answer within {timeout:g} s"
    return text.splitlines()[0][:200]


def _detail(exc: etcd_exc.Etcd3Exception) -> str:
    """etcd's own message from the gateway's JSON error body (``{"message": ...}``)."""
    text = (exc.detail_text or str(exc) or type(exc).__name__).strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:300]
    return (
        str(doc.get("message") or doc.get("error") or text)[:300]
        if isinstance(doc, dict)
        else text[:300]
    )


class EtcdConn:
    """One etcd client bound to the first endpoint that answered :meth:`connect`."""

    def __init__(self, cfg: EtcdBackend) -> None:
        self.cfg = cfg
        self.endpoint = cfg.endpoints[0]
        self._client: Etcd3Client | None = None

    # --------------------------------------------------------------------------- connecting

    def connect(self) -> None:
        """Use the first endpoint that answers; :class:`BackendUnavailableError` naming each
        endpoint if none does."""
        failures: list[str] = []
        for endpoint in self.cfg.endpoints:
            try:
                self._client = self._open(endpoint)
                self.endpoint = endpoint
                return
            except BackendUnavailableError as exc:
                cause = exc.__cause__
                failures.append(_reason(cause, self.cfg.timeout) if cause else str(exc))
        shown = "; ".join(f"{e}: {f}" for e, f in zip(self.cfg.endpoints, failures, strict=True))
        raise BackendUnavailableError(f"etcd backend unreachable ({shown}); {FIX}")

    def clone(self) -> EtcdConn:
        """A second connection to the same endpoint (its own HTTP session, for a thread)."""
        other = EtcdConn(self.cfg)
        other._client = self._open(self.endpoint, self.client.api_path)
        other.endpoint = self.endpoint
        return other

    def _open(self, endpoint: str, api_path: str | None = None) -> Etcd3Client:
        url = urlsplit(endpoint)
        https = url.scheme == "https"
        cfg = self.cfg
        client = Etcd3Client(
            host=url.hostname or "localhost",
            port=url.port or 2379,
            protocol=url.scheme,
            ca_cert=str(cfg.ca_file) if https and cfg.ca_file else None,
            cert_cert=str(cfg.cert_file) if cfg.cert_file else None,
            cert_key=str(cfg.key_file) if cfg.key_file else None,
            timeout=cfg.timeout,
            api_path=api_path,  # None: probe /version (which also tells it is reachable)
        )
        self._client = client
        self.endpoint = endpoint
        self._call("the version probe", lambda: client.api_path)
        if cfg.username:
            password = os.environ.get(cfg.password_env or "")
            if cfg.password_env and password is None:
                raise BackendError(
                    f"etcd user {cfg.username}: the environment variable {cfg.password_env} "
                    "(backend.password_env) is not set; nothing was changed"
                )
            reply = self.post(
                "/auth/authenticate",
                {"name": cfg.username, "password": password},
                f"the login of user {cfg.username} (backend.username, backend.password_env)",
            )
            client.session.headers["Authorization"] = str(reply.get("token", ""))
        return client

    # ------------------------------------------------------------------------------ requests

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (etcd_exc.ConnectionFailedError, etcd_exc.ConnectionTimeoutError) as exc:
            raise BackendUnavailableError(
                f"etcd at {self.endpoint} did not answer {what}: {_reason(exc, self.cfg.timeout)}"
            ) from exc
        except requests.RequestException as exc:
            raise BackendUnavailableError(
                f"etcd at {self.endpoint} did not answer {what}: {_reason(exc, self.cfg.timeout)}"
            ) from exc
        except etcd_exc.Etcd3Exception as exc:
            raise BackendError(f"etcd at {self.endpoint} refused {what}: {_detail(exc)}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"etcd at {self.endpoint}: unexpected reply to {what}") from exc

    @property
    def client(self) -> Etcd3Client:
        assert self._client is not None, "connect() first"
        return self._client

    def post(self, path: str, body: dict[str, Any], what: str | None = None) -> dict[str, Any]:
        client = self.client

        def go() -> dict[str, Any]:
            reply = client.post(client.get_url(path), json=body)
            if not isinstance(reply, dict):
                raise TypeError(path)
            return reply

        return self._call(what or path.strip("/").replace("/", " "), go)

    def grant(self, ttl: int) -> int:
        return int(self.post("/lease/grant", {"TTL": ttl, "ID": 0}, "a lease grant")["ID"])

    def keepalive(self, lease: int) -> int:
        """The lease's new TTL; 0 or less once it has expired."""
        reply = self.post("/lease/keepalive", {"ID": lease}, "a lease keepalive")
        return int(reply.get("result", {}).get("TTL", -1))

    def ttl_left(self, lease: int) -> int:
        reply = self.post("/kv/lease/timetolive", {"ID": lease}, "a lease lookup")
        return int(reply.get("TTL", -1))

    def revoke(self, lease: int) -> None:
        self.post("/kv/lease/revoke", {"ID": lease}, "a lease revoke")

    def txn(self, body: dict[str, Any], what: str) -> dict[str, Any]:
        return self.post("/kv/txn", body, what)

    def range(self, body: dict[str, Any], what: str) -> dict[str, Any]:
        return self.post("/kv/range", body, what)
