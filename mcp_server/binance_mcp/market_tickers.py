"""Ticker tools: last price, best bid/ask, and price-change statistics (24 h, trading day, rolling window),
each for one symbol (stream-first) and for many or all symbols (sorted, filtered, truncated)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult
from pydantic import Field

from .errors import tool_errors
from .market_base import (
    BATCH_SYMBOLS_MAX,
    BOOK_TICKER_ROWS,
    MULTI_SYMBOLS_MAX,
    PRICE_ROWS,
    READ_ONLY,
    TICKER_ROWS,
    AssetArg,
    Market,
    SourceArg,
    SymbolArg,
    more_hint,
    sym_of,
)
from .market_convert import (
    check_time_zone,
    check_window,
    dec,
    fmt,
    respond,
    s,
    sort_tickers,
    spread_bps,
    ticker_from_rest,
    ticker_from_ws,
)
from .market_models import (
    BookTicker,
    BookTickerList,
    BookTickerRow,
    Price,
    PriceList,
    PriceRow,
    Ticker,
    TickerList,
    TickerStats,
)
from .runtime import Runtime
from .stream_first import FRESH_TICKER_MS, fresh_latest, lookup
from .symbols import check_asset, directory

TickerType = Literal["FULL", "MINI"]
SortBy = Literal[
    "quote_volume", "volume", "price_change_percent", "abs_price_change_percent", "trade_count", "last_price", "symbol"
]
Order = Literal["desc", "asc"]
STREAM_WINDOWS = ("1h", "4h", "1d")

SymbolsArg = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=20)]] | None,
    Field(max_length=MULTI_SYMBOLS_MAX, description="Only these pairs (at most 100), e.g. ['BTCUSDT','ETHUSDT']."),
]
TypeArg = Annotated[TickerType, Field(description="FULL: every statistic; MINI: OHLC and volumes only (smaller).")]
SortArg = Annotated[
    SortBy,
    Field(
        description="quote_volume (default: most traded first), volume, price_change_percent (top gainers with "
        "desc, losers with asc), abs_price_change_percent (biggest movers), trade_count, last_price, symbol."
    ),
]
OrderArg = Annotated[Order, Field(description="desc (largest first) or asc.")]
TzArg = Annotated[
    str, Field(max_length=6, description="Trading-day time zone: hours or hours:minutes, -12:00..+14:00 (e.g. 0, 8, -5).")
]


def _symbols(symbols: list[str] | None) -> list[str] | None:
    if not symbols:
        return None
    return list(dict.fromkeys(sym_of(x) for x in symbols))


async def _quote_filter(m: Market, rows: list[Any], quote: str | None) -> list[Any]:
    """Keep rows (dicts or models with .symbol) whose symbol's quote asset is ``quote``."""
    if quote is None:
        return rows
    snap = await directory(m.rt).snapshot()
    allowed = set(snap.symbols_for_quote(quote))
    return [r for r in rows if (r["symbol"] if isinstance(r, dict) else r.symbol) in allowed]


def register(mcp: MCPServer, rt: Runtime, m: Market) -> None:
    _register_prices(mcp, rt, m)
    _register_24hr(mcp, rt, m)
    _register_windows(mcp, rt, m)


