"""REST market-data tools (Binance Spot public endpoints)."""

from __future__ import annotations

from datetime import UTC, datetime

from binance_common.streams import normalize_symbol
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from .errors import tool_errors
from .runtime import Runtime

READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=True, idempotentHint=True)


class ServerTime(BaseModel):
    server_time_ms: int = Field(description="Binance server time, ms since the Unix epoch (UTC).")
    server_time_iso: str
    clock_offset_ms: int = Field(description="Binance time minus this machine's clock, ms.")


class Price(BaseModel):
    symbol: str
    price: str = Field(description="Last traded price, exact decimal string as Binance sent it.")
    source: str = Field("rest", description="rest (Binance REST) or ws (live stream in Redis).")


def register(mcp: MCPServer, rt: Runtime) -> None:
    @mcp.tool(name="get_server_time", annotations=READ_ONLY)
    @tool_errors
    async def get_server_time() -> ServerTime:
        """Binance server time and this machine's clock offset from it (ms)."""
        t = await rt.api.server_time_ms()
        iso = datetime.fromtimestamp(t / 1000, UTC).isoformat(timespec="milliseconds")
        return ServerTime(server_time_ms=t, server_time_iso=iso, clock_offset_ms=rt.api.clock_offset_ms)

    @mcp.tool(name="get_price", annotations=READ_ONLY)
    @tool_errors
    async def get_price(symbol: str = Field(description="Trading pair, e.g. BTCUSDT.")) -> Price:
        """Latest price of one symbol (GET /api/v3/ticker/price, weight 2)."""
        sym = normalize_symbol(symbol)
        data = await rt.api.get("/api/v3/ticker/price", {"symbol": sym})
        return Price(symbol=data["symbol"], price=str(data["price"]))
