"""Exchange info and symbols: a summary of exchangeInfo, symbol search, one symbol's trading rules. All
from the exchangeInfo directory shared by every replica (:mod:`binance_mcp.symbols`)."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.types import CallToolResult
from pydantic import Field

from ..answers.inputs import (
    check_asset,
)
from ..answers.market import (
    ExchangeInfoSummary,
    RateLimitInfo,
    SymbolBrief,
    SymbolInfo,
    SymbolSearch,
)
from ..answers.numbers import plain
from ..answers.respond import more_hint, respond
from ..symbols import search, summarise_filters
from .context import (
    READ_ONLY,
    SEARCH_ROWS,
    SYMBOL_ROWS,
    AssetArg,
    SymbolArg,
    SymbolStatus,
    ToolContext,
    ToolSpec,
)


async def get_exchange_info(
    tc: ToolContext,
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
    snap = await tc.directory.snapshot(refresh=refresh)
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


async def search_symbols(
    tc: ToolContext,
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
    snap = await tc.directory.snapshot()
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


async def get_symbol_info(tc: ToolContext, symbol: SymbolArg) -> Annotated[CallToolResult, SymbolInfo]:
    """One symbol's status and trading rules, compact: tick size, price limits, step size and quantity
    limits, min/max notional, order types, permissions (from the cached exchangeInfo). An unknown
    symbol gets the closest listed ones."""
    info, snap = await tc.directory.require(symbol)
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


TOOLS = (
    ToolSpec(get_exchange_info, "Exchange info (summary)", READ_ONLY),
    ToolSpec(search_symbols, "Search symbols", READ_ONLY),
    ToolSpec(get_symbol_info, "Symbol trading rules", READ_ONLY),
)
