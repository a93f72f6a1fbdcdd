"""Pure conversions for the market tools: Binance JSON (REST or stream) to output models, input parsing,
sorting and summaries. No I/O; exact decimal arithmetic throughout."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import orjson
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from .market_models import (
    AggTradeRow,
    BandDepthInfo,
    KlineSummary,
    Level,
    TickerStats,
    TradeRow,
    TradeSummary,
)

Q8 = Decimal("0.00000001")
Q4 = Decimal("0.0001")
MIN_PLAUSIBLE_MS = 10**11  # 1973-03-03 in ms; smaller values are almost certainly seconds
_TZ_RE = re.compile(r"([+-]?)([0-9]{1,2})(?::([0-9]{2}))?")
_WINDOW_RE = re.compile(r"^(?:([1-9]|[1-5]\d)m|([1-9]|1\d|2[0-3])h|([1-7])d)$")


# --- numbers ---------------------------------------------------------------------------------------------
def dec(x: Any) -> Decimal:
    """A Binance number (string, int or Decimal) as Decimal, never through float."""
    if isinstance(x, Decimal):
        return x
    try:
        return Decimal(str(x))
    except InvalidOperation as e:
        raise ValueError(f"not a decimal number: {x!r}") from e


def fmt(d: Decimal) -> str:
    """Positional notation with every digit kept (``1E-8`` -> ``0.00000001``)."""
    return format(d, "f")


def fmt_n(d: Decimal) -> str:
    """A computed exact value without trailing zeros (``22372.18299810000000`` -> ``22372.1829981``)."""
    return fmt(d.normalize()) if d != 0 else "0"


def fmt_q(d: Decimal, q: Decimal = Q8) -> str:
    """Rounded half-even to ``q``, trailing zeros dropped (but never exponent notation)."""
    r = d.quantize(q, rounding=ROUND_HALF_EVEN).normalize()
    return fmt(r) if r != 0 else "0"


def s(x: Any) -> str:
    """A Binance decimal as the exact string it sent (Decimals from the JSON decoder kept verbatim)."""
    return fmt(x) if isinstance(x, Decimal) else str(x)


def s_opt(x: Any) -> str | None:
    return None if x is None else s(x)


def i_opt(x: Any) -> int | None:
    try:
        return None if x is None else int(x)
    except (TypeError, ValueError):
        return None


# --- inputs ----------------------------------------------------------------------------------------------
def parse_time_ms(value: int | str | None, name: str) -> int | None:
    """ms since the epoch from an int, a digit string, or ISO-8601 (``2024-01-01``, ``2024-01-01T12:00:00Z``;
    no offset means UTC)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be ms since the epoch or an ISO-8601 date/time, not a boolean")
    text = str(value).strip()
    if re.fullmatch(r"-?[0-9]+", text):
        if len(text) > 16:
            raise ValueError(f"{name}={text[:20]}... is out of range: pass ms since the epoch (13 digits, e.g. "
                             "1700000000000) or an ISO-8601 time")
        ms = int(text)
        if ms < 0:
            raise ValueError(f"{name} must not be negative")
        if ms < MIN_PLAUSIBLE_MS:
            raise ValueError(
                f"{name}={ms} looks like seconds (or is before 1973); pass milliseconds since the epoch "
                f"(e.g. {ms * 1000}) or an ISO-8601 time such as 2024-01-01T00:00:00Z"
            )
        return _bounded(ms, name)
    try:
        dt = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as e:
        raise ValueError(
            f"{name}={text[:40]!r} is neither ms since the epoch nor ISO-8601 (e.g. 2024-01-01 or "
            "2024-01-01T12:30:00Z)"
        ) from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    ms = int(dt.timestamp() * 1000)
    if ms < 0:
        raise ValueError(f"{name} must not be before 1970-01-01")
    return _bounded(ms, name)


MAX_PLAUSIBLE_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z


