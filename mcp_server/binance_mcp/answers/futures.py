"""Output models of the USD-M futures tools. Prices, rates and quantities are the exact strings Binance
sent; times are ms since the epoch (UTC). Series (funding history, open-interest statistics, long/short
ratios, taker volume) are columnar: ``columns`` names the values of each row, which keeps long ranges small."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .market import Klines, RateLimitInfo
from .numbers import s
from .provenance import Sourced
from .respond import Series, Truncation


class FuturesSymbol(BaseModel):
    symbol: str
    pair: str | None = None
    contract_type: str | None = Field(None, description="PERPETUAL, CURRENT_QUARTER, NEXT_QUARTER, ...")
    status: str
    base_asset: str
    quote_asset: str
    margin_asset: str | None = None
    tick_size: str | None = None
    step_size: str | None = None
    min_qty: str | None = None
    delivery_date_ms: int | None = None


class FuturesExchangeInfo(Sourced, Truncation):
    timezone: str
    rate_limits: list[RateLimitInfo]
    symbol_count: int = Field(description="Contracts listed (all statuses).")
    by_contract_type: dict[str, int]
    symbols: list[FuturesSymbol] = Field(description="Contracts matching the filters.")


class MarkPrice(BaseModel):
    symbol: str
    mark_price: str
    index_price: str | None = None
    estimated_settle_price: str | None = None
    last_funding_rate: str | None = Field(None, description="As a fraction: 0.0001 = 0.01% per funding interval.")
    interest_rate: str | None = None
    next_funding_time_ms: int | None = None
    time_ms: int | None = None


class MarkPrices(Sourced, Truncation):
    prices: list[MarkPrice]


class OpenInterest(Sourced):
    symbol: str
    open_interest: str = Field(description="Open contracts, in the base asset.")
    time_ms: int


class FuturesSeries(Sourced, Series, Truncation):
    symbol: str
    kind: str = Field(description="Which series: funding_rate, open_interest, long_short_ratio, taker_volume.")
    period: str | None = None
    columns: list[str]
    rows: list[list[Any]] = Field(description="Oldest first; values as Binance sent them (decimals as strings).")


class FuturesTicker(BaseModel):
    symbol: str
    last_price: str
    price_change: str
    price_change_percent: str
    weighted_avg_price: str
    open_price: str
    high_price: str
    low_price: str
    volume: str
    quote_volume: str
    open_time_ms: int
    close_time_ms: int
    count: int


class FuturesTickers(Sourced, Truncation):
    tickers: list[FuturesTicker]


class FuturesBookTicker(BaseModel):
    symbol: str
    bid_price: str
    bid_qty: str
    ask_price: str
    ask_qty: str
    time_ms: int | None = None


class FuturesBookTickers(Sourced, Truncation):
    tickers: list[FuturesBookTicker]


class FuturesPrice(BaseModel):
    symbol: str
    price: str
    time_ms: int | None = None


class FuturesPrices(Sourced, Truncation):
    prices: list[FuturesPrice]


class FuturesKlines(Klines):
    price_type: str = Field(description="trade, mark, index or premium (premium index) candles.")
    contract_type: str | None = Field(None, description="With continuous contract candles: the contract type.")


# --- converters ------------------------------------------------------------------------------------------
def futures_symbol(d: dict[str, Any]) -> FuturesSymbol:
    filters = {f.get("filterType"): f for f in d.get("filters") or []}
    return FuturesSymbol(
        symbol=d["symbol"], pair=d.get("pair"), contract_type=d.get("contractType"), status=d.get("status", ""),
        base_asset=d.get("baseAsset", ""), quote_asset=d.get("quoteAsset", ""), margin_asset=d.get("marginAsset"),
        tick_size=_opt(filters.get("PRICE_FILTER", {}).get("tickSize")),
        step_size=_opt(filters.get("LOT_SIZE", {}).get("stepSize")),
        min_qty=_opt(filters.get("LOT_SIZE", {}).get("minQty")), delivery_date_ms=d.get("deliveryDate"),
    )


def mark_price(d: dict[str, Any]) -> MarkPrice:
    return MarkPrice(symbol=d["symbol"], mark_price=s(d["markPrice"]), index_price=_opt(d.get("indexPrice")),
                     estimated_settle_price=_opt(d.get("estimatedSettlePrice")),
                     last_funding_rate=_opt(d.get("lastFundingRate")), interest_rate=_opt(d.get("interestRate")),
                     next_funding_time_ms=d.get("nextFundingTime"), time_ms=d.get("time"))


def mark_price_from_ws(p: dict[str, Any]) -> MarkPrice:
    """A ``markPriceUpdate`` stream payload (``T`` there is the next funding time)."""
    return MarkPrice(symbol=p["s"], mark_price=s(p["p"]), index_price=_opt(p.get("i")),
                     estimated_settle_price=_opt(p.get("P")), last_funding_rate=_opt(p.get("r")),
                     next_funding_time_ms=p.get("T"), time_ms=p.get("E"))


def futures_ticker(d: dict[str, Any]) -> FuturesTicker:
    return FuturesTicker(
        symbol=d["symbol"], last_price=s(d["lastPrice"]), price_change=s(d["priceChange"]),
        price_change_percent=s(d["priceChangePercent"]), weighted_avg_price=s(d["weightedAvgPrice"]),
        open_price=s(d["openPrice"]), high_price=s(d["highPrice"]), low_price=s(d["lowPrice"]), volume=s(d["volume"]),
        quote_volume=s(d["quoteVolume"]), open_time_ms=int(d["openTime"]), close_time_ms=int(d["closeTime"]),
        count=int(d["count"]))


def book_ticker(d: dict[str, Any]) -> FuturesBookTicker:
    return FuturesBookTicker(symbol=d["symbol"], bid_price=s(d["bidPrice"]), bid_qty=s(d["bidQty"]),
                             ask_price=s(d["askPrice"]), ask_qty=s(d["askQty"]), time_ms=d.get("time"))


def _opt(v: Any) -> str | None:
    return None if v is None else s(v)
