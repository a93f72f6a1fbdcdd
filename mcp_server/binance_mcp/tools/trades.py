"""Trades: the most recent (stream-first), older ones by id, and aggregate trades by id or time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, TypeVar

import orjson
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
    AGG_TRADE_COLUMNS,
    TRADE_COLUMNS,
    AggTradeList,
    AggTradeRow,
    TradeList,
    TradeRow,
)
from ..answers.provenance import rest_meta, ws_meta
from ..answers.respond import respond_within
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

CompactArg = Annotated[
    bool,
    Field(description="Trades as rows of values under `columns` instead of one object each (about half the text)."),
]
L = TypeVar("L", TradeList, AggTradeList)


def respond_trades(
    model: type[L],
    rows: Sequence[TradeRow] | Sequence[AggTradeRow],
    meta: dict[str, Any],
    symbol: str,
    compact: bool,
    budget: int,
    keep: Literal["first", "last"],
    extra: Callable[[Any, int], dict[str, Any]],
) -> CallToolResult:
    """The trade-list result, objects or compact rows, cut to the byte budget keeping the ``keep`` end."""
    columns = TRADE_COLUMNS if model is TradeList else AGG_TRADE_COLUMNS

    def values(r: Any) -> list[Any]:
        return [getattr(r, c) for c in columns]

    def build(kept: Sequence[Any]) -> L:
        cut = len(rows) - len(kept)
        body: dict[str, Any] = (
            {"trades": [], "columns": columns, "rows": [values(r) for r in kept]} if compact else {"trades": list(kept)}
        )
        return model(**meta, symbol=symbol, summary=trade_summary(list(kept)), truncated=cut > 0, omitted=cut,
                     **body, **extra(kept, cut))

    size_of = (lambda r: len(orjson.dumps(values(r)))) if compact else None
    return respond_within(rows, build, budget, keep=keep, size_of=size_of)


async def get_recent_trades(
    tc: ToolContext,
    symbol: SymbolArg,
    limit: int = Field(TRADES[0], ge=1, le=TRADES[1], description="Most recent trades to return."),
    source: SourceArg = "auto",
    compact: CompactArg = False,
) -> Annotated[CallToolResult, TradeList]:
    """The most recent trades of a symbol, oldest first, with a summary (volume, VWAP, taker buy/sell
    volume, high/low). From the live trade stream when it is live and complete, else GET /api/v3/trades
    (weight 25). At most about 20 KB of text (answer_budget_bytes): a longer answer keeps the newest trades
    and says truncated; compact=true fits about twice as many."""
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

    def extra(kept: Sequence[TradeRow], cut: int) -> dict[str, Any]:
        older = (f"older trades: get_historical_trades(symbol='{sym}', from_id={max(0, kept[0].id - limit)})"
                 if kept and kept[0].id > 0 else None)
        if cut:
            older = f"the most recent {len(kept)} of {len(rows)} trades fit the answer budget; " + (older or "")
        return {"hint": older}

    return respond_trades(TradeList, rows, meta, sym, compact, tc.settings.answer_budget_bytes, "last", extra)


async def get_historical_trades(
    tc: ToolContext,
    symbol: SymbolArg,
    from_id: int | None = Field(None, ge=0, le=MAX_ID, description="First trade id to return; omit for the most recent."),
    limit: int = Field(TRADES[0], ge=1, le=TRADES[1], description="Trades to return."),
    compact: CompactArg = False,
) -> Annotated[CallToolResult, TradeList]:
    """Older trades of a symbol by trade id (GET /api/v3/historicalTrades, weight 25), oldest first, with
    a summary. Page forward with next_from_id, backward with from_id = first id - limit. Not offered by
    the data-api.binance.vision endpoint. At most about 20 KB of text (answer_budget_bytes): a longer
    answer is cut (truncated) and next_from_id continues; compact=true fits about twice as many."""
    sym = await tc.symbol(symbol)
    raw = await tc.rest("/api/v3/historicalTrades", {"symbol": sym, "limit": limit, "fromId": from_id}, symbols=[sym])
    rows = [trade_from_rest(d) for d in raw]

    def extra(kept: Sequence[TradeRow], cut: int) -> dict[str, Any]:
        hint = f"previous page: from_id={max(0, kept[0].id - limit)}" if kept and kept[0].id > 0 else None
        if cut:
            hint = f"{len(kept)} of {len(rows)} trades fit the answer budget; continue with from_id=next_from_id"
        return {"next_from_id": kept[-1].id + 1 if kept else None, "hint": hint}

    return respond_trades(TradeList, rows, rest_meta(), sym, compact, tc.settings.answer_budget_bytes, "first", extra)


async def get_block_trades(
    tc: ToolContext,
    symbol: SymbolArg,
    from_id: int = Field(ge=0, le=MAX_ID, description="First block trade id (Binance needs one; 0 = the oldest kept)."),
    limit: int = Field(TRADES[0], ge=1, le=TRADES[1], description="Block trades to return."),
    compact: CompactArg = False,
) -> Annotated[CallToolResult, TradeList]:
    """Block trades of a symbol by block trade id, oldest first, with a summary (GET
    /api/v3/historicalBlockTrades, weight 25). Page on with next_from_id. New block trades as they happen:
    subscribe_streams(['<symbol>@blockTrade']) then get_stream_history. At most about 20 KB of text
    (answer_budget_bytes): a longer answer is cut (truncated) and next_from_id continues."""
    sym = await tc.symbol(symbol)
    raw = await tc.rest("/api/v3/historicalBlockTrades", {"symbol": sym, "fromId": from_id, "limit": limit},
                        symbols=[sym])
    rows = [trade_from_rest(d) for d in raw]

    def extra(kept: Sequence[TradeRow], cut: int) -> dict[str, Any]:
        hint = (f"{len(kept)} of {len(rows)} block trades fit the answer budget; continue with from_id=next_from_id"
                if cut else None if kept else f"no block trade from id {from_id} on")
        return {"next_from_id": kept[-1].id + 1 if kept else None, "hint": hint}

    return respond_trades(TradeList, rows, rest_meta(), sym, compact, tc.settings.answer_budget_bytes, "first", extra)


async def get_aggregate_trades(
    tc: ToolContext,
    symbol: SymbolArg,
    from_id: int | None = Field(None, ge=0, le=MAX_ID, description="First aggregate trade id (inclusive)."),
    start_time: TimeArg = None,
    end_time: TimeArg = None,
    limit: int = Field(TRADES[0], ge=1, le=TRADES[1], description="Aggregate trades to return."),
    source: SourceArg = "auto",
    compact: CompactArg = False,
) -> Annotated[CallToolResult, AggTradeList]:
    """Compressed trades (fills of one taker order at one price merged), oldest first, with a summary.
    Select by from_id, or by start_time/end_time (inclusive), or neither for the most recent (then the
    live aggTrade stream answers when complete). GET /api/v3/aggTrades, weight 4. At most about 20 KB of
    text (answer_budget_bytes): a longer answer is cut (truncated) and next_from_id continues; compact=true
    fits about twice as many."""
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
    forward = start is not None or from_id is not None

    def extra(kept: Sequence[AggTradeRow], cut: int) -> dict[str, Any]:
        hint = "more may follow: call again with from_id=next_from_id" if full and forward else None
        if cut:
            hint = (f"{len(kept)} of {len(rows)} trades fit the answer budget; continue with from_id=next_from_id"
                    if forward else f"the most recent {len(kept)} of {len(rows)} trades fit the answer budget")
        return {"next_from_id": kept[-1].agg_id + 1 if kept else None, "hint": hint}

    budget = tc.settings.answer_budget_bytes
    return respond_trades(AggTradeList, rows, meta, sym, compact, budget, "first" if forward else "last", extra)


TOOLS = (
    ToolSpec(get_recent_trades, "Recent trades", READ_ONLY),
    ToolSpec(get_historical_trades, "Historical trades", READ_ONLY),
    ToolSpec(get_aggregate_trades, "Aggregate trades", READ_ONLY),
    ToolSpec(get_block_trades, "Block trades", READ_ONLY),
)
