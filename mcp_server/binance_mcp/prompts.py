"""Prompts: ready-made plans that use the tools (the agent runs them; the server only validates inputs)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from pydantic import Field

from binance_common.streams import KLINE_INTERVALS, SymbolError, normalize_symbol

INVALID_PARAMS = -32602  # JSON-RPC: the prompt's arguments are wrong; the message says what is allowed


def _symbol(symbol: str) -> str:
    try:
        return normalize_symbol(symbol)
    except SymbolError as e:
        raise MCPError(INVALID_PARAMS, f"invalid argument symbol: {e}") from None


def register(mcp: MCPServer) -> None:
    @mcp.prompt(name="market_overview", title="Market overview of a symbol")
    def market_overview(symbol: str = Field(description="Trading pair, e.g. BTCUSDT.")) -> str:
        """Summarise price, 24 h change, spread and liquidity of one symbol from REST and the live feed."""
        sym = _symbol(symbol)
        low = sym.lower()
        return f"""Give a concise market overview of {sym} on Binance Spot.

1. Call get_price with symbol={sym} for the last traded price (REST).
2. Call subscribe_streams with streams=["{low}@ticker", "{low}@bookTicker"] (wait_s=10) so the shared
   live feed carries them; note which came up live and which failed.
3. Call get_stream_latest for {low}@ticker (24 h change, high, low, volume) and {low}@bookTicker (best
   bid/ask). Check each answer's freshness: if stale is true or state is not live, say so plainly.
4. If get_live_order_book works for {sym}, report the spread in basis points and the depth within 1%.
5. Summarise in a short table: last price, 24 h change %, 24 h high/low, volume, best bid/ask, spread,
   and the as-of time of each figure. Quote prices exactly as returned (decimal strings); do not round
   unless you say so."""

    @mcp.prompt(name="watch_symbol", title="Watch a symbol live")
    def watch_symbol(
        symbol: str = Field(description="Trading pair, e.g. BTCUSDT."),
        interval: str = Field("1m", description=f"Kline interval: {' '.join(KLINE_INTERVALS)}."),
    ) -> str:
        """Follow a symbol's trades and candles live, reading only what is new each time."""
        sym = _symbol(symbol)
        if interval not in KLINE_INTERVALS:
            raise MCPError(INVALID_PARAMS, f"invalid argument interval {interval[:20]!r}: use one of "
                           f"{' '.join(KLINE_INTERVALS)} (case-sensitive: 1m is a minute, 1M a month)")
        low = sym.lower()
        return f"""Watch {sym} live and report notable moves.

1. Call subscribe_streams with kind="aggTrade", symbols=["{sym}"], then again with kind="kline",
   symbols=["{sym}"], interval="{interval}".
2. Call get_stream_history for {low}@aggTrade with count=50 and remember next_cursor.
3. Repeatedly call get_stream_history for {low}@aggTrade with since=<next_cursor> and wait_s=10: it
   returns only new trades (waiting for them). If missed is above 0, say that some trades were trimmed
   before you read them.
4. After each batch, call get_stream_latest for {low}@kline_{interval} and report the current candle
   (open, high, low, close, volume, closed or not) with its freshness.
5. Flag large trades (well above the recent average quantity) and fast price moves. When done, call
   unsubscribe_streams with the streams you subscribed to."""