# --- price and book ticker ---------------------------------------------------------------------------------
def _register_prices(mcp: MCPServer, rt: Runtime, m: Market) -> None:
    @mcp.tool(name="get_price", title="Latest price", annotations=READ_ONLY)
    @tool_errors
    async def get_price(symbol: SymbolArg, source: SourceArg = "auto") -> Annotated[CallToolResult, Price]:
        """Latest traded price of one symbol, exact. From the live feed (ticker or trade stream, age <= 5 s)
        when it has it (one subscribed !miniTicker@arr stream covers every symbol at no REST weight), else
        GET /api/v3/ticker/price (weight 2). Many symbols: get_all_prices."""
        sym = await m.symbol(symbol)
        low = sym.lower()
        streams = [f"{low}@ticker", f"{low}@miniTicker", f"{low}@trade", f"{low}@aggTrade"]

        async def from_feed() -> Any:
            return await fresh_latest(rt.r, rt.keys, streams, FRESH_TICKER_MS)

        f = await lookup(source, f"price of {sym}", f"streams=['{low}@ticker']", from_feed)
        if f is not None:
            p = f.payload
            return respond(Price(**m.ws_meta(f), symbol=sym, price=s(p["c"] if "c" in p else p["p"])))
        d = await m.rest("/api/v3/ticker/price", {"symbol": sym}, symbols=[sym])
        return respond(Price(**m.rest_meta(), symbol=d["symbol"], price=s(d["price"])))

    @mcp.tool(name="get_all_prices", title="Prices of many symbols", annotations=READ_ONLY)
    @tool_errors
    async def get_all_prices(
        symbols: SymbolsArg = None,
        quote_asset: AssetArg = None,
        limit: int = Field(PRICE_ROWS[0], ge=1, le=PRICE_ROWS[1], description="Prices to return (sorted by symbol)."),
    ) -> Annotated[CallToolResult, PriceList]:
        """Latest prices of the given symbols, or of every symbol (optionally only those quoted in
        quote_asset), sorted by symbol and cut to limit. GET /api/v3/ticker/price, weight 4."""
        syms, quote = _symbols(symbols), check_asset(quote_asset, "quote_asset")
        raw = await m.rest("/api/v3/ticker/price", {"symbols": syms}, symbols=syms)
        meta = m.rest_meta()
        rows = sorted(await _quote_filter(m, list(raw), quote), key=lambda d: d["symbol"])
        shown = rows[:limit]
        return respond(
            PriceList(
                **meta, prices=[PriceRow(symbol=d["symbol"], price=s(d["price"])) for d in shown],
                total=len(rows), returned=len(shown), truncated=len(rows) > len(shown),
                hint=more_hint(len(rows), len(shown), PRICE_ROWS[1], "filter with quote_asset or symbols"),
            )
        )

    @mcp.tool(name="get_book_ticker", title="Best bid/ask", annotations=READ_ONLY)
    @tool_errors
    async def get_book_ticker(symbol: SymbolArg, source: SourceArg = "auto") -> Annotated[CallToolResult, BookTicker]:
        """Best bid and ask (price, quantity) of one symbol with the spread. From the live bookTicker
        stream when fresh (age <= 5 s), else GET /api/v3/ticker/bookTicker (weight 2)."""
        sym = await m.symbol(symbol)
        stream = f"{sym.lower()}@bookTicker"

        async def from_feed() -> Any:
            return await fresh_latest(rt.r, rt.keys, [stream], FRESH_TICKER_MS)

        f = await lookup(source, f"value of {stream}", f"streams=['{stream}']", from_feed)
        if f is not None:
            p = f.payload
            bid, bq, ask, aq, meta = p["b"], p["B"], p["a"], p["A"], m.ws_meta(f)
        else:
            d = await m.rest("/api/v3/ticker/bookTicker", {"symbol": sym}, symbols=[sym])
            bid, bq, ask, aq, meta = d["bidPrice"], d["bidQty"], d["askPrice"], d["askQty"], m.rest_meta()
        return respond(
            BookTicker(
                **meta, symbol=sym, bid_price=s(bid), bid_qty=s(bq), ask_price=s(ask), ask_qty=s(aq),
                spread=fmt(dec(ask) - dec(bid)), spread_bps=spread_bps(bid, ask),
            )
        )

    @mcp.tool(name="get_all_book_tickers", title="Best bid/ask of many symbols", annotations=READ_ONLY)
    @tool_errors
    async def get_all_book_tickers(
        symbols: SymbolsArg = None,
        quote_asset: AssetArg = None,
        sort_by: Literal["symbol", "spread_bps"] = Field("symbol", description="symbol, or spread_bps (tightest first)."),
        limit: int = Field(BOOK_TICKER_ROWS[0], ge=1, le=BOOK_TICKER_ROWS[1], description="Rows to return."),
    ) -> Annotated[CallToolResult, BookTickerList]:
        """Best bid/ask of the given symbols, or of every symbol (optionally only those quoted in
        quote_asset), sorted and cut to limit. GET /api/v3/ticker/bookTicker, weight 4."""
        syms, quote = _symbols(symbols), check_asset(quote_asset, "quote_asset")
        raw = await m.rest("/api/v3/ticker/bookTicker", {"symbols": syms}, symbols=syms)
        meta = m.rest_meta()
        rows = [
            BookTickerRow(
                symbol=d["symbol"], bid_price=s(d["bidPrice"]), bid_qty=s(d["bidQty"]), ask_price=s(d["askPrice"]),
                ask_qty=s(d["askQty"]), spread_bps=spread_bps(d["bidPrice"], d["askPrice"]),
            )
            for d in await _quote_filter(m, list(raw), quote)
        ]
        if sort_by == "spread_bps":  # empty books (no bid or ask) last
            rows.sort(key=lambda r: (r.spread_bps is None or dec(r.bid_price) == 0, dec(r.spread_bps or "0"), r.symbol))
        else:
            rows.sort(key=lambda r: r.symbol)
        shown = rows[:limit]
        return respond(
            BookTickerList(
                **meta, tickers=shown, total=len(rows), returned=len(shown), truncated=len(rows) > len(shown),
                hint=more_hint(len(rows), len(shown), BOOK_TICKER_ROWS[1], "filter with quote_asset or symbols"),
            )
        )


