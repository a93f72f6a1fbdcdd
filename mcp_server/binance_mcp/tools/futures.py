"""USD-M futures market data (fapi.binance.com; the ``futures`` toolset): contracts, order book, trades,
candles of the trade, mark, index and premium-index prices, mark price and funding, tickers. Stream-first where
the daemon carries the ``um:`` stream (mark price, order book), else REST on the futures weight budget."""

from __future__ import annotations

import dataclasses
import functools
from typing import Annotated, Any, Literal

from mcp.types import CallToolResult
from pydantic import Field

from binance_common.streams import FUTURES_KLINE_INTERVALS, normalize_symbol

from ..answers.book import OrderBook, order_book
from ..answers.convert import agg_trade, kline_rows, trade_from_rest
from ..answers.futures import (
    FuturesBookTickers,
    FuturesExchangeInfo,
    FuturesKlines,
    FuturesPrice,
    FuturesPrices,
    FuturesTickers,
    MarkPrices,
    book_ticker,
    futures_symbol,
    futures_ticker,
    mark_price,
    mark_price_from_ws,
)
from ..answers.inputs import check_time_range, parse_time_ms
from ..answers.market import KLINE_COLUMNS, AggTradeList, RateLimitInfo, TradeList
from ..answers.numbers import dec
from ..answers.numbers import s as num
from ..answers.provenance import rest_meta, ws_meta
from ..answers.respond import more_hint, respond
from ..feed.fresh import lookup
from .context import MAX_ID, READ_ONLY, SourceArg, SymbolArg, TimeArg, ToolContext, ToolSpec
from .klines import respond_klines
from .trades import CompactArg, respond_trades

FuturesInterval = Literal["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"]
ContractType = Literal["PERPETUAL", "CURRENT_QUARTER", "NEXT_QUARTER"]
DepthLimit = Literal[5, 10, 20, 50, 100, 500, 1000]
OptSymbol = Annotated[str | None, Field(max_length=20, description="One contract, e.g. BTCUSDT; omit for all.")]
RowsArg = Annotated[int, Field(ge=1, le=500, description="Most rows listed (max 500).")]
KLINE_PATHS = {"trade": "/fapi/v1/klines", "mark": "/fapi/v1/markPriceKlines", "index": "/fapi/v1/indexPriceKlines",
               "premium": "/fapi/v1/premiumIndexKlines"}


async def get_futures_exchange_info(
    tc: ToolContext,
    query: Annotated[str | None, Field(max_length=20, description=(
        "Only contracts whose symbol or base asset contains this, e.g. BTC."))] = None,
    contract_type: Annotated[ContractType | None, Field(description="Only this contract type.")] = None,
    status: Annotated[Literal["TRADING", "SETTLING", "PENDING_TRADING", "ANY"], Field(
        description="Only contracts in this status (ANY: all).")] = "TRADING",
    limit: RowsArg = 50,
) -> Annotated[CallToolResult, FuturesExchangeInfo]:
    """USD-M futures contracts (GET /fapi/v1/exchangeInfo, weight 1): rate limits, counts by contract type,
    and the contracts matching the filters with tick size, step size and minimum quantity."""
    raw = await tc.futures("/fapi/v1/exchangeInfo")
    syms = raw.get("symbols") or []
    q = query.upper().strip() if query else None
    rows = [futures_symbol(x) for x in syms
            if (status == "ANY" or x.get("status") == status) and (contract_type is None or x.get("contractType") ==
                                                                    contract_type)
            and (q is None or q in x["symbol"] or q == x.get("baseAsset"))]
    by_type: dict[str, int] = {}
    for x in syms:
        by_type[str(x.get("contractType"))] = by_type.get(str(x.get("contractType")), 0) + 1
    shown = rows[:limit]
    return respond(FuturesExchangeInfo(
        **rest_meta(), timezone=raw.get("timezone", "UTC"),
        rate_limits=[RateLimitInfo(rate_limit_type=r["rateLimitType"], interval=r["interval"],
                                   interval_num=r["intervalNum"], limit=r["limit"]) for r in raw.get("rateLimits", [])],
        symbol_count=len(syms), by_contract_type=by_type, symbols=shown, total=len(rows), returned=len(shown),
        truncated=len(rows) > len(shown), hint=more_hint(len(rows), len(shown), 500, "pass query or contract_type")))


