"""Binance JSON (REST or stream payloads) to answer rows: tickers, trades and klines, with their sorting and
summaries. Pure functions, exact decimal arithmetic (:mod:`.numbers`)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from .market import AggTradeRow, KlineSummary, TickerStats, TradeRow, TradeSummary
from .numbers import Q4, dec, fmt, fmt_n, fmt_q, i_opt, s, s_opt


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