# --- 24 h tickers ------------------------------------------------------------------------------------------
def _register_24hr(mcp: MCPServer, rt: Runtime, m: Market) -> None:
    @mcp.tool(name="get_24hr_ticker", title="24 h statistics", annotations=READ_ONLY)
    @tool_errors
    async def get_24hr_ticker(
        symbol: SymbolArg, type: TypeArg = "FULL", source: SourceArg = "auto"
    ) -> Annotated[CallToolResult, Ticker]:
        """Rolling 24-hour statistics of one symbol: last, open, high, low, change and change %, volumes,
        trade count (FULL adds weighted average, previous close, best bid/ask). From the live ticker stream
        when fresh (age <= 5 s), else GET /api/v3/ticker/24hr (weight 2)."""
        sym = await m.symbol(symbol)
        low = sym.lower()
        streams = [f"{low}@ticker"] + ([f"{low}@miniTicker"] if type == "MINI" else [])

        async def from_feed() -> Any:
            return await fresh_latest(rt.r, rt.keys, streams, FRESH_TICKER_MS)

        f = await lookup(source, f"24h ticker of {sym}", f"streams=['{low}@ticker']", from_feed)
        if f is not None:
            return respond(Ticker(**m.ws_meta(f), window="24h", ticker=ticker_from_ws(f.payload, mini=type == "MINI")))
        d = await m.rest("/api/v3/ticker/24hr", {"symbol": sym, "type": type}, symbols=[sym])
        return respond(Ticker(**m.rest_meta(), window="24h", ticker=ticker_from_rest(d)))

    @mcp.tool(name="get_all_24hr_tickers", title="24 h statistics, ranked", annotations=READ_ONLY)
    @tool_errors
    async def get_all_24hr_tickers(
        symbols: SymbolsArg = None,
        quote_asset: AssetArg = None,
        min_quote_volume: float | None = Field(None, ge=0, description="Drop symbols with less 24 h quote volume."),
        sort_by: SortArg = "quote_volume",
        order: OrderArg = "desc",
        limit: int = Field(TICKER_ROWS[0], ge=1, le=TICKER_ROWS[1], description="Tickers to return."),
        type: TypeArg = "MINI",
    ) -> Annotated[CallToolResult, TickerList]:
        """24-hour statistics of many or all symbols, ranked: top by volume, top gainers/losers, biggest
        movers; filter by quote asset (e.g. USDT) and minimum quote volume. GET /api/v3/ticker/24hr: weight
        80 for all symbols, 2 for up to 20 listed, 40 for up to 100."""
        syms, quote = _symbols(symbols), check_asset(quote_asset, "quote_asset")
        raw = await m.rest("/api/v3/ticker/24hr", {"symbols": syms, "type": type}, symbols=syms)
        meta = m.rest_meta()
        rows = [ticker_from_rest(d) for d in await _quote_filter(m, list(raw), quote)]
        if min_quote_volume is not None:
            floor = Decimal(str(min_quote_volume))
            rows = [t for t in rows if dec(t.quote_volume) >= floor]
        return respond(_ticker_list(meta, "24h", rows, sort_by, order, limit))