async def get_futures_order_book(
    tc: ToolContext,
    symbol: SymbolArg,
    limit: Annotated[DepthLimit, Field(description="Levels per side: 5, 10, 20, 50 (weight 2), 100 (5), 500 (10), "
                                                   "1000 (20).")] = 20,
    band_pct: Annotated[float, Field(gt=0, le=50, description="Sum liquidity within this % of the mid.")] = 1.0,
    source: SourceArg = "auto",
) -> Annotated[CallToolResult, OrderBook]:
    """Best bids and asks of a USD-M contract with mid, spread and liquidity near the mid: from the daemon's
    local futures book (um:<symbol>@depth@100ms subscribed) when fresh, else GET /fapi/v1/depth."""
    sym = normalize_symbol(symbol)

    async def from_feed() -> Any:
        book = await tc.feed.fresh_book(f"UM:{sym}")
        if book is not None and min(len(book.payload.get("bids") or []), len(book.payload.get("asks") or [])) >= limit:
            return book
        if limit > 20:
            return None
        f = await tc.feed.fresh_latest([f"um:{sym.lower()}@depth20@100ms"])
        if f is None or not isinstance(f.payload, dict):
            return None
        p = f.payload  # a futures partial book is a depthUpdate event (b, a, u)
        return dataclasses.replace(f, payload={"lastUpdateId": p.get("u"), "bids": p.get("b") or [],
                                               "asks": p.get("a") or []})

    f = await lookup(source, f"futures order book for {sym}", f"streams=['um:{sym.lower()}@depth@100ms']", from_feed)
    if f is not None:
        raw, meta = f.payload, ws_meta(f)
    else:
        raw, meta = await tc.futures("/fapi/v1/depth", {"symbol": sym, "limit": limit}), rest_meta()
    return respond(order_book(meta, sym, raw, limit, dec(str(band_pct))))


async def get_futures_recent_trades(
    tc: ToolContext,
    symbol: SymbolArg,
    limit: Annotated[int, Field(ge=1, le=1000, description="Trades (max 1000).")] = 50,
    compact: CompactArg = False,
) -> Annotated[CallToolResult, TradeList]:
    """The most recent trades of a USD-M contract (GET /fapi/v1/trades, weight 5), oldest first, with a
    summary (volume, VWAP, taker buy/sell)."""
    sym = normalize_symbol(symbol)
    rows = [trade_from_rest(t) for t in await tc.futures("/fapi/v1/trades", {"symbol": sym, "limit": limit})]
    return respond_trades(TradeList, rows, rest_meta(), sym, compact, tc.settings.answer_budget_bytes, "last",
                          lambda kept, cut: {})


async def get_futures_aggregate_trades(
    tc: ToolContext,
    symbol: SymbolArg,
    from_id: Annotated[int | None, Field(ge=0, le=MAX_ID, description="First aggregate trade id.")] = None,
    start_time: TimeArg = None,
    end_time: TimeArg = None,
    limit: Annotated[int, Field(ge=1, le=1000, description="Trades (max 1000).")] = 100,
    compact: CompactArg = False,
) -> Annotated[CallToolResult, AggTradeList]:
    """Aggregate trades of a USD-M contract (GET /fapi/v1/aggTrades, weight 20): from an id, in a time window
    of less than one hour, or the most recent."""
    sym = normalize_symbol(symbol)
    start, end = parse_time_ms(start_time, "start_time"), parse_time_ms(end_time, "end_time")
    check_time_range(start, end)
    if from_id is not None and (start is not None or end is not None):
        raise ValueError("pass from_id or a time window, not both")
    if start is not None and end is not None and end - start >= 3_600_000:
        raise ValueError("Binance allows less than one hour between start_time and end_time for futures aggTrades")
    raw = await tc.futures("/fapi/v1/aggTrades", {"symbol": sym, "fromId": from_id, "startTime": start,
                                                  "endTime": end, "limit": limit})
    rows = [agg_trade(a) for a in raw]
    forward = from_id is not None or start is not None

    def extra(kept: Any, cut: int) -> dict[str, Any]:
        nxt = kept[-1].agg_id + 1 if kept and forward and (cut or len(rows) == limit) else None
        return {"next_from_id": nxt, "hint": f"continue with from_id={nxt}" if nxt else None}

    return respond_trades(AggTradeList, rows, rest_meta(), sym, compact, tc.settings.answer_budget_bytes,
                          "first" if forward else "last", extra)


