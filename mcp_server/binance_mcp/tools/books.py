"""Order books: the top of a symbol's book from REST or the live feed (``get_order_book``), and the
daemon's local order book (``get_live_order_book``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from mcp.types import CallToolResult
from pydantic import Field

from binance_common.streams import build_stream

from ..answers.book import OrderBook, OrderBookView, order_book
from ..answers.numbers import dec
from ..answers.provenance import rest_meta, ws_meta
from ..answers.respond import respond
from ..feed.fresh import lookup
from .context import (
    BOOK_LEVELS,
    READ_ONLY,
    READ_ONLY_LOCAL,
    SourceArg,
    SymbolArg,
    SymbolName,
    ToolContext,
    ToolSpec,
)


async def get_order_book(
    tc: ToolContext,
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
    sym = await tc.symbol(symbol)
    low = sym.lower()

    async def from_feed() -> Any:
        book = await tc.feed.fresh_book(sym)
        if book is not None:
            p = book.payload
            enough = min(len(p.get("bids") or []), len(p.get("asks") or [])) >= limit
            if enough or tc.settings.order_book_top_n >= limit:
                return book
        candidates = [build_stream("depth", sym, levels=n, speed_ms=sp) for n in (20, 10, 5) if n >= limit for sp in (100, None)]
        return await tc.feed.fresh_latest(candidates)

    f = await lookup(source, f"order book for {sym}", f"streams=['{low}@depth@100ms']", from_feed)
    if f is not None:
        raw, meta = f.payload, ws_meta(f)
    else:
        raw = await tc.rest("/api/v3/depth", {"symbol": sym, "limit": limit}, symbols=[sym])
        meta = rest_meta()
    return respond(order_book(meta, sym, raw, limit, dec(str(band_pct))))


async def get_live_order_book(
    tc: ToolContext,
    symbol: SymbolName = Field(description="Trading pair, e.g. BTCUSDT."),
    levels: int = Field(10, ge=1, le=1000, description="Price levels per side to return."),
    band_pct: float = Field(
        1.0, gt=0, le=50, description="Depth is summed within this percentage of the mid price."
    ),
    venue: Literal["spot", "um"] = Field("spot", description=(
        "spot, or um for the USD-M futures book (kept from um:<symbol>@depth@100ms).")),
) -> Annotated[CallToolResult, OrderBookView]:
    """Top levels of the locally maintained order book, spread, and depth within a price band, from the
    feed (no REST weight). Needs the symbol's book kept by the daemon."""
    return respond(await tc.feed.book(symbol, levels=levels, band_pct=Decimal(str(band_pct)), futures=venue == "um"))


TOOLS = (ToolSpec(get_order_book, "Order book (depth)", READ_ONLY),)
FEED = (ToolSpec(get_live_order_book, "Live order book", READ_ONLY_LOCAL),)
"""The daemon's local books: the ``streams`` toolset."""
