"""Order-book answers: one computation of best bid/ask, mid, spread and the depth within a band around the
mid, rendered in the two answer shapes clients know.

* :class:`OrderBook` (``get_order_book``: REST or the live feed, top ``limit`` levels, ``qty`` fields, figures
  over the returned levels, computed sums without trailing zeros);
* :class:`OrderBookView` (``get_live_order_book`` and ``binance://book/{symbol}``: the daemon's local book,
  ``quantity`` fields, figures over every level the feed keeps, nested freshness).

The field names differ between the two for compatibility with existing clients; the arithmetic is
:func:`figures`, exact decimals throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, Field

from .numbers import Q4, dec, fmt, fmt_n, i_opt, s
from .provenance import Freshness, Sourced
from .respond import LiveAnswer

Row = tuple[Decimal, Decimal, str, str]
"""One price level: price, quantity, and both as Binance sent them."""


def parse_levels(raw: list[Any], *, limit: int | None = None, sort_desc: bool | None = None) -> list[Row]:
    """``[[price, qty], ...]`` as rows (best first when ``sort_desc`` says how to sort; else as given).
    Raises ValueError on a level that is not two decimals."""
    if sort_desc is None and limit is not None:
        raw = raw[:limit]
    try:
        rows = [(dec(p), dec(q), s(p), s(q)) for p, q, *_ in raw]
    except (InvalidOperation, ValueError, TypeError) as e:
        raise ValueError(f"malformed order-book level: {e}") from e
    if sort_desc is not None:
        rows.sort(key=lambda x: x[0], reverse=sort_desc)
    return rows if limit is None else rows[:limit]


@dataclass(frozen=True, slots=True)
class Figures:
    mid: Decimal
    spread: Decimal
    bps: Decimal | None
    band: Band | None


@dataclass(frozen=True, slots=True)
class Band:
    pct: Decimal
    low: Decimal
    high: Decimal
    bid_qty: Decimal
    bid_notional: Decimal
    ask_qty: Decimal
    ask_notional: Decimal
    bid_levels: int
    ask_levels: int


def figures(bids: list[Row], asks: list[Row], band_pct: Decimal) -> Figures | None:
    """Mid, spread, spread in basis points and the depth within ``band_pct`` % of the mid, over best-first
    levels; None when a side is empty."""
    if not bids or not asks:
        return None
    mid = (bids[0][0] + asks[0][0]) / 2
    spread = asks[0][0] - bids[0][0]
    if mid <= 0:
        return Figures(mid, spread, None, None)
    bps = (spread / mid * 10_000).quantize(Q4, rounding=ROUND_HALF_EVEN)
    low, high = mid * (1 - band_pct / 100), mid * (1 + band_pct / 100)
    in_b = [(p, q) for p, q, _, _ in bids if p >= low]
    in_a = [(p, q) for p, q, _, _ in asks if p <= high]
    zero = Decimal(0)
    band = Band(
        pct=band_pct, low=low, high=high,
        bid_qty=sum((q for _, q in in_b), zero), bid_notional=sum((p * q for p, q in in_b), zero),
        ask_qty=sum((q for _, q in in_a), zero), ask_notional=sum((p * q for p, q in in_a), zero),
        bid_levels=len(in_b), ask_levels=len(in_a),
    )
    return Figures(mid, spread, bps, band)


def spread_bps(bid: Any, ask: Any) -> str | None:
    """(ask - bid) / mid in basis points, 4 decimals; None when the mid is not positive."""
    b, a = dec(bid), dec(ask)
    mid = (a + b) / 2
    if mid <= 0:
        return None
    return fmt(((a - b) / mid * 10_000).quantize(Q4, rounding=ROUND_HALF_EVEN))


# --- get_order_book ----------------------------------------------------------------------------------------
class Level(BaseModel):
    price: str
    qty: str


class BandDepthInfo(BaseModel):
    band_pct: str = Field(description="Half-width of the band around the mid price, percent.")
    bid_qty: str
    bid_notional: str = Field(description="Sum of price x qty of bids in the band (quote asset).")
    ask_qty: str
    ask_notional: str
    complete: bool = Field(True, description=(
        "False when the band reaches past the last of the `limit` levels a side returned (the book goes "
        "deeper): the figures are then a lower bound; ask a larger limit."))


class OrderBook(Sourced):
    symbol: str
    last_update_id: int | None = None
    bids: list[Level] = Field(description="Best (highest) first.")
    asks: list[Level] = Field(description="Best (lowest) first.")
    best_bid: str | None = None
    best_ask: str | None = None
    mid: str | None = None
    spread: str | None = None
    spread_bps: str | None = Field(None, description="Spread over mid, basis points (4 decimals).")
    depth_in_band: BandDepthInfo | None = Field(None, description="Liquidity within band_pct of the mid (returned levels).")


def order_book(meta: dict[str, Any], symbol: str, raw: dict[str, Any], limit: int, band_pct: Decimal) -> OrderBook:
    """The ``get_order_book`` answer from a depth payload (REST, partial depth stream or the local book)."""
    bids = parse_levels(raw.get("bids") or [], limit=limit)
    asks = parse_levels(raw.get("asks") or [], limit=limit)
    f = figures(bids, asks, band_pct)
    b = f.band if f else None
    return OrderBook(
        **meta, symbol=symbol, last_update_id=raw.get("lastUpdateId"),
        bids=[Level(price=ps, qty=qs) for _, _, ps, qs in bids], asks=[Level(price=ps, qty=qs) for _, _, ps, qs in asks],
        best_bid=bids[0][2] if bids else None, best_ask=asks[0][2] if asks else None,
        mid=fmt(f.mid.normalize()) if f else None, spread=fmt(f.spread) if f else None,
        spread_bps=fmt(f.bps) if f and f.bps is not None else None,
        depth_in_band=BandDepthInfo(
            band_pct=fmt_n(b.pct), bid_qty=fmt_n(b.bid_qty), bid_notional=fmt_n(b.bid_notional),
            ask_qty=fmt_n(b.ask_qty), ask_notional=fmt_n(b.ask_notional),
            # a side cut at `limit` may go deeper than the band's end: then the band was not all counted
            complete=not (len(raw.get("bids") or []) >= limit and b.low < bids[-1][0])
            and not (len(raw.get("asks") or []) >= limit and b.high > asks[-1][0]),
        ) if b else None,
    )


# --- get_live_order_book -----------------------------------------------------------------------------------
class BookLevel(BaseModel):
    price: str
    quantity: str


class BandDepth(BaseModel):
    band_pct: str = Field(description="Half-width of the price band around the mid price, percent.")
    low: str = Field(description="Lowest price in the band.")
    high: str = Field(description="Highest price in the band.")
    bid_quantity: str
    bid_notional: str = Field(description="Sum of price x quantity of bids in the band (quote asset).")
    ask_quantity: str
    ask_notional: str
    bid_levels: int
    ask_levels: int
    complete: bool = Field(True, description=(
        "False when the band reaches past the deepest level held on a side (levels_available): the figures "
        "then count only the levels held, a lower bound. Ask fewer band_pct, or the REST book with more levels."))


class OrderBookView(LiveAnswer):
    symbol: str
    last_update_id: int | None
    bids: list[BookLevel] = Field(description="Best first.")
    asks: list[BookLevel] = Field(description="Best first.")
    best_bid: str | None
    best_ask: str | None
    mid: str | None
    spread: str | None
    spread_bps: str | None = Field(None, description="Spread over mid, basis points (4 decimals).")
    depth: BandDepth | None
    levels_available: dict[str, int] = Field(description="Levels per side the feed keeps for this book.")
    freshness: Freshness


def book_view(
    symbol: str, book: dict[str, Any], *, levels: int, band_pct: Decimal, freshness: Freshness
) -> OrderBookView:
    """The live-book answer: top ``levels`` of a ``book:<SYMBOL>`` value, figures over every level it holds."""
    bids = parse_levels(book.get("bids") or [], sort_desc=True)
    asks = parse_levels(book.get("asks") or [], sort_desc=False)
    f = figures(bids, asks, band_pct)
    b = f.band if f else None
    return OrderBookView(
        symbol=symbol,
        last_update_id=i_opt(book.get("lastUpdateId")),
        bids=[BookLevel(price=ps, quantity=qs) for _, _, ps, qs in bids[:levels]],
        asks=[BookLevel(price=ps, quantity=qs) for _, _, ps, qs in asks[:levels]],
        best_bid=bids[0][2] if bids else None,
        best_ask=asks[0][2] if asks else None,
        mid=fmt(f.mid.normalize()) if f else None,
        spread=fmt(f.spread) if f else None,
        spread_bps=fmt(f.bps) if f and f.bps is not None else None,
        depth=BandDepth(
            band_pct=fmt(b.pct), low=fmt(b.low.normalize()), high=fmt(b.high.normalize()),
            bid_quantity=fmt(b.bid_qty), bid_notional=fmt(b.bid_notional),
            ask_quantity=fmt(b.ask_qty), ask_notional=fmt(b.ask_notional),
            bid_levels=b.bid_levels, ask_levels=b.ask_levels,
            complete=b.low >= bids[-1][0] and b.high <= asks[-1][0],  # the band ends inside the levels held
        ) if b else None,
        levels_available={"bids": len(bids), "asks": len(asks)},
        freshness=freshness,
    )