def _bounded(ms: int, name: str) -> int:
    if ms > MAX_PLAUSIBLE_MS:
        raise ValueError(f"{name}={ms} is after 2100-01-01: pass ms since the epoch (e.g. 1700000000000) or an "
                         "ISO-8601 time")
    return ms


def check_time_range(start: int | None, end: int | None) -> None:
    if start is not None and end is not None and start > end:
        raise ValueError(f"start_time ({start}) is after end_time ({end})")


def check_time_zone(tz: str) -> str:
    """Binance's timeZone: hours, or hours:minutes, within -12:00 .. +14:00 (e.g. 0, 8, -5, 05:45, +08:00)."""
    m = _TZ_RE.fullmatch(tz.strip()) if tz.isascii() else None
    if not m:
        raise ValueError(f"invalid time_zone {tz!r}: use hours or hours:minutes, e.g. 0, 8, -5, +05:30, 05:45")
    sign, hh, mm = m.group(1), int(m.group(2)), int(m.group(3) or 0)
    if mm >= 60:
        raise ValueError(f"invalid time_zone {tz!r}: minutes must be below 60")
    total = (hh * 60 + mm) * (-1 if sign == "-" else 1)
    if not -12 * 60 <= total <= 14 * 60:
        raise ValueError(f"invalid time_zone {tz!r}: Binance accepts -12:00 to +14:00")
    return tz.strip()


def check_window(window: str) -> str:
    """Rolling window size: 1m..59m, 1h..23h, 1d..7d (one unit, no combinations)."""
    w = window.strip()
    if not _WINDOW_RE.match(w):
        raise ValueError(
            f"invalid window_size {window!r}: use 1m-59m, 1h-23h or 1d-7d (one unit, e.g. 15m, 4h, 7d; "
            "'1d2h' is not allowed)"
        )
    return w


# --- tool results ----------------------------------------------------------------------------------------
def respond(model: BaseModel) -> CallToolResult:
    """A tool result whose text is compact JSON (no indentation, nulls omitted) and whose structured content
    is the same data, validated by the tool's output schema."""
    data = model.model_dump(mode="json", exclude_none=True)
    return CallToolResult(
        content=[TextContent(type="text", text=orjson.dumps(data).decode())], structured_content=data
    )


# --- tickers ---------------------------------------------------------------------------------------------
def ticker_from_rest(d: dict[str, Any]) -> TickerStats:
    """24hr, tradingDay or rolling-window ticker, FULL or MINI, as Binance's REST sent it."""
    return TickerStats(
        symbol=d["symbol"],
        price_change=s_opt(d.get("priceChange")),
        price_change_percent=s_opt(d.get("priceChangePercent")),
        weighted_avg_price=s_opt(d.get("weightedAvgPrice")),
        prev_close_price=s_opt(d.get("prevClosePrice")),
        last_price=s(d["lastPrice"]),
        last_qty=s_opt(d.get("lastQty")),
        bid_price=s_opt(d.get("bidPrice")),
        bid_qty=s_opt(d.get("bidQty")),
        ask_price=s_opt(d.get("askPrice")),
        ask_qty=s_opt(d.get("askQty")),
        open_price=s(d["openPrice"]),
        high_price=s(d["highPrice"]),
        low_price=s(d["lowPrice"]),
        volume=s(d["volume"]),
        quote_volume=s(d["quoteVolume"]),
        open_time_ms=i_opt(d.get("openTime")),
        close_time_ms=i_opt(d.get("closeTime")),
        first_trade_id=i_opt(d.get("firstId")),
        last_trade_id=i_opt(d.get("lastId")),
        trade_count=i_opt(d.get("count")),
    )


