"""Stream tools: read the live feed the daemon keeps in Redis."""

from __future__ import annotations

from typing import Any

import orjson
from binance_common.streams import validate_stream
from binance_common.timeutil import now_ms
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from .errors import tool_errors
from .runtime import Runtime

READ_ONLY_LOCAL = ToolAnnotations(readOnlyHint=True, openWorldHint=False, idempotentHint=True)


class StreamLatest(BaseModel):
    stream: str
    data: Any = Field(description="The payload exactly as Binance sent it (prices are decimal strings).")
    received_ms: int = Field(description="When the feed received it, ms since epoch.")
    age_ms: int
    source: str = "ws"
    status: str | None = Field(None, description="Subscription state: pending, live, failed, unsubscribed.")


def register(mcp: MCPServer, rt: Runtime) -> None:
    @mcp.tool(name="get_stream_latest", annotations=READ_ONLY_LOCAL)
    @tool_errors
    async def get_stream_latest(
        stream: str = Field(description="Stream name, e.g. btcusdt@trade or btcusdt@kline_1m."),
    ) -> StreamLatest:
        """The latest message of a live stream from the shared feed, with its age."""
        name = validate_stream(stream)
        raw = await rt.r.get(rt.keys.latest(name))
        state = await rt.r.hget(rt.keys.status(name), "state")
        st = state.decode() if isinstance(state, bytes) else state
        if raw is None:
            raise ToolError(
                f"no data yet for {name} (subscription state: {st or 'not subscribed'}); subscribe to it first"
            )
        env = orjson.loads(raw)
        return StreamLatest(
            stream=name, data=env["d"], received_ms=env["r"], age_ms=max(0, now_ms() - env["r"]), status=st
        )
