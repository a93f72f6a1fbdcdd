"""Price-change statistics (24 h, trading day, rolling window): one symbol (stream-first for 24 h and the
1h/4h/1d windows) or many symbols ranked (top volume, gainers, losers, movers)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from mcp.types import CallToolResult
from pydantic import Field

from binance_common.streams import build_stream

from ..answers.convert import (
    sort_tickers,
    ticker_from_rest,
    ticker_from_ws,
)
from ..answers.inputs import (
    check_asset,
    check_window,
    time_zone_param,
)
from ..answers.market import (
    Ticker,
    TickerList,
    TickerStats,
)
from ..answers.numbers import dec
from ..answers.provenance import rest_meta, ws_meta
from ..answers.respond import more_hint, respond
from ..feed.fresh import lookup
from .context import (
    BATCH_SYMBOLS_MAX,
    MULTI_SYMBOLS_MAX,
    READ_ONLY,
    TICKER_ROWS,
    AssetArg,
    SourceArg,
    SymbolArg,
    SymbolsArg,
    ToolContext,
    ToolSpec,
    unique_symbols,
)

TickerType = Literal["FULL", "MINI"]
SortBy = Literal[
    "quote_volume", "volume", "price_change_percent", "abs_price_change_percent", "trade_count", "last_price", "symbol"
]
Order = Literal["desc", "asc"]
STREAM_WINDOWS = ("1h", "4h", "1d")

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






async def _batch_symbols(tc: ToolContext, symbols: list[str] | None, quote_asset: str | None, what: str) -> list[str]:
    syms, quote = unique_symbols(symbols), check_asset(quote_asset, "quote_asset")
    if syms:
        return syms
    if quote is None:
        raise ValueError(
            f"Binance's {what} endpoint needs explicit symbols: pass symbols (up to {MULTI_SYMBOLS_MAX}) or "
            "quote_asset (every TRADING symbol quoted in it). To rank all symbols, use get_all_24hr_tickers."
        )
    snap = await tc.directory.snapshot()
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

async def _fetch_batches(tc: ToolContext, path: str, syms: list[str], params: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(syms), MULTI_SYMBOLS_MAX):
        chunk = syms[i : i + MULTI_SYMBOLS_MAX]
        p = {**params, "symbol": chunk[0]} if len(chunk) == 1 else {**params, "symbols": chunk}
        d = await tc.rest(path, p, symbols=chunk)
        out.extend(d if isinstance(d, list) else [d])
    return out


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


async def get_24hr_ticker(
    tc: ToolContext,
    symbol: SymbolArg, type: TypeArg = "FULL", source: SourceArg = "auto"
) -> Annotated[CallToolResult, Ticker]:
    """Rolling 24-hour statistics of one symbol: last, open, high, low, change and change %, volumes,
    trade count (FULL adds weighted average, previous close, best bid/ask). From the live ticker stream
    when fresh (age <= 5 s), else GET /api/v3/ticker/24hr (weight 2)."""
    sym = await tc.symbol(symbol)
    low = sym.lower()
    streams = [build_stream("ticker", sym)] + ([build_stream("miniTicker", sym)] if type == "MINI" else [])

    async def from_feed() -> Any:
        return await tc.feed.fresh_latest(streams)

    f = await lookup(source, f"24h ticker of {sym}", f"streams=['{low}@ticker']", from_feed)
    if f is not None:
        return respond(Ticker(**ws_meta(f), window="24h", ticker=ticker_from_ws(f.payload, mini=type == "MINI")))
    d = await tc.rest("/api/v3/ticker/24hr", {"symbol": sym, "type": type}, symbols=[sym])
    return respond(Ticker(**rest_meta(), window="24h", ticker=ticker_from_rest(d)))


async def get_all_24hr_tickers(
    tc: ToolContext,
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
    syms, quote = unique_symbols(symbols), check_asset(quote_asset, "quote_asset")
    raw = await tc.rest("/api/v3/ticker/24hr", {"symbols": syms, "type": type}, symbols=syms)
    meta = rest_meta()
    rows = [ticker_from_rest(d) for d in await tc.only_quoted(list(raw), quote)]
    if min_quote_volume is not None:
        floor = Decimal(str(min_quote_volume))
        rows = [t for t in rows if dec(t.quote_volume) >= floor]
    return respond(_ticker_list(meta, "24h", rows, sort_by, order, limit))


async def get_trading_day_ticker(
    tc: ToolContext,
    symbol: SymbolArg, time_zone: TzArg = "0", type: TypeArg = "FULL"
) -> Annotated[CallToolResult, Ticker]:
    """Statistics of one symbol for the current trading day (since midnight in time_zone, UTC by
    default) rather than a rolling 24 h. GET /api/v3/ticker/tradingDay, weight 4."""
    sym = await tc.symbol(symbol)
    d = await tc.rest("/api/v3/ticker/tradingDay", {"symbol": sym, "timeZone": time_zone_param(time_zone), "type": type}, symbols=[sym])
    return respond(Ticker(**rest_meta(), window="trading_day", ticker=ticker_from_rest(d)))


async def get_all_trading_day_tickers(
    tc: ToolContext,
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
    syms = await _batch_symbols(tc, symbols, quote_asset, "tradingDay")
    raw = await _fetch_batches(tc, "/api/v3/ticker/tradingDay", syms, {"timeZone": time_zone_param(time_zone), "type": type})
    rows = [ticker_from_rest(d) for d in raw]
    return respond(_ticker_list(rest_meta(), "trading_day", rows, sort_by, order, limit))


async def get_rolling_window_ticker(
    tc: ToolContext,
    symbol: SymbolArg,
    window_size: str = Field("1d", max_length=4, description="1m-59m, 1h-23h or 1d-7d (one unit, e.g. 15m, 4h, 7d)."),
    type: TypeArg = "FULL",
    source: SourceArg = "auto",
) -> Annotated[CallToolResult, Ticker]:
    """Price-change statistics of one symbol over a rolling window ending now. For 1h, 4h and 1d the live
    window-ticker stream answers when fresh; otherwise GET /api/v3/ticker (weight 4)."""
    sym = await tc.symbol(symbol)
    w = check_window(window_size)
    f = None
    if w in STREAM_WINDOWS:
        stream = build_stream("rollingTicker", sym, window=w)

        async def from_feed() -> Any:
            return await tc.feed.fresh_latest([stream])

        f = await lookup(source, f"value of {stream}", f"streams=['{stream}']", from_feed)
    elif source == "stream":
        raise ValueError(f"live window tickers exist for {', '.join(STREAM_WINDOWS)} only; use source='auto'")
    if f is not None:
        return respond(Ticker(**ws_meta(f), window=w, ticker=ticker_from_ws(f.payload, mini=type == "MINI")))
    d = await tc.rest("/api/v3/ticker", {"symbol": sym, "windowSize": w, "type": type}, symbols=[sym])
    return respond(Ticker(**rest_meta(), window=w, ticker=ticker_from_rest(d)))


async def get_all_rolling_window_tickers(
    tc: ToolContext,
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
    syms = await _batch_symbols(tc, symbols, quote_asset, "rolling-window ticker")
    raw = await _fetch_batches(tc, "/api/v3/ticker", syms, {"windowSize": w, "type": type})
    rows = [ticker_from_rest(d) for d in raw]
    return respond(_ticker_list(rest_meta(), w, rows, sort_by, order, limit))


TOOLS = (
    ToolSpec(get_24hr_ticker, "24 h statistics", READ_ONLY),
    ToolSpec(get_all_24hr_tickers, "24 h statistics, ranked", READ_ONLY),
    ToolSpec(get_trading_day_ticker, "Trading-day statistics", READ_ONLY),
    ToolSpec(get_all_trading_day_tickers, "Trading-day statistics, ranked", READ_ONLY),
    ToolSpec(get_rolling_window_ticker, "Rolling-window statistics", READ_ONLY),
    ToolSpec(get_all_rolling_window_tickers, "Rolling-window statistics, ranked", READ_ONLY),
)