def ticker_from_ws(p: dict[str, Any], *, mini: bool = False) -> TickerStats:
    """A ``24hrTicker``, ``24hrMiniTicker`` or ``<w>Ticker`` stream payload. ``mini`` drops FULL-only fields
    so a MINI request gets the same shape from either source."""
    full = not mini
    return TickerStats(
        symbol=p["s"],
        price_change=s_opt(p.get("p")) if full else None,
        price_change_percent=s_opt(p.get("P")) if full else None,
        weighted_avg_price=s_opt(p.get("w")) if full else None,
        prev_close_price=s_opt(p.get("x")) if full else None,
        last_price=s(p["c"]),
        last_qty=s_opt(p.get("Q")) if full else None,
        bid_price=s_opt(p.get("b")) if full else None,
        bid_qty=s_opt(p.get("B")) if full else None,
        ask_price=s_opt(p.get("a")) if full else None,
        ask_qty=s_opt(p.get("A")) if full else None,
        open_price=s(p["o"]),
        high_price=s(p["h"]),
        low_price=s(p["l"]),
        volume=s(p["v"]),
        quote_volume=s(p["q"]),
        open_time_ms=i_opt(p.get("O")),
        close_time_ms=i_opt(p.get("C")),
        first_trade_id=i_opt(p.get("F")),
        last_trade_id=i_opt(p.get("L")),
        trade_count=i_opt(p.get("n")),
    )


def change_percent(t: TickerStats) -> Decimal:
    """Percent change: Binance's when present, else computed from open and last (0 when open is 0)."""
    if t.price_change_percent is not None:
        return dec(t.price_change_percent)
    o = dec(t.open_price)
    return (dec(t.last_price) - o) / o * 100 if o else Decimal(0)


def ticker_sort_key(sort_by: str) -> Any:
    if sort_by == "symbol":
        return lambda t: t.symbol
    if sort_by == "quote_volume":
        return lambda t: dec(t.quote_volume)
    if sort_by == "volume":
        return lambda t: dec(t.volume)
    if sort_by == "price_change_percent":
        return change_percent
    if sort_by == "abs_price_change_percent":
        return lambda t: abs(change_percent(t))
    if sort_by == "trade_count":
        return lambda t: t.trade_count or 0
    if sort_by == "last_price":
        return lambda t: dec(t.last_price)
    raise ValueError(f"unknown sort_by {sort_by!r}")


def sort_tickers(rows: Iterable[TickerStats], sort_by: str, order: str) -> list[TickerStats]:
    return sorted(rows, key=ticker_sort_key(sort_by), reverse=order == "desc")


# --- trades ----------------------------------------------------------------------------------------------
def trade_from_rest(d: dict[str, Any]) -> TradeRow:
    return TradeRow(
        id=int(d["id"]),
        price=s(d["price"]),
        qty=s(d["qty"]),
        quote_qty=s(d["quoteQty"]) if d.get("quoteQty") is not None else fmt(dec(d["price"]) * dec(d["qty"])),
        time_ms=int(d["time"]),
        is_buyer_maker=bool(d["isBuyerMaker"]),
        is_best_match=d.get("isBestMatch"),
    )


def trade_from_ws(p: dict[str, Any]) -> TradeRow:
    """A ``trade`` stream payload; quote_qty is price x qty computed exactly."""
    return TradeRow(
        id=int(p["t"]),
        price=s(p["p"]),
        qty=s(p["q"]),
        quote_qty=fmt(dec(p["p"]) * dec(p["q"])),
        time_ms=int(p["T"]),
        is_buyer_maker=bool(p["m"]),
        is_best_match=p.get("M"),
    )


def agg_trade(d: dict[str, Any]) -> AggTradeRow:
    """REST aggTrades and the aggTrade stream use the same one-letter fields."""
    return AggTradeRow(
        agg_id=int(d["a"]),
        price=s(d["p"]),
        qty=s(d["q"]),
        first_trade_id=int(d["f"]),
        last_trade_id=int(d["l"]),
        time_ms=int(d["T"]),
        is_buyer_maker=bool(d["m"]),
        is_best_match=d.get("M"),
    )


