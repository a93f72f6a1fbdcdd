"""Build the MCPServer: one function that registers every tool, resource and prompt module."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

from . import __version__
from .runtime import Runtime

INSTRUCTIONS = """\
Binance Spot market data. REST tools (prices, order books, candles, trades, tickers, exchange info) call
Binance directly; stream tools read a shared live WebSocket feed kept in Redis. Every stream answer says
how fresh it is (as-of time, age, source, stale flag). Prices and quantities are exact decimal strings.
Symbols are pairs without separators, e.g. BTCUSDT."""


def build_server(rt: Runtime, *, subscriptions: Any = None) -> MCPServer:
    """An MCPServer whose tools use ``rt`` (which the caller starts and stops)."""
    mcp: MCPServer = MCPServer(
        "binance-mcp",
        title="Binance market data",
        instructions=INSTRUCTIONS,
        version=__version__,
        subscriptions=subscriptions,
    )
    from . import market_tools, stream_tools

    market_tools.register(mcp, rt)
    stream_tools.register(mcp, rt)
    for optional in ("resources", "prompts"):
        try:
            module = __import__(f"{__package__}.{optional}", fromlist=["register"])
        except ModuleNotFoundError:
            continue
        module.register(mcp, rt)
    return mcp