async def get_futures_klines(
    tc: ToolContext,
    symbol: SymbolArg,
    interval: Annotated[FuturesInterval, Field(description=f"Candle interval: {' '.join(FUTURES_KLINE_INTERVALS)}.")] = "1h",
    price_type: Annotated[Literal["trade", "mark", "index", "premium"], Field(description=(
        "Candles of the last traded price (trade), the mark price, the index price (symbol is then the pair), or "
        "the premium index."))] = "trade",
    contract_type: Annotated[ContractType | None, Field(description=(
        "With price_type=trade: candles of the continuous contract of this type for the pair (continuousKlines)."
    ))] = None,
    start_time: TimeArg = None,
    end_time: TimeArg = None,
    limit: Annotated[int, Field(ge=1, le=1500, description="Candles (max 1500; weight 1 under 100, 2 under 500, "
                                                           "5 up to 1000, 10 above).")] = 100,
) -> Annotated[CallToolResult, FuturesKlines]:
    """Candlesticks of a USD-M contract, oldest first, as compact rows with a summary of the range; at most
    about 20 KB of text (the answer says truncated and how to continue)."""
    sym = normalize_symbol(symbol)
    start, end = parse_time_ms(start_time, "start_time"), parse_time_ms(end_time, "end_time")
    check_time_range(start, end)
    if contract_type is not None and price_type != "trade":
        raise ValueError("contract_type goes with price_type=trade (continuous contract candles)")
    params: dict[str, Any] = {"interval": interval, "startTime": start, "endTime": end, "limit": limit}
    if contract_type is not None:
        path = "/fapi/v1/continuousKlines"
        params |= {"pair": sym, "contractType": contract_type}
    else:
        path = KLINE_PATHS[price_type]
        params["pair" if price_type == "index" else "symbol"] = sym
    raw = await tc.futures(path, params)
    make = functools.partial(FuturesKlines, **rest_meta(), symbol=sym, interval=interval, time_zone="0", ui=False,
                             columns=KLINE_COLUMNS, price_type=price_type, contract_type=contract_type)
    return respond_klines(tc, kline_rows(raw), limit, forward=start is not None, make=make)


async def get_mark_price(
    tc: ToolContext,
    symbol: OptSymbol = None,
    source: SourceArg = "auto",
    limit: RowsArg = 100,
) -> Annotated[CallToolResult, MarkPrices]:
    """Mark price, index price, last funding rate and next funding time of one USD-M contract (from the
    um:<symbol>@markPrice stream when fresh) or of all (GET /fapi/v1/premiumIndex, weight 1 / 10)."""
    if symbol is not None:
        sym = normalize_symbol(symbol)

        async def from_feed() -> Any:
            return await tc.feed.fresh_latest([f"um:{sym.lower()}@markPrice@1s", f"um:{sym.lower()}@markPrice"])

        f = await lookup(source, f"mark price of {sym}", f"streams=['um:{sym.lower()}@markPrice@1s']", from_feed)
        if f is not None:
            return respond(MarkPrices(**ws_meta(f), prices=[mark_price_from_ws(f.payload)], total=1, returned=1,
                                      truncated=False))
        rows = [await tc.futures("/fapi/v1/premiumIndex", {"symbol": sym})]
    else:
        if source == "stream":
            raise ValueError("source=stream needs a symbol (the feed keeps one um:<symbol>@markPrice stream each)")
        rows = await tc.futures("/fapi/v1/premiumIndex")
    prices = [mark_price(r) for r in rows]
    shown = prices[:limit]
    return respond(MarkPrices(**rest_meta(), prices=shown, total=len(prices), returned=len(shown),
                              truncated=len(prices) > len(shown),
                              hint=more_hint(len(prices), len(shown), 500, "pass symbol")))


