"""Trades: the most recent (stream-first), older ones by id, and aggregate trades by id or time."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.types import CallToolResult
from pydantic import Field

from binance_common.streams import build_stream

from ..answers.convert import (
    agg_trade,
    trade_from_rest,
    trade_from_ws,
    trade_summary,
)
from ..answers.inputs import (
    check_time_range,
    parse_time_ms,
)
from ..answers.market import (
    AggTradeList,
    TradeList,
)
from ..answers.provenance import rest_meta, ws_meta
from ..answers.respond import respond
from ..feed.fresh import lookup
from .context import (
    MAX_ID,
    READ_ONLY,
    TRADES,
    SourceArg,
    SymbolArg,
    TimeArg,
    ToolContext,
    ToolSpec,
)


async def get_recent_trades(
    tc: ToolContext,
    symbol: SymbolArg,
    limit: int = Field(TRADES[0], ge=1, le=TRADES[1], description="Most recent trades to return."),
    source: SourceArg = "auto",
) -> Annotated[CallToolResult, TradeList]:
    """The most recent trades of a symbol, oldest first, with a summary (volume, VWAP, taker buy/sell
    volume, high/low). From the live trade stream when it is live and complete, else GET /api/v3/trades
    (weight 25)."""
    sym = await tc.symbol(symbol)
    stream = build_stream("trade", sym)

    async def from_feed() -> Any:
        return await tc.feed.fresh_history(stream, count=limit, id_field="t")

    found = await lookup(source, f"complete trade history of {stream}", f"streams=['{stream}']", from_feed)
    if found is not None:
        payloads, f = found
        rows = [trade_from_ws(p) for p in payloads]
        meta = ws_meta(f)
    else:
        raw = await tc.rest("/api/v3/trades", {"symbol": sym, "limit": limit}, symbols=[sym])
        rows = [trade_from_rest(d) for d in raw]
        meta = rest_meta()
    return respond(
        TradeList(
            **meta, symbol=sym, trades=rows, summary=trade_summary(rows),
            hint=f"older trades: get_historical_trades(symbol='{sym}', from_id={max(0, rows[0].id - limit)})"
            if rows and rows[0].id > 0 else None,
        )
    )


async def get_historical_trades(
    tc: ToolContext,
    symbol: SymbolArg,
    from_id: int | None = Field(None, ge=0, le=MAX_ID, description="First trade id to return; omit for the most recent."),
    limit: int = Field(TRADES[0], ge=1, le=TRADES[1], description="Trades to return."),
) -> Annotated[CallToolResult, TradeList]:
    """Older trades of a symbol by trade id (GET /api/v3/historicalTrades, weight 25), oldest first, with
    a summary. Page forward with next_from_id, backward with from_id = first id - limit. Not offered by
    the data-api.binance.vision endpoint."""
    sym = await tc.symbol(symbol)
    raw = await tc.rest("/api/v3/historicalTrades", {"symbol": sym, "limit": limit, "fromId": from_id}, symbols=[sym])
    rows = [trade_from_rest(d) for d in raw]
    return respond(
        TradeList(
            **rest_meta(), symbol=sym, trades=rows, summary=trade_summary(rows),
            next_from_id=rows[-1].id + 1 if rows else None,
            hint=f"previous page: from_id={max(0, rows[0].id - limit)}" if rows and rows[0].id > 0 else None,
        )
    )


async def get_aggregate_trades(
    tc: ToolContext,
    symbol: SymbolArg,
    from_id: int | None = Field(None, ge=0, le=MAX_ID, description="First aggregate trade id (inclusive)."),
    start_time: TimeArg = None,
    end_time: TimeArg = None,
    limit: int = Field(TRADES[0], ge=1, le=TRADES[1], description="Aggregate trades to return."),
    source: SourceArg = "auto",
) -> Annotated[CallToolResult, AggTradeList]:
    """Compressed trades (fills of one taker order at one price merged), oldest first, with a summary.
    Select by from_id, or by start_time/end_time (inclusive), or neither for the most recent (then the
    live aggTrade stream answers when complete). GET /api/v3/aggTrades, weight 4."""
    sym = await tc.symbol(symbol)
    start, end = parse_time_ms(start_time, "start_time"), parse_time_ms(end_time, "end_time")
    check_time_range(start, end)
    if from_id is not None and (start is not None or end is not None):
        raise ValueError("use from_id or start_time/end_time, not both (Binance rejects the combination)")
    stream = build_stream("aggTrade", sym)
    found = None
    if from_id is None and start is None and end is None:

        async def from_feed() -> Any:
            return await tc.feed.fresh_history(stream, count=limit, id_field="a")

        found = await lookup(source, f"complete history of {stream}", f"streams=['{stream}']", from_feed)
    elif source == "stream":
        raise ValueError("source='stream' serves only the most recent trades: drop from_id/start_time/end_time")
    if found is not None:
        payloads, f = found
        rows = [agg_trade(p) for p in payloads]
        meta = ws_meta(f)
    else:
        params = {"symbol": sym, "fromId": from_id, "startTime": start, "endTime": end, "limit": limit}
        rows = [agg_trade(d) for d in await tc.rest("/api/v3/aggTrades", params, symbols=[sym])]
        meta = rest_meta()
    full = len(rows) == limit
    return respond(
        AggTradeList(
            **meta, symbol=sym, trades=rows, summary=trade_summary(rows),
            next_from_id=rows[-1].agg_id + 1 if rows else None,
            hint="more may follow: call again with from_id=next_from_id" if full and (start is not None or from_id is not None) else None,
        )
    )


TOOLS = (
    ToolSpec(get_recent_trades, "Recent trades", READ_ONLY),
    ToolSpec(get_historical_trades, "Historical trades", READ_ONLY),
    ToolSpec(get_aggregate_trades, "Aggregate trades", READ_ONLY),
)
