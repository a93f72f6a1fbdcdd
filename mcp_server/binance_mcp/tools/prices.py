"""Prices: the last price, best bid/ask and Binance's average price of one symbol (stream-first), and
prices or best bid/ask of many symbols (sorted, filtered, truncated)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.types import CallToolResult
from pydantic import Field

from binance_common.streams import build_stream

from ..answers.book import spread_bps
from ..answers.inputs import (
    check_asset,
)
from ..answers.market import (
    AvgPrice,
    BookTicker,
    BookTickerList,
    BookTickerRow,
    Price,
    PriceList,
    PriceRow,
)
from ..answers.numbers import dec, fmt, s
from ..answers.provenance import rest_meta, ws_meta
from ..answers.respond import more_hint, respond
from ..feed.fresh import lookup
from .context import (
    BOOK_TICKER_ROWS,
    PRICE_ROWS,
    READ_ONLY,
    AssetArg,
    SourceArg,
    SymbolArg,
    SymbolsArg,
    ToolContext,
    ToolSpec,
    unique_symbols,
)


async def get_price(tc: ToolContext, symbol: SymbolArg, source: SourceArg = "auto") -> Annotated[CallToolResult, Price]:
    """Latest traded price of one symbol, exact. From the live feed (ticker or trade stream, age <= 5 s)
    when it has it (one subscribed !miniTicker@arr stream covers every symbol at no REST weight), else
    GET /api/v3/ticker/price (weight 2). Many symbols: get_all_prices."""
    sym = await tc.symbol(symbol)
    low = sym.lower()
    streams = [build_stream(k, sym) for k in ("ticker", "miniTicker", "trade", "aggTrade")]

    async def from_feed() -> Any:
        return await tc.feed.fresh_latest(streams)

    f = await lookup(source, f"price of {sym}", f"streams=['{low}@ticker']", from_feed)
    if f is not None:
        p = f.payload
        return respond(Price(**ws_meta(f), symbol=sym, price=s(p["c"] if "c" in p else p["p"])))
    d = await tc.rest("/api/v3/ticker/price", {"symbol": sym}, symbols=[sym])
    return respond(Price(**rest_meta(), symbol=d["symbol"], price=s(d["price"])))


async def get_all_prices(
    tc: ToolContext,
    symbols: SymbolsArg = None,
    quote_asset: AssetArg = None,
    limit: int = Field(PRICE_ROWS[0], ge=1, le=PRICE_ROWS[1], description="Prices to return (sorted by symbol)."),
) -> Annotated[CallToolResult, PriceList]:
    """Latest prices of the given symbols, or of every symbol (optionally only those quoted in
    quote_asset), sorted by symbol and cut to limit. GET /api/v3/ticker/price, weight 4."""
    syms, quote = unique_symbols(symbols), check_asset(quote_asset, "quote_asset")
    raw = await tc.rest("/api/v3/ticker/price", {"symbols": syms}, symbols=syms)
    meta = rest_meta()
    rows = sorted(await tc.only_quoted(list(raw), quote), key=lambda d: d["symbol"])
    shown = rows[:limit]
    return respond(
        PriceList(
            **meta, prices=[PriceRow(symbol=d["symbol"], price=s(d["price"])) for d in shown],
            total=len(rows), returned=len(shown), truncated=len(rows) > len(shown),
            hint=more_hint(len(rows), len(shown), PRICE_ROWS[1], "filter with quote_asset or symbols"),
        )
    )


async def get_average_price(tc: ToolContext, symbol: SymbolArg, source: SourceArg = "auto") -> Annotated[CallToolResult, AvgPrice]:
    """Binance's current average price of a symbol (volume-weighted over the last `mins` minutes, 5 on
    Spot). From the live avgPrice stream when fresh, else GET /api/v3/avgPrice (weight 2)."""
    sym = await tc.symbol(symbol)
    stream = build_stream("avgPrice", sym)

    async def from_feed() -> Any:
        return await tc.feed.fresh_latest([stream])

    f = await lookup(source, f"value of {stream}", f"streams=['{stream}']", from_feed)
    if f is not None:
        p = f.payload
        mins = int(str(p.get("i", "5m")).rstrip("m") or 5)
        out = AvgPrice(**ws_meta(f), symbol=sym, mins=mins, price=s(p["w"]), close_time_ms=p.get("T"))
    else:
        d = await tc.rest("/api/v3/avgPrice", {"symbol": sym}, symbols=[sym])
        out = AvgPrice(**rest_meta(), symbol=sym, mins=int(d["mins"]), price=s(d["price"]), close_time_ms=d.get("closeTime"))
    return respond(out)


async def get_book_ticker(tc: ToolContext, symbol: SymbolArg, source: SourceArg = "auto") -> Annotated[CallToolResult, BookTicker]:
    """Best bid and ask (price, quantity) of one symbol with the spread. From the live bookTicker
    stream when fresh (age <= 5 s), else GET /api/v3/ticker/bookTicker (weight 2)."""
    sym = await tc.symbol(symbol)
    stream = build_stream("bookTicker", sym)

    async def from_feed() -> Any:
        return await tc.feed.fresh_latest([stream])

    f = await lookup(source, f"value of {stream}", f"streams=['{stream}']", from_feed)
    if f is not None:
        p = f.payload
        bid, bq, ask, aq, meta = p["b"], p["B"], p["a"], p["A"], ws_meta(f)
    else:
        d = await tc.rest("/api/v3/ticker/bookTicker", {"symbol": sym}, symbols=[sym])
        bid, bq, ask, aq, meta = d["bidPrice"], d["bidQty"], d["askPrice"], d["askQty"], rest_meta()
    return respond(
        BookTicker(
            **meta, symbol=sym, bid_price=s(bid), bid_qty=s(bq), ask_price=s(ask), ask_qty=s(aq),
            spread=fmt(dec(ask) - dec(bid)), spread_bps=spread_bps(bid, ask),
        )
    )


async def get_all_book_tickers(
    tc: ToolContext,
    symbols: SymbolsArg = None,
    quote_asset: AssetArg = None,
    sort_by: Literal["symbol", "spread_bps"] = Field("symbol", description="symbol, or spread_bps (tightest first)."),
    limit: int = Field(BOOK_TICKER_ROWS[0], ge=1, le=BOOK_TICKER_ROWS[1], description="Rows to return."),
) -> Annotated[CallToolResult, BookTickerList]:
    """Best bid/ask of the given symbols, or of every symbol (optionally only those quoted in
    quote_asset), sorted and cut to limit. GET /api/v3/ticker/bookTicker, weight 4."""
    syms, quote = unique_symbols(symbols), check_asset(quote_asset, "quote_asset")
    raw = await tc.rest("/api/v3/ticker/bookTicker", {"symbols": syms}, symbols=syms)
    meta = rest_meta()
    rows = [
        BookTickerRow(
            symbol=d["symbol"], bid_price=s(d["bidPrice"]), bid_qty=s(d["bidQty"]), ask_price=s(d["askPrice"]),
            ask_qty=s(d["askQty"]), spread_bps=spread_bps(d["bidPrice"], d["askPrice"]),
        )
        for d in await tc.only_quoted(list(raw), quote)
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


TOOLS = (
    ToolSpec(get_price, "Latest price", READ_ONLY),
    ToolSpec(get_all_prices, "Prices of many symbols", READ_ONLY),
    ToolSpec(get_average_price, "Current average price", READ_ONLY),
    ToolSpec(get_book_ticker, "Best bid/ask", READ_ONLY),
    ToolSpec(get_all_book_tickers, "Best bid/ask of many symbols", READ_ONLY),
)
