"""HTTP front end: Streamable HTTP at /mcp, legacy SSE at /sse, and /healthz, served by uvicorn.

Stateless by default, so any number of replicas can sit behind a load balancer: no request depends on the
replica that served an earlier one (leases of stateless clients belong to the replica pool, see
:mod:`binance_mcp.feed.leases`; live updates reach a listener on any replica through the Redis bus). ``stateless=False``
keeps per-client sessions instead (needed by handshake-era clients that rely on ``resources/subscribe``
over Streamable HTTP; /sse always offers it). Binds 127.0.0.1 by default; see :mod:`.auth` for the rules
that apply elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from binance_common.settings import Settings

from ..runtime import Runtime, default_holder
from ..server import build_server
from .auth import (
    BearerAuthMiddleware,
    HostGuardMiddleware,
    auth_token,
    check_bind,
    host_policy,
    static_token_authenticator,
    transport_security,
)
from .oauth import auth_settings, jwt_authenticator, oauth_enabled, oauth_middleware, verifier_for

log = logging.getLogger(__name__)


async def health(rt: Runtime, *, stateless: bool) -> tuple[int, dict[str, object]]:
    """(HTTP status, body): 200 while Redis answers (``degraded`` without a daemon heartbeat), else 503."""
    body: dict[str, object] = {"replica": rt.holder, "embedded": rt.settings.embedded, "stateless": stateless}
    if not rt.started:
        body.update(status="starting", redis={"ok": False}, daemon={"alive": False})
        return 503, body
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(2.0):
            await rt.r.ping()
            hb, stats = await rt.feed.heartbeat()
    except Exception as e:  # the health check reports failures, it never raises
        body.update(status="down", redis={"ok": False, "error": type(e).__name__}, daemon={"alive": None})
        return 503, body
    latency = round((time.perf_counter() - t0) * 1000, 2)
    daemon: dict[str, object] = {"alive": hb is not None}
    if hb:
        ts = hb.get("ts")
        daemon.update(pid=hb.get("pid"), host=hb.get("host"))
        if isinstance(ts, int | float):
            daemon["heartbeat_age_ms"] = max(0, int(time.time() * 1000) - int(ts))
    if stats:
        conns = stats.get("connections")
        if isinstance(conns, list):
            daemon["connections"] = len(conns)
            daemon["connections_up"] = sum(1 for c in conns if isinstance(c, dict) and c.get("up"))
        elif isinstance(conns, int):
            daemon["connections"] = conns
        daemon["max_silence_ms"] = stats.get("max_silence_ms")
    body.update(
        status="ok" if hb is not None else "degraded", redis={"ok": True, "latency_ms": latency}, daemon=daemon
    )
    return 200, body


def create_app(
    settings: Settings, *, stateless: bool = True, runtime: Runtime | None = None, replica_id: str | None = None
) -> Starlette:
    """The ASGI app of one replica. Raises :class:`~binance_mcp.http.auth.StartupError` on an unsafe bind."""
    oauth = oauth_enabled(settings)
    check_bind(settings, oauth=oauth)
    rt = runtime or Runtime(settings, holder=replica_id or f"http-{default_holder()}", transport="http")
    rt.transport = "http"
    rt.leases.renew_pool = True
    verifier = verifier_for(settings) if oauth else None
    mcp = build_server(rt, token_verifier=verifier, auth=auth_settings(settings) if oauth else None)
    security = transport_security(settings)
    streamable = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=stateless,
        json_response=stateless,
        transport_security=security,
        host=settings.http_host,
    )
    sse = mcp.sse_app(sse_path="/sse", message_path="/messages/", transport_security=security, host=settings.http_host)

    token = auth_token(settings)
    authenticate = static_token_authenticator(token) if token else None
    if verifier is not None:
        authenticate = jwt_authenticator(verifier)

    async def healthz(request: Request) -> JSONResponse:
        code, body = await health(rt, stateless=stateless)
        if authenticate is not None and await authenticate(request.scope) is not None:
            body = {"status": body.get("status")}  # with authentication on: host, pids, ids only with a credential
        return JSONResponse(body, status_code=code)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await rt.start()
        try:
            async with mcp.session_manager.run():
                yield
        finally:
            await rt.stop()

    routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"]), *streamable.routes, *sse.routes]
    middleware = [Middleware(HostGuardMiddleware, policy=host_policy(settings))]
    if verifier is not None:  # the SDK's OAuth middleware; its routes check the token and the scopes
        middleware += oauth_middleware(verifier, settings)
    elif authenticate is not None:
        middleware.append(Middleware(BearerAuthMiddleware, authenticate=authenticate))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.runtime = rt
    app.state.mcp = mcp
    return app


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket (``port`` 0 picks a free one), so the URL can be printed before serving."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets, and without it every
    # response split into headers + body waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def serve(settings: Settings, stateless: bool = True, replica_id: str | None = None,
                runtime: Runtime | None = None) -> None:
    """Serve one replica in this process (what ``binance-mcp http`` runs with ``--workers 1``)."""
    app = create_app(settings, stateless=stateless, replica_id=replica_id, runtime=runtime)
    sock = bind_socket(settings.http_host, settings.http_port)
    _announce(sock, workers=1)
    await uvicorn.Server(_uvicorn_config(app)).serve(sockets=[sock])


def _uvicorn_config(app: Starlette | str, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=3, ws="none", **extra
    )

_ENV_STATELESS = "BINANCE_MCP_HTTP_STATELESS"
_ENV_REPLICA = "BINANCE_MCP_HTTP_REPLICA_ID"


def _announce(sock: socket.socket, *, workers: int) -> None:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    more = f", {workers} worker processes" if workers > 1 else ""
    print(
        f"binance-mcp: Streamable HTTP on http://{shown}:{port}/mcp (legacy SSE /sse, health /healthz{more})",
        file=sys.stderr,
        flush=True,
    )


def app_from_env() -> Starlette:
    """App factory of a worker process (``--workers N``): settings and options come from the environment, and
    each worker is its own replica (its own holder, bus and lease keeper; stateless pool leases are shared)."""
    base = os.environ.get(_ENV_REPLICA) or f"http-{default_holder()}"
    stateless = os.environ.get(_ENV_STATELESS, "1") == "1"
    return create_app(Settings(), stateless=stateless, replica_id=f"{base}-w{os.getpid()}")


def serve_workers(settings: Settings, workers: int, stateless: bool = True, replica_id: str | None = None) -> None:
    """Run ``workers`` replica processes on one listening socket (uvicorn's supervisor restarts dead ones)."""
    from uvicorn.supervisors import Multiprocess

    check_bind(settings, oauth=oauth_enabled(settings))  # fail in the parent, with the message, first
    sock = bind_socket(settings.http_host, settings.http_port)
    os.environ["BINANCE_MCP_HTTP_HOST"] = settings.http_host  # the workers read their settings from the env
    os.environ["BINANCE_MCP_HTTP_PORT"] = str(sock.getsockname()[1])
    os.environ[_ENV_STATELESS] = "1" if stateless else "0"
    os.environ["BINANCE_MCP_TOOLSETS"] = ",".join(settings.toolsets)
    if replica_id:
        os.environ[_ENV_REPLICA] = replica_id
    config = _uvicorn_config("binance_mcp.http.app:app_from_env", factory=True, workers=workers)
    _announce(sock, workers=workers)
    Multiprocess(config, sockets=[sock]).run()
