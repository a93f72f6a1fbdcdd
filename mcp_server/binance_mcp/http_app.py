"""Streamable HTTP front end: the MCP app at /mcp, /healthz, run by uvicorn."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator

import uvicorn
from binance_common.settings import Settings
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from .runtime import Runtime
from .server import build_server

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, stateless: bool = True, runtime: Runtime | None = None) -> Starlette:
    rt = runtime or Runtime(settings)
    mcp = build_server(rt)
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", *settings.allowed_hosts],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )
    mcp_app = mcp.streamable_http_app(
        streamable_http_path="/mcp", stateless_http=stateless, json_response=stateless,
        transport_security=security, host=settings.http_host,
    )

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await rt.start()
        try:
            async with mcp.session_manager.run():
                yield
        finally:
            await rt.stop()

    return Starlette(
        routes=[Route("/healthz", healthz), Mount("/", app=mcp_app)],
        lifespan=lifespan,
    )


async def serve(settings: Settings, stateless: bool = True) -> None:
    app = create_app(settings, stateless=stateless)
    config = uvicorn.Config(app, host=settings.http_host, port=settings.http_port, log_level="warning")
    server = uvicorn.Server(config)
    await server.startup() if False else None
    print(f"binance-mcp: Streamable HTTP on http://{settings.http_host}:{settings.http_port}/mcp", file=sys.stderr)
    await server.serve()