def trade_summary(rows: list[TradeRow] | list[AggTradeRow]) -> TradeSummary:
    vol = quote = buy = sell = Decimal(0)
    lo: Decimal | None = None
    hi: Decimal | None = None
    for r in rows:
        p, q = dec(r.price), dec(r.qty)
        vol += q
        quote += p * q
        if r.is_buyer_maker:
            sell += q
        else:
            buy += q
        lo = p if lo is None or p < lo else lo
        hi = p if hi is None or p > hi else hi
    return TradeSummary(
        count=len(rows),
        first_time_ms=rows[0].time_ms if rows else None,
        last_time_ms=rows[-1].time_ms if rows else None,
        volume=fmt_n(vol),
        quote_volume=fmt_n(quote),
        vwap=fmt_q(quote / vol) if vol else None,
        taker_buy_volume=fmt_n(buy),
        taker_sell_volume=fmt_n(sell),
        low=fmt(lo) if lo is not None else None,
        high=fmt(hi) if hi is not None else None,
    )


# --- order book ------------------------------------------------------------------------------------------
def book_levels(raw: list[Any], limit: int) -> list[Level]:
    return [Level(price=s(p), qty=s(q)) for p, q, *_ in raw[:limit]]


def book_stats(
    bids: list[Level], asks: list[Level], band_pct: Decimal
) -> tuple[str | None, str | None, str | None, BandDepthInfo | None]:
    """(mid, spread, spread_bps, depth within band_pct of mid) over the given (best-first) levels."""
    if not bids or not asks:
        return None, None, None, None
    bb, ba = dec(bids[0].price), dec(asks[0].price)
    mid = (bb + ba) / 2
    spread = ba - bb
    if mid <= 0:
        return fmt(mid.normalize()), fmt(spread), None, None
    bps = fmt((spread / mid * 10_000).quantize(Q4, rounding=ROUND_HALF_EVEN))
    lo, hi = mid * (1 - band_pct / 100), mid * (1 + band_pct / 100)
    bq = bn = aq = an = Decimal(0)
    for lv in bids:
        p, q = dec(lv.price), dec(lv.qty)
        if p >= lo:
            bq, bn = bq + q, bn + p * q
    for lv in asks:
        p, q = dec(lv.price), dec(lv.qty)
        if p <= hi:
            aq, an = aq + q, an + p * q
    band = BandDepthInfo(
        band_pct=fmt_n(band_pct), bid_qty=fmt_n(bq), bid_notional=fmt_n(bn), ask_qty=fmt_n(aq), ask_notional=fmt_n(an)
    )
    return fmt(mid.normalize()), fmt(spread), bps, band


def spread_bps(bid: Any, ask: Any) -> str | None:
    b, a = dec(bid), dec(ask)
    mid = (a + b) / 2
    if mid <= 0:
        return None
    return fmt(((a - b) / mid * 10_000).quantize(Q4, rounding=ROUND_HALF_EVEN))


# --- klines ----------------------------------------------------------------------------------------------
def kline_rows(raw: list[list[Any]]) -> list[list[str | int]]:
    """Binance's 12-value rows without the unused last value; prices as exact strings, times/counts as ints."""
    out: list[list[str | int]] = []
    for k in raw:
        out.append(
            [int(k[0]), s(k[1]), s(k[2]), s(k[3]), s(k[4]), s(k[5]), int(k[6]), s(k[7]), int(k[8]), s(k[9]), s(k[10])]
        )
    return out


def kline_summary(rows: list[list[str | int]]) -> KlineSummary | None:
    if not rows:
        return None
    o, c = dec(rows[0][1]), dec(rows[-1][4])
    hi = max(dec(r[2]) for r in rows)
    lo = min(dec(r[3]) for r in rows)
    change = c - o
    return KlineSummary(
        open=s(rows[0][1]),
        close=s(rows[-1][4]),
        high=fmt(hi),
        low=fmt(lo),
        change=fmt(change),
        change_percent=fmt_q(change / o * 100, Q4) if o else "0",
        volume=fmt_n(sum((dec(r[5]) for r in rows), Decimal(0))),
        quote_volume=fmt_n(sum((dec(r[7]) for r in rows), Decimal(0))),
    )

