"""REST market-data tools: every public Binance Spot market endpoint, context-safe, exact, rate-limit aware.

Each tool validates its input before any request, answers from the live feed when it holds fresh data
(see :mod:`stream_first`; ``source`` says which), keeps answers small by default (each list has a default and a
maximum size and says when it cut), and returns a pydantic model (clients get an output schema; the text is
the same data as compact JSON). Requests go through the shared REST client, whose governor keeps every
replica on this IP within one weight budget.

Seed-system equivalents: ping_binance, get_server_time, get_price, get_order_book, get_historical_prices ->
``get_klines``, get_ui_klines, get_recent_trades, get_historical_trades, get_aggregate_trades,
get_24hr_ticker, get_all_24hr_tickers, get_trading_day_ticker, get_all_trading_day_tickers,
get_rolling_window_ticker, get_all_rolling_window_tickers, get_average_price, get_book_ticker,
get_all_book_tickers, get_exchange_info (now a summary; details via ``get_symbol_info``/``search_symbols``).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult
from pydantic import Field

from binance_common.streams import KLINE_INTERVALS

from . import market_tickers
from .errors import tool_errors
from .freshness import iso_ms
from .market_base import (
    BOOK_LEVELS,
    KLINES,
    MAX_ID,
    READ_ONLY,
    SEARCH_ROWS,
    SYMBOL_ROWS,
    TRADES,
    AssetArg,
    Interval,
    Market,
    SourceArg,
    SymbolArg,
    SymbolStatus,
    TimeArg,
    more_hint,
    plain,
)
from .market_convert import (
    agg_trade,
    book_levels,
    book_stats,
    check_time_range,
    check_time_zone,
    dec,
    kline_rows,
    kline_summary,
    parse_time_ms,
    respond,
    s,
    trade_from_rest,
    trade_from_ws,
    trade_summary,
)
from .market_models import (
    KLINE_COLUMNS,
    AggTradeList,
    AvgPrice,
    ExchangeInfoSummary,
    Klines,
    OrderBook,
    Ping,
    RateLimitInfo,
    ServerTime,
    SymbolBrief,
    SymbolInfo,
    SymbolSearch,
    TradeList,
)
from .runtime import Runtime
from .stream_first import (
    FRESH_DEPTH_MS,
    FRESH_TICKER_MS,
    FRESH_TRADES_MS,
    fresh_book,
    fresh_history,
    fresh_latest,
    lookup,
)
from .symbols import check_asset, directory, search, summarise_filters


def register(mcp: MCPServer, rt: Runtime) -> None:
    m = Market(rt)
    _register_general(mcp, rt, m)
    _register_symbols(mcp, rt, m)
    _register_book_and_trades(mcp, rt, m)
    _register_klines(mcp, rt, m)
    market_tickers.register(mcp, rt, m)


# --- general -----------------------------------------------------------------------------------------------
def _register_general(mcp: MCPServer, rt: Runtime, m: Market) -> None:
    @mcp.tool(name="ping_binance", title="Ping Binance REST", annotations=READ_ONLY)
    @tool_errors
    async def ping_binance() -> Annotated[CallToolResult, Ping]:
        """Check that Binance REST answers from here (GET /api/v3/ping, weight 1) and how fast (ms)."""
        t0 = time.perf_counter()
        await m.rest("/api/v3/ping")
        ms = round((time.perf_counter() - t0) * 1000, 2)
        return respond(Ping(ok=True, latency_ms=ms, rest_base_url=rt.settings.rest_base_url))

    @mcp.tool(name="get_server_time", title="Binance server time", annotations=READ_ONLY)
    @tool_errors
    async def get_server_time() -> Annotated[CallToolResult, ServerTime]:
        """Binance server time and this machine's clock offset from it, ms (weight 1). The offset is stored
        for every replica (signed requests need it)."""
        t = await rt.api.server_time_ms()
        return respond(
            ServerTime(
                server_time_ms=t,
                server_time_iso=iso_ms(t),
                clock_offset_ms=rt.api.clock_offset_ms,
                round_trip_ms=round(rt.api.last_round_trip_ms, 2) if rt.api.last_round_trip_ms is not None else None,
            )
        )


# --- exchange info and symbols ----------------------------------------------------------------------------
def _register_symbols(mcp: MCPServer, rt: Runtime, m: Market) -> None:
    @mcp.tool(name="get_exchange_info", title="Exchange info (summary)", annotations=READ_ONLY)
    @tool_errors
    async def get_exchange_info(
        quote_asset: AssetArg = None,
        base_asset: AssetArg = None,
        status: SymbolStatus = Field("TRADING", description="Only symbols with this status (ANY = all)."),
        permission: str | None = Field(None, max_length=32, description="Only symbols tradable with it, e.g. SPOT, MARGIN."),
        limit: int = Field(SYMBOL_ROWS[0], ge=0, le=SYMBOL_ROWS[1], description="Symbols to list (0 = counts only)."),
        refresh: bool = Field(False, description="Fetch exchangeInfo again now (weight 20) instead of the shared cache."),
    ) -> Annotated[CallToolResult, ExchangeInfoSummary]:
        """Exchange summary from Binance exchangeInfo (cached for every replica; weight 20 when fetched): time
        zone, rate limits, symbol counts by status and quote asset, and the symbols matching the filters
        (name, status, base, quote). Never the multi-megabyte dump: use get_symbol_info for one symbol's
        trading rules (tick size, step size, min notional) and search_symbols to find symbols by text."""
        q, b = check_asset(quote_asset, "quote_asset"), check_asset(base_asset, "base_asset")
        snap = await directory(rt).snapshot(refresh=refresh)
        hits = search(
            snap, base_asset=b, quote_asset=q, status=None if status == "ANY" else status,
            permission=permission.strip().upper() if permission else None,
        )
        by_status: dict[str, int] = {}
        quotes: dict[str, int] = {}
        for info in snap.symbols.values():
            st = str(info.get("status"))
            by_status[st] = by_status.get(st, 0) + 1
            if st == "TRADING":
                qa = str(info.get("quoteAsset"))
                quotes[qa] = quotes.get(qa, 0) + 1
        top_quotes = dict(sorted(quotes.items(), key=lambda kv: (-kv[1], kv[0]))[:25])
        shown = hits[:limit]
        return respond(
            ExchangeInfoSummary(
                source="rest" if snap.source == "rest" else "cache",
                as_of_ms=snap.fetched_at_ms,
                age_ms=snap.age_ms(),
                timezone=snap.timezone,
                server_time_ms=snap.server_time_ms,
                rate_limits=[
                    RateLimitInfo(
                        rate_limit_type=str(r.get("rateLimitType")), interval=str(r.get("interval")),
                        interval_num=int(r.get("intervalNum") or 1), limit=int(r.get("limit") or 0),
                    )
                    for r in snap.rate_limits
                ],
                exchange_filters=snap.exchange_filters,
                symbol_count=len(snap.symbols),
                by_status=by_status,
                top_quote_assets=top_quotes,
                symbols=[_brief(x) for x in shown],
                total=len(hits),
                returned=len(shown),
                truncated=len(hits) > len(shown),
                hint=more_hint(len(hits), len(shown), SYMBOL_ROWS[1], "narrow with quote_asset/base_asset/status"),
            )
        )

    @mcp.tool(name="search_symbols", title="Search symbols", annotations=READ_ONLY)
    @tool_errors
    async def search_symbols(
        query: str | None = Field(
            None, max_length=30, description="Text: a symbol or its start (BTC, ETHUS), or a base asset; BTC/USDT works too."
        ),
        base_asset: AssetArg = None,
        quote_asset: AssetArg = None,
        status: SymbolStatus = Field("TRADING", description="Only symbols with this status (ANY = all)."),
        permission: str | None = Field(None, max_length=32, description="Only symbols tradable with it, e.g. SPOT, MARGIN."),
        limit: int = Field(SEARCH_ROWS[0], ge=1, le=SEARCH_ROWS[1], description="Matches to return."),
    ) -> Annotated[CallToolResult, SymbolSearch]:
        """Find trading pairs by text, base asset, quote asset, status or permission (from the cached
        exchangeInfo; no REST weight when cached). Exact and prefix matches first."""
        q, b = check_asset(quote_asset, "quote_asset"), check_asset(base_asset, "base_asset")
        if not (query or q or b or permission):
            raise ValueError("give at least one of query, base_asset, quote_asset or permission (e.g. query='BTC')")
        snap = await directory(rt).snapshot()
        hits = search(
            snap, query=query, base_asset=b, quote_asset=q, status=None if status == "ANY" else status,
            permission=permission.strip().upper() if permission else None,
        )
        shown = hits[:limit]
        hint = more_hint(len(hits), len(shown), SEARCH_ROWS[1], "narrow the query")
        if not hits and status != "ANY":
            hint = f"nothing matched with status={status}; try status='ANY' or a shorter query"
        return respond(
            SymbolSearch(
                matches=[_brief(x) for x in shown], total=len(hits), returned=len(shown),
                truncated=len(hits) > len(shown), hint=hint, cache_age_ms=snap.age_ms(),
            )
        )

    @mcp.tool(name="get_symbol_info", title="Symbol trading rules", annotations=READ_ONLY)
    @tool_errors
    async def get_symbol_info(symbol: SymbolArg) -> Annotated[CallToolResult, SymbolInfo]:
        """One symbol's status and trading rules, compact: tick size, price limits, step size and quantity
        limits, min/max notional, order types, permissions (from the cached exchangeInfo). An unknown
        symbol gets the closest listed ones."""
        info, snap = await directory(rt).require(symbol)
        known, other = summarise_filters(list(info.get("filters") or []))
        return respond(
            SymbolInfo(
                source="rest" if snap.source == "rest" else "cache",
                as_of_ms=snap.fetched_at_ms,
                age_ms=snap.age_ms(),
                symbol=info["symbol"],
                status=str(info.get("status")),
                base_asset=str(info.get("baseAsset")),
                quote_asset=str(info.get("quoteAsset")),
                base_asset_precision=info.get("baseAssetPrecision"),
                quote_asset_precision=info.get("quoteAssetPrecision", info.get("quotePrecision")),
                order_types=list(info.get("orderTypes") or []),
                permissions=list(info.get("permissions") or []),
                is_spot_trading_allowed=info.get("isSpotTradingAllowed"),
                is_margin_trading_allowed=info.get("isMarginTradingAllowed"),
                iceberg_allowed=info.get("icebergAllowed"),
                oco_allowed=info.get("ocoAllowed"),
                quote_order_qty_market_allowed=info.get("quoteOrderQtyMarketAllowed"),
                other_filters=[{k: plain(v) for k, v in f.items()} for f in other],
                **known,
            )
        )


def _brief(x: dict[str, Any]) -> SymbolBrief:
    return SymbolBrief(
        symbol=x["symbol"], status=str(x.get("status")), base_asset=str(x.get("baseAsset")),
        quote_asset=str(x.get("quoteAsset")),
    )


# --- order book and trades ---------------------------------------------------------------------------------
def _register_book_and_trades(mcp: MCPServer, rt: Runtime, m: Market) -> None:
    @mcp.tool(name="get_order_book", title="Order book (depth)", annotations=READ_ONLY)
    @tool_errors
    async def get_order_book(
        symbol: SymbolArg,
        limit: int = Field(
            BOOK_LEVELS[0], ge=1, le=BOOK_LEVELS[1],
            description="Price levels per side (REST weight 5 up to 100, 25 up to 500, 50 up to 1000).",
        ),
        band_pct: float = Field(1.0, gt=0, le=50, description="Sum liquidity within this % of the mid price."),
        source: SourceArg = "auto",
    ) -> Annotated[CallToolResult, OrderBook]:
        """Best bids and asks of a symbol (best first) with mid, spread (also in basis points) and the
        liquidity within band_pct of the mid. From the live local order book or partial-depth stream when
        fresh (age <= 5 s), else GET /api/v3/depth."""
        sym = await m.symbol(symbol)
        low = sym.lower()

        async def from_feed() -> Any:
            book = await fresh_book(rt.r, rt.keys, sym, FRESH_DEPTH_MS)
            if book is not None:
                p = book.payload
                enough = min(len(p.get("bids") or []), len(p.get("asks") or [])) >= limit
                if enough or rt.settings.order_book_top_n >= limit:
                    return book
            candidates = [f"{low}@depth{n}{sp}" for n in (20, 10, 5) if n >= limit for sp in ("@100ms", "")]
            return await fresh_latest(rt.r, rt.keys, candidates, FRESH_DEPTH_MS)

        f = await lookup(source, f"order book for {sym}", f"streams=['{low}@depth@100ms']", from_feed)
        if f is not None:
            raw, meta = f.payload, m.ws_meta(f)
        else:
            raw = await m.rest("/api/v3/depth", {"symbol": sym, "limit": limit}, symbols=[sym])
            meta = m.rest_meta()
        bids, asks = book_levels(raw.get("bids") or [], limit), book_levels(raw.get("asks") or [], limit)
        mid, spread, bps, band = book_stats(bids, asks, dec(str(band_pct)))
        return respond(
            OrderBook(
                **meta, symbol=sym, last_update_id=raw.get("lastUpdateId"), bids=bids, asks=asks,
                best_bid=bids[0].price if bids else None, best_ask=asks[0].price if asks else None,
                mid=mid, spread=spread, spread_bps=bps, depth_in_band=band,
            )
        )

    @mcp.tool(name="get_recent_trades", title="Recent trades", annotations=READ_ONLY)
    @tool_errors
    async def get_recent_trades(
        symbol: SymbolArg,
        limit: int = Field(TRADES[0], ge=1, le=TRADES[1], description="Most recent trades to return."),
        source: SourceArg = "auto",
    ) -> Annotated[CallToolResult, TradeList]:
        """The most recent trades of a symbol, oldest first, with a summary (volume, VWAP, taker buy/sell
        volume, high/low). From the live trade stream when it is live and complete, else GET /api/v3/trades
        (weight 25)."""
        sym = await m.symbol(symbol)
        stream = f"{sym.lower()}@trade"

        async def from_feed() -> Any:
            return await fresh_history(rt.r, rt.keys, stream, count=limit, id_field="t", max_age_ms=FRESH_TRADES_MS)

        found = await lookup(source, f"complete trade history of {stream}", f"streams=['{stream}']", from_feed)
        if found is not None:
            payloads, f = found
            rows = [trade_from_ws(p) for p in payloads]
            meta = m.ws_meta(f)
        else:
            raw = await m.rest("/api/v3/trades", {"symbol": sym, "limit": limit}, symbols=[sym])
            rows = [trade_from_rest(d) for d in raw]
            meta = m.rest_meta()
        return respond(
            TradeList(
                **meta, symbol=sym, trades=rows, summary=trade_summary(rows),
                hint=f"older trades: get_historical_trades(symbol='{sym}', from_id={max(0, rows[0].id - limit)})"
                if rows and rows[0].id > 0 else None,
            )
        )

    @mcp.tool(name="get_historical_trades", title="Historical trades", annotations=READ_ONLY)
    @tool_errors
    async def get_historical_trades(
        symbol: SymbolArg,
        from_id: int | None = Field(None, ge=0, le=MAX_ID, description="First trade id to return; omit for the most recent."),
        limit: int = Field(TRADES[0], ge=1, le=TRADES[1], description="Trades to return."),
    ) -> Annotated[CallToolResult, TradeList]:
        """Older trades of a symbol by trade id (GET /api/v3/historicalTrades, weight 25), oldest first, with
        a summary. Page forward with next_from_id, backward with from_id = first id - limit. Not offered by
        the data-api.binance.vision endpoint."""
        sym = await m.symbol(symbol)
        raw = await m.rest("/api/v3/historicalTrades", {"symbol": sym, "limit": limit, "fromId": from_id}, symbols=[sym])
        rows = [trade_from_rest(d) for d in raw]
        return respond(
            TradeList(
                **m.rest_meta(), symbol=sym, trades=rows, summary=trade_summary(rows),
                next_from_id=rows[-1].id + 1 if rows else None,
                hint=f"previous page: from_id={max(0, rows[0].id - limit)}" if rows and rows[0].id > 0 else None,
            )
        )

    @mcp.tool(name="get_aggregate_trades", title="Aggregate trades", annotations=READ_ONLY)
    @tool_errors
    async def get_aggregate_trades(
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
        sym = await m.symbol(symbol)
        start, end = parse_time_ms(start_time, "start_time"), parse_time_ms(end_time, "end_time")
        check_time_range(start, end)
        if from_id is not None and (start is not None or end is not None):
            raise ValueError("use from_id or start_time/end_time, not both (Binance rejects the combination)")
        stream = f"{sym.lower()}@aggTrade"
        found = None
        if from_id is None and start is None and end is None:

            async def from_feed() -> Any:
                return await fresh_history(
                    rt.r, rt.keys, stream, count=limit, id_field="a", max_age_ms=FRESH_TRADES_MS
                )

            found = await lookup(source, f"complete history of {stream}", f"streams=['{stream}']", from_feed)
        elif source == "stream":
            raise ValueError("source='stream' serves only the most recent trades: drop from_id/start_time/end_time")
        if found is not None:
            payloads, f = found
            rows = [agg_trade(p) for p in payloads]
            meta = m.ws_meta(f)
        else:
            params = {"symbol": sym, "fromId": from_id, "startTime": start, "endTime": end, "limit": limit}
            rows = [agg_trade(d) for d in await m.rest("/api/v3/aggTrades", params, symbols=[sym])]
            meta = m.rest_meta()
        full = len(rows) == limit
        return respond(
            AggTradeList(
                **meta, symbol=sym, trades=rows, summary=trade_summary(rows),
                next_from_id=rows[-1].agg_id + 1 if rows else None,
                hint="more may follow: call again with from_id=next_from_id" if full and (start is not None or from_id is not None) else None,
            )
        )

    @mcp.tool(name="get_average_price", title="Current average price", annotations=READ_ONLY)
    @tool_errors
    async def get_average_price(symbol: SymbolArg, source: SourceArg = "auto") -> Annotated[CallToolResult, AvgPrice]:
        """Binance's current average price of a symbol (volume-weighted over the last `mins` minutes, 5 on
        Spot). From the live avgPrice stream when fresh, else GET /api/v3/avgPrice (weight 2)."""
        sym = await m.symbol(symbol)
        stream = f"{sym.lower()}@avgPrice"

        async def from_feed() -> Any:
            return await fresh_latest(rt.r, rt.keys, [stream], FRESH_TICKER_MS)

        f = await lookup(source, f"value of {stream}", f"streams=['{stream}']", from_feed)
        if f is not None:
            p = f.payload
            mins = int(str(p.get("i", "5m")).rstrip("m") or 5)
            out = AvgPrice(**m.ws_meta(f), symbol=sym, mins=mins, price=s(p["w"]), close_time_ms=p.get("T"))
        else:
            d = await m.rest("/api/v3/avgPrice", {"symbol": sym}, symbols=[sym])
            out = AvgPrice(**m.rest_meta(), symbol=sym, mins=int(d["mins"]), price=s(d["price"]), close_time_ms=d.get("closeTime"))
        return respond(out)


# --- klines ------------------------------------------------------------------------------------------------
def _register_klines(mcp: MCPServer, rt: Runtime, m: Market) -> None:
    intervals = " ".join(KLINE_INTERVALS)

    async def klines(
        ui: bool, symbol: str, interval: str, start_time: Any, end_time: Any, time_zone: str, limit: int
    ) -> CallToolResult:
        sym = await m.symbol(symbol)
        start, end = parse_time_ms(start_time, "start_time"), parse_time_ms(end_time, "end_time")
        check_time_range(start, end)
        tz = check_time_zone(time_zone)
        params = {
            "symbol": sym, "interval": interval, "startTime": start, "endTime": end,
            "timeZone": None if tz in ("0", "+0", "-0", "00:00", "+00:00") else tz, "limit": limit,
        }
        raw = await m.rest("/api/v3/uiKlines" if ui else "/api/v3/klines", params, symbols=[sym])
        rows = kline_rows(raw)
        full = len(rows) == limit
        next_start = int(rows[-1][6]) + 1 if rows and full else None
        hint = None
        if full:
            hint = (
                f"{limit} candles returned (the limit): more exist after them; call again with "
                f"start_time={next_start}" if start is not None else
                f"the most recent {limit} candles; for older ones pass end_time={int(rows[0][0]) - 1}"
            )
        return respond(
            Klines(
                **m.rest_meta(), symbol=sym, interval=interval, time_zone=tz, ui=ui, columns=KLINE_COLUMNS,
                rows=rows, count=len(rows), summary=kline_summary(rows),
                next_start_time_ms=next_start if start is not None else None, hint=hint,
            )
        )

    desc_common = (
        f" Rows are [{', '.join(KLINE_COLUMNS)}], oldest first; prices exact strings. Intervals (case-sensitive): "
        f"{intervals}. Without start/end: the most recent candles. time_zone shifts interval boundaries (e.g. 8 "
        "for UTC+8 days); start/end are always UTC. Weight 2."
    )

    @mcp.tool(
        name="get_klines",
        title="Candlesticks / historical prices",
        description="Historical prices as OHLCV candlesticks (klines) of a symbol, with a summary (open, close, "
        "high, low, change %, volume) of the returned range. GET /api/v3/klines." + desc_common,
        annotations=READ_ONLY,
    )
    @tool_errors
    async def get_klines(
        symbol: SymbolArg,
        interval: Interval = Field("1h", description=f"Candle interval: {intervals}."),
        start_time: TimeArg = None,
        end_time: TimeArg = None,
        time_zone: str = Field("0", max_length=6, description="Hours or hours:minutes, -12:00..+14:00 (e.g. 8, -5, 05:45)."),
        limit: int = Field(KLINES[0], ge=1, le=KLINES[1], description="Candles to return."),
    ) -> Annotated[CallToolResult, Klines]:
        return await klines(False, symbol, interval, start_time, end_time, time_zone, limit)

    @mcp.tool(
        name="get_ui_klines",
        title="UI candlesticks",
        description="Candlesticks optimised for charts (GET /api/v3/uiKlines): same parameters and rows as "
        "get_klines, with Binance's presentation adjustments." + desc_common,
        annotations=READ_ONLY,
    )
    @tool_errors
    async def get_ui_klines(
        symbol: SymbolArg,
        interval: Interval = Field("1h", description=f"Candle interval: {intervals}."),
        start_time: TimeArg = None,
        end_time: TimeArg = None,
        time_zone: str = Field("0", max_length=6, description="Hours or hours:minutes, -12:00..+14:00 (e.g. 8, -5, 05:45)."),
        limit: int = Field(KLINES[0], ge=1, le=KLINES[1], description="Candles to return."),
    ) -> Annotated[CallToolResult, Klines]:
        return await klines(True, symbol, interval, start_time, end_time, time_zone, limit)
