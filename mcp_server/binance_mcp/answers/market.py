"""Output models of the market-data tools (the JSON agents see, and the output schemas clients get).

Prices and quantities are exact decimal strings: the digits Binance sent, or exact decimal arithmetic on them
(computed figures say how they are rounded). Times are ms since the Unix epoch (UTC). Every answer says where
it came from (``source``) and how old it is (``age_ms``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .provenance import Sourced
from .respond import Answer, Series, Truncation


# --- general -------------------------------------------------------------------------------------------
class Ping(Answer):
    ok: bool
    latency_ms: float = Field(description="Round trip of GET /api/v3/ping, ms.")
    rest_base_url: str


class ServerTime(Answer):
    server_time_ms: int = Field(description="Binance server time, ms since the Unix epoch (UTC).")
    server_time_iso: str
    clock_offset_ms: int = Field(description="Binance time minus this machine's clock, ms (stored for signing).")
    round_trip_ms: float | None = Field(None, description="Round trip of the measurement, ms.")


# --- exchange info and symbols --------------------------------------------------------------------------
class SymbolBrief(BaseModel):
    symbol: str
    status: str = Field(description="TRADING, BREAK, HALT, ...")
    base_asset: str
    quote_asset: str


class RateLimitInfo(BaseModel):
    rate_limit_type: str = Field(description="REQUEST_WEIGHT, ORDERS or RAW_REQUESTS.")
    interval: str
    interval_num: int
    limit: int


class ExchangeInfoSummary(Sourced, Truncation):
    timezone: str
    server_time_ms: int | None = None
    rate_limits: list[RateLimitInfo]
    exchange_filters: list[dict[str, Any]]
    symbol_count: int = Field(description="Symbols on the venue (all statuses).")
    by_status: dict[str, int] = Field(description="Symbol count per status.")
    top_quote_assets: dict[str, int] = Field(description="Quote assets with the most TRADING symbols (top 25).")
    symbols: list[SymbolBrief] = Field(description="Symbols matching the filters (details: get_symbol_info).")


class SymbolSearch(Truncation):
    matches: list[SymbolBrief] = Field(description="Best matches first.")
    cache_age_ms: int = Field(description="Age of the exchangeInfo data searched, ms.")


class SymbolInfo(Sourced):
    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    base_asset_precision: int | None = None
    quote_asset_precision: int | None = None
    tick_size: str | None = Field(None, description="PRICE_FILTER: prices must be multiples of this.")
    min_price: str | None = None
    max_price: str | None = None
    step_size: str | None = Field(None, description="LOT_SIZE: quantities must be multiples of this.")
    min_qty: str | None = None
    max_qty: str | None = None
    market_step_size: str | None = Field(None, description="MARKET_LOT_SIZE step for market orders.")
    market_min_qty: str | None = None
    market_max_qty: str | None = None
    min_notional: str | None = Field(None, description="NOTIONAL/MIN_NOTIONAL: minimum price x quantity (quote).")
    max_notional: str | None = None
    order_types: list[str] = Field(default_factory=list)
    permissions: list[str] = Field(default_factory=list, description="Account permissions any of which allow trading.")
    is_spot_trading_allowed: bool | None = None
    is_margin_trading_allowed: bool | None = None
    iceberg_allowed: bool | None = None
    oco_allowed: bool | None = None
    quote_order_qty_market_allowed: bool | None = None
    other_filters: list[dict[str, Any]] = Field(
        default_factory=list, description="Filters not summarised above, as Binance sent them."
    )


# --- prices and tickers ---------------------------------------------------------------------------------
class Price(Sourced):
    symbol: str
    price: str = Field(description="Last traded price, exact decimal string.")


class PriceRow(BaseModel):
    symbol: str
    price: str


class PriceList(Sourced, Truncation):
    prices: list[PriceRow] = Field(description="Sorted by symbol.")


class BookTicker(Sourced):
    symbol: str
    bid_price: str
    bid_qty: str
    ask_price: str
    ask_qty: str
    spread: str | None = Field(None, description="ask - bid (exact).")
    spread_bps: str | None = Field(None, description="Spread over mid price, basis points (4 decimals).")


class BookTickerRow(BaseModel):
    symbol: str
    bid_price: str
    bid_qty: str
    ask_price: str
    ask_qty: str
    spread_bps: str | None = None


class BookTickerList(Sourced, Truncation):
    tickers: list[BookTickerRow]


class AvgPrice(Sourced):
    symbol: str
    mins: int = Field(description="Averaging window, minutes.")
    price: str = Field(description="Volume-weighted average price over the window.")
    close_time_ms: int | None = Field(None, description="Time of the last trade in the window.")


class TickerStats(BaseModel):
    """Price-change statistics over a window (24 h rolling, trading day, or a rolling window).
    MINI answers omit the fields marked FULL."""

    symbol: str
    price_change: str | None = Field(None, description="last - open (FULL).")
    price_change_percent: str | None = Field(None, description="Percent change over the window (FULL).")
    weighted_avg_price: str | None = Field(None, description="quote_volume / volume (FULL).")
    prev_close_price: str | None = Field(None, description="24hr FULL only.")
    last_price: str
    last_qty: str | None = Field(None, description="24hr FULL only.")
    bid_price: str | None = Field(None, description="24hr FULL only.")
    bid_qty: str | None = None
    ask_price: str | None = Field(None, description="24hr FULL only.")
    ask_qty: str | None = None
    open_price: str
    high_price: str
    low_price: str
    volume: str = Field(description="Base-asset volume.")
    quote_volume: str = Field(description="Quote-asset volume.")
    open_time_ms: int | None = None
    close_time_ms: int | None = None
    first_trade_id: int | None = None
    last_trade_id: int | None = None
    trade_count: int | None = None


class Ticker(Sourced):
    window: str = Field(description="24h, trading_day, or the rolling window size (e.g. 4h).")
    ticker: TickerStats


class TickerList(Sourced, Truncation):
    window: str
    sort_by: str
    order: Literal["asc", "desc"]
    tickers: list[TickerStats]


# --- trades ----------------------------------------------------------------------------------------------
class TradeRow(BaseModel):
    id: int
    price: str
    qty: str
    quote_qty: str
    time_ms: int
    is_buyer_maker: bool = Field(description="True: the seller was the taker (a sell into the bid).")
    is_best_match: bool | None = None


class AggTradeRow(BaseModel):
    agg_id: int
    price: str
    qty: str
    first_trade_id: int
    last_trade_id: int
    time_ms: int
    is_buyer_maker: bool
    is_best_match: bool | None = None


class TradeSummary(BaseModel):
    count: int
    first_time_ms: int | None = None
    last_time_ms: int | None = None
    volume: str = Field(description="Sum of qty (base asset).")
    quote_volume: str = Field(description="Sum of price x qty (quote asset).")
    vwap: str | None = Field(None, description="quote_volume / volume, 8 decimals (half-even).")
    taker_buy_volume: str = Field(description="Base volume where the buyer was the taker.")
    taker_sell_volume: str
    low: str | None = None
    high: str | None = None


TRADE_COLUMNS = ["id", "price", "qty", "quote_qty", "time_ms", "is_buyer_maker", "is_best_match"]
AGG_TRADE_COLUMNS = [
    "agg_id", "price", "qty", "first_trade_id", "last_trade_id", "time_ms", "is_buyer_maker", "is_best_match",
]
COMPACT_ROWS = "With compact=true: one trade per row (oldest first), values in the order of `columns`."


class TradeList(Sourced, Series):
    symbol: str
    trades: list[TradeRow] = Field(description="Oldest first (empty with compact=true: see rows).")
    columns: list[str] | None = Field(None, description="With compact=true: the names of the values in each row.")
    rows: list[list[Any]] | None = Field(None, description=COMPACT_ROWS)
    summary: TradeSummary = Field(description="Of the returned trades.")
    next_from_id: int | None = Field(None, description="Pass as from_id to get_historical_trades for the next page.")
    hint: str | None = None


class AggTradeList(Sourced, Series):
    symbol: str
    trades: list[AggTradeRow] = Field(description="Oldest first (empty with compact=true: see rows).")
    columns: list[str] | None = Field(None, description="With compact=true: the names of the values in each row.")
    rows: list[list[Any]] | None = Field(None, description=COMPACT_ROWS)
    summary: TradeSummary = Field(description="Of the returned trades.")
    next_from_id: int | None = Field(None, description="Pass as from_id for the next (newer) page.")
    hint: str | None = None


# --- klines ----------------------------------------------------------------------------------------------
KLINE_COLUMNS = [
    "open_time_ms", "open", "high", "low", "close", "volume", "close_time_ms", "quote_volume", "trades",
    "taker_buy_base_volume", "taker_buy_quote_volume",
]


class KlineSummary(BaseModel):
    open: str
    close: str
    high: str
    low: str
    change: str = Field(description="close - open over the returned candles.")
    change_percent: str = Field(description="change / open x 100, 4 decimals.")
    volume: str
    quote_volume: str


class Klines(Sourced, Series):
    symbol: str
    interval: str
    time_zone: str
    ui: bool = Field(description="True for uiKlines (presentation-optimised candles).")
    columns: list[str] = Field(description="Names of the values in each row.")
    rows: list[list[str | int]] = Field(description="One candle per row, oldest first; prices are exact strings.")
    count: int
    summary: KlineSummary | None = None
    next_start_time_ms: int | None = Field(
        None, description="When count == limit or the answer was cut: pass as start_time to continue after the "
        "last candle."
    )
    hint: str | None = None