# --- trading day and rolling window tickers ----------------------------------------------------------------
def _register_windows(mcp: MCPServer, rt: Runtime, m: Market) -> None:
    async def batch_symbols(symbols: list[str] | None, quote_asset: str | None, what: str) -> list[str]:
        syms, quote = _symbols(symbols), check_asset(quote_asset, "quote_asset")
        if syms:
            return syms
        if quote is None:
            raise ValueError(
                f"Binance's {what} endpoint needs explicit symbols: pass symbols (up to {MULTI_SYMBOLS_MAX}) or "
                "quote_asset (every TRADING symbol quoted in it). To rank all symbols, use get_all_24hr_tickers."
            )
        snap = await directory(rt).snapshot()
        found = sorted(x for x in snap.symbols_for_quote(quote) if snap.symbols[x].get("status") == "TRADING")
        if not found:
            raise ValueError(f"no TRADING symbol is quoted in {quote}; check the asset with search_symbols")
        if len(found) > BATCH_SYMBOLS_MAX:
            raise ValueError(
                f"{len(found)} TRADING symbols are quoted in {quote}, more than the {BATCH_SYMBOLS_MAX} this tool "
                f"fetches in one call (weight 200 per {MULTI_SYMBOLS_MAX}); pass symbols instead, e.g. the top "
                f"ones from get_all_24hr_tickers(quote_asset='{quote}', sort_by='quote_volume')"
            )
        return found

    async def fetch_batches(path: str, syms: list[str], params: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(0, len(syms), MULTI_SYMBOLS_MAX):
            chunk = syms[i : i + MULTI_SYMBOLS_MAX]
            p = {**params, "symbol": chunk[0]} if len(chunk) == 1 else {**params, "symbols": chunk}
            d = await m.rest(path, p, symbols=chunk)
            out.extend(d if isinstance(d, list) else [d])
        return out

    def tz_param(tz: str) -> str | None:
        tz = check_time_zone(tz)
        return None if tz in ("0", "+0", "-0", "00:00", "+00:00") else tz

    @mcp.tool(name="get_trading_day_ticker", title="Trading-day statistics", annotations=READ_ONLY)
    @tool_errors
    async def get_trading_day_ticker(
        symbol: SymbolArg, time_zone: TzArg = "0", type: TypeArg = "FULL"
    ) -> Annotated[CallToolResult, Ticker]:
        """Statistics of one symbol for the current trading day (since midnight in time_zone, UTC by
        default) rather than a rolling 24 h. GET /api/v3/ticker/tradingDay, weight 4."""
        sym = await m.symbol(symbol)
        d = await m.rest("/api/v3/ticker/tradingDay", {"symbol": sym, "timeZone": tz_param(time_zone), "type": type}, symbols=[sym])
        return respond(Ticker(**m.rest_meta(), window="trading_day", ticker=ticker_from_rest(d)))

    @mcp.tool(name="get_all_trading_day_tickers", title="Trading-day statistics, ranked", annotations=READ_ONLY)
    @tool_errors
    async def get_all_trading_day_tickers(
        symbols: SymbolsArg = None,
        quote_asset: AssetArg = None,
        time_zone: TzArg = "0",
        sort_by: SortArg = "quote_volume",
        order: OrderArg = "desc",
        limit: int = Field(TICKER_ROWS[0], ge=1, le=TICKER_ROWS[1], description="Tickers to return."),
        type: TypeArg = "MINI",
    ) -> Annotated[CallToolResult, TickerList]:
        """Trading-day statistics of many symbols, ranked like get_all_24hr_tickers. Binance needs explicit
        symbols here: pass symbols (up to 100) or quote_asset (its TRADING symbols, up to 200). GET
        /api/v3/ticker/tradingDay: weight 4 per symbol, 200 per request above 50 symbols."""
        syms = await batch_symbols(symbols, quote_asset, "tradingDay")
        raw = await fetch_batches("/api/v3/ticker/tradingDay", syms, {"timeZone": tz_param(time_zone), "type": type})
        rows = [ticker_from_rest(d) for d in raw]
        return respond(_ticker_list(m.rest_meta(), "trading_day", rows, sort_by, order, limit))

    @mcp.tool(name="get_rolling_window_ticker", title="Rolling-window statistics", annotations=READ_ONLY)
    @tool_errors
    async def get_rolling_window_ticker(
        symbol: SymbolArg,
        window_size: str = Field("1d", max_length=4, description="1m-59m, 1h-23h or 1d-7d (one unit, e.g. 15m, 4h, 7d)."),
        type: TypeArg = "FULL",
        source: SourceArg = "auto",
    ) -> Annotated[CallToolResult, Ticker]:
        """Price-change statistics of one symbol over a rolling window ending now. For 1h, 4h and 1d the live
        window-ticker stream answers when fresh; otherwise GET /api/v3/ticker (weight 4)."""
        sym = await m.symbol(symbol)
        w = check_window(window_size)
        stream = f"{sym.lower()}@ticker_{w}"
        f = None
        if w in STREAM_WINDOWS:

            async def from_feed() -> Any:
                return await fresh_latest(rt.r, rt.keys, [stream], FRESH_TICKER_MS)

            f = await lookup(source, f"value of {stream}", f"streams=['{stream}']", from_feed)
        elif source == "stream":
            raise ValueError(f"live window tickers exist for {', '.join(STREAM_WINDOWS)} only; use source='auto'")
        if f is not None:
            return respond(Ticker(**m.ws_meta(f), window=w, ticker=ticker_from_ws(f.payload, mini=type == "MINI")))
        d = await m.rest("/api/v3/ticker", {"symbol": sym, "windowSize": w, "type": type}, symbols=[sym])
        return respond(Ticker(**m.rest_meta(), window=w, ticker=ticker_from_rest(d)))

    @mcp.tool(name="get_all_rolling_window_tickers", title="Rolling-window statistics, ranked", annotations=READ_ONLY)
    @tool_errors
    async def get_all_rolling_window_tickers(
        symbols: SymbolsArg = None,
        quote_asset: AssetArg = None,
        window_size: str = Field("1d", max_length=4, description="1m-59m, 1h-23h or 1d-7d (one unit)."),
        sort_by: SortArg = "quote_volume",
        order: OrderArg = "desc",
        limit: int = Field(TICKER_ROWS[0], ge=1, le=TICKER_ROWS[1], description="Tickers to return."),
        type: TypeArg = "MINI",
    ) -> Annotated[CallToolResult, TickerList]:
        """Rolling-window statistics of many symbols, ranked (e.g. biggest 1h movers among given pairs).
        Binance needs explicit symbols: pass symbols (up to 100) or quote_asset (its TRADING symbols, up to
        200). GET /api/v3/ticker: weight 4 per symbol, 200 per request above 50 symbols."""
        w = check_window(window_size)
        syms = await batch_symbols(symbols, quote_asset, "rolling-window ticker")
        raw = await fetch_batches("/api/v3/ticker", syms, {"windowSize": w, "type": type})
        rows = [ticker_from_rest(d) for d in raw]
        return respond(_ticker_list(m.rest_meta(), w, rows, sort_by, order, limit))


def _ticker_list(
    meta: dict[str, Any], window: str, rows: list[TickerStats], sort_by: str, order: Any, limit: int
) -> TickerList:
    ranked = sort_tickers(rows, sort_by, order)
    shown = ranked[:limit]
    return TickerList(
        **meta, window=window, sort_by=sort_by, order=order, tickers=shown, total=len(ranked), returned=len(shown),
        truncated=len(ranked) > len(shown),
        hint=more_hint(len(ranked), len(shown), TICKER_ROWS[1], "filter with quote_asset, min_quote_volume or symbols"),
    )