async def get_futures_24hr_ticker(
    tc: ToolContext,
    symbol: OptSymbol = None,
    sort_by: Annotated[Literal["quote_volume", "price_change_percent", "symbol"], Field(
        description="Order of the list (descending, symbol ascending).")] = "quote_volume",
    limit: RowsArg = 20,
) -> Annotated[CallToolResult, FuturesTickers]:
    """24 h statistics of one USD-M contract (weight 1) or of all, ranked (weight 40)."""
    raw = await tc.futures("/fapi/v1/ticker/24hr", {"symbol": normalize_symbol(symbol) if symbol else None})
    rows = [futures_ticker(r) for r in (raw if isinstance(raw, list) else [raw])]
    key: Any = {"quote_volume": lambda t: -dec(t.quote_volume), "symbol": lambda t: t.symbol,
                "price_change_percent": lambda t: -dec(t.price_change_percent)}[sort_by]
    rows.sort(key=key)
    shown = rows[:limit]
    return respond(FuturesTickers(**rest_meta(), tickers=shown, total=len(rows), returned=len(shown),
                                  truncated=len(rows) > len(shown), hint=more_hint(len(rows), len(shown), 500, "pass symbol")))


async def get_futures_book_ticker(
    tc: ToolContext, symbol: OptSymbol = None, limit: RowsArg = 50,
) -> Annotated[CallToolResult, FuturesBookTickers]:
    """Best bid and ask of one USD-M contract (weight 2) or of all (weight 5)."""
    raw = await tc.futures("/fapi/v1/ticker/bookTicker", {"symbol": normalize_symbol(symbol) if symbol else None})
    rows = [book_ticker(r) for r in (raw if isinstance(raw, list) else [raw])]
    shown = rows[:limit]
    return respond(FuturesBookTickers(**rest_meta(), tickers=shown, total=len(rows), returned=len(shown),
                                      truncated=len(rows) > len(shown)))


async def get_futures_price(
    tc: ToolContext, symbol: OptSymbol = None, limit: RowsArg = 100,
) -> Annotated[CallToolResult, FuturesPrices]:
    """Last traded price of one USD-M contract (weight 1) or of all (weight 2), GET /fapi/v2/ticker/price."""
    raw = await tc.futures("/fapi/v2/ticker/price", {"symbol": normalize_symbol(symbol) if symbol else None})
    rows = [FuturesPrice(symbol=r["symbol"], price=num(r["price"]), time_ms=r.get("time"))
            for r in (raw if isinstance(raw, list) else [raw])]
    shown = rows[:limit]
    return respond(FuturesPrices(**rest_meta(), prices=shown, total=len(rows), returned=len(shown),
                                 truncated=len(rows) > len(shown)))



TOOLS = (
    ToolSpec(get_futures_exchange_info, "Futures contracts", READ_ONLY),
    ToolSpec(get_futures_order_book, "Futures order book", READ_ONLY),
    ToolSpec(get_futures_recent_trades, "Futures recent trades", READ_ONLY),
    ToolSpec(get_futures_aggregate_trades, "Futures aggregate trades", READ_ONLY),
    ToolSpec(get_futures_klines, "Futures candlesticks (trade, mark, index, premium)", READ_ONLY),
    ToolSpec(get_mark_price, "Futures mark price and funding", READ_ONLY),
    ToolSpec(get_futures_24hr_ticker, "Futures 24h ticker", READ_ONLY),
    ToolSpec(get_futures_book_ticker, "Futures best bid/ask", READ_ONLY),
    ToolSpec(get_futures_price, "Futures last price", READ_ONLY),
)
