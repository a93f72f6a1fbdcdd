"""Pins of the library internals the project uses (each behind one adapter): a library release that renames
one fails here, by name."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from mcp import Client
from mcp.server.mcpserver import Context, MCPServer

from binance_mcp.sdk_adapter import drop_tracing, lowlevel_server, session_connection
from binance_streamd.redis_adapter import stream_writer

pytestmark = pytest.mark.integration


async def test_mcp_sdk_internals_are_where_the_adapter_looks() -> None:
    mcp = MCPServer("pin")
    low = lowlevel_server(mcp)
    assert callable(low.add_request_handler), "MCPServer._lowlevel_server.add_request_handler moved"
    seen: list[Any] = []

    @mcp.tool()
    async def probe(ctx: Context) -> str:
        seen.append(session_connection(ctx.request_context.session))
        return "ok"

    async with Client(mcp) as c:
        await c.call_tool("probe", {})
    conn = seen[0]
    assert conn is not None, "ServerSession._connection is gone: session-scoped leases fall back to the pool"
    assert hasattr(conn, "state") and hasattr(conn, "exit_stack") and hasattr(conn, "protocol_version")


async def test_the_sdk_tracing_middleware_is_where_the_adapter_looks() -> None:
    mcp = MCPServer("pin")
    before = len(mcp.middleware)
    assert drop_tracing(mcp) == 1, "the SDK no longer ships OpenTelemetryMiddleware first in MCPServer.middleware"
    assert len(mcp.middleware) == before - 1 and drop_tracing(mcp) == 0

    @mcp.tool()
    async def probe() -> str:
        return "ok"

    async with Client(mcp) as c:  # the chain still serves calls without it
        assert (await c.call_tool("probe", {})).content[0].text == "ok"  # type: ignore[union-attr]


async def test_redis_py_connection_writer_is_where_the_adapter_looks(redis_server) -> None:
    r = aioredis.Redis.from_url(redis_server.url)
    conn = await r.connection_pool.get_connection()
    try:
        await conn.connect()
        w = stream_writer(conn)
        assert w is not None and callable(w.write) and callable(w.is_closing), "redis-py Connection._writer moved"
    finally:
        await r.connection_pool.release(conn)
        await r.aclose()
