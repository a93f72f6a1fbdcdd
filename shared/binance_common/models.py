"""Pydantic models of Binance stream payloads, with exact ``Decimal`` prices and quantities.

Field names are readable; aliases are Binance's one-letter keys, so ``Trade.model_validate(payload)`` takes
the raw frame and ``model_dump(by_alias=False)`` gives readable JSON. Decimals are parsed from Binance's
strings, so every digit Binance sent is kept (``Decimal("0.00100000")`` stays ``0.00100000``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from .streams import StreamKind, parse_stream

PriceLevel = tuple[Decimal, Decimal]


class _Event(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class _SymbolEvent(_Event):
    """The head of most payloads. Each model narrows ``event_type`` to its own ``e`` (pydantic keeps a
    redeclared field where the base put it, so dumps still start with the event type)."""

    event_type: str = Field(alias="e")
    event_time: int = Field(alias="E")
    symbol: str = Field(alias="s")


class _Fill(_SymbolEvent):
    """One trade: what the trade and block-trade streams share (same letters)."""

    trade_id: int = Field(alias="t")
    price: Decimal = Field(alias="p")
    quantity: Decimal = Field(alias="q")
    trade_time: int = Field(alias="T")
    buyer_is_maker: bool = Field(alias="m")


class Trade(_Fill):
    event_type: Literal["trade"] = Field("trade", alias="e")
    ignore_M: bool | None = Field(None, alias="M")


class AggTrade(_SymbolEvent):
    event_type: Literal["aggTrade"] = Field("aggTrade", alias="e")
    agg_trade_id: int = Field(alias="a")
    price: Decimal = Field(alias="p")
    quantity: Decimal = Field(alias="q")
    first_trade_id: int = Field(alias="f")
    last_trade_id: int = Field(alias="l")
    trade_time: int = Field(alias="T")
    buyer_is_maker: bool = Field(alias="m")
    ignore_M: bool | None = Field(None, alias="M")


class _Bar(_Event):
    """Open, high, low, base and quote volume: the same letters in klines, mini tickers and tickers."""

    open: Decimal = Field(alias="o")
    high: Decimal = Field(alias="h")
    low: Decimal = Field(alias="l")
    volume: Decimal = Field(alias="v")
    quote_volume: Decimal = Field(alias="q", description="volume in the quote asset")


class KlineBar(_Bar):
    open_time: int = Field(alias="t")
    close_time: int = Field(alias="T")
    symbol: str = Field(alias="s")
    interval: str = Field(alias="i")
    first_trade_id: int = Field(alias="f")
    last_trade_id: int = Field(alias="L")
    close: Decimal = Field(alias="c")
    trades: int = Field(alias="n")
    closed: bool = Field(alias="x", description="the candle is final: its interval has ended")
    taker_buy_base_volume: Decimal = Field(alias="V")
    taker_buy_quote_volume: Decimal = Field(alias="Q")


class Kline(_SymbolEvent):
    event_type: Literal["kline"] = Field("kline", alias="e")
    kline: KlineBar = Field(alias="k")


class MiniTicker(_Bar, _SymbolEvent):
    event_type: Literal["24hrMiniTicker"] = Field("24hrMiniTicker", alias="e")
    close: Decimal = Field(alias="c")


class _TickerStats(_Bar):
    """What the 24 h and the rolling-window tickers share."""

    price_change: Decimal = Field(alias="p")
    price_change_percent: Decimal = Field(alias="P")
    weighted_avg_price: Decimal = Field(alias="w", description="volume-weighted average price of the window")
    last_price: Decimal = Field(alias="c")
    open_time: int = Field(alias="O", description="start of the window the statistics cover (ms)")
    close_time: int = Field(alias="C")
    first_trade_id: int = Field(alias="F")
    last_trade_id: int = Field(alias="L")
    trades: int = Field(alias="n")


class Ticker24h(_TickerStats, _SymbolEvent):
    event_type: Literal["24hrTicker"] = Field("24hrTicker", alias="e")
    prev_close: Decimal | None = Field(None, alias="x", description="last price before the window; not on USD-M")
    last_quantity: Decimal = Field(alias="Q")
    bid_price: Decimal | None = Field(None, alias="b")  # absent on USD-M futures
    bid_quantity: Decimal | None = Field(None, alias="B")
    ask_price: Decimal | None = Field(None, alias="a")
    ask_quantity: Decimal | None = Field(None, alias="A")


class RollingTicker(_TickerStats, _SymbolEvent):
    event_type: str = Field(alias="e")  # "1hTicker", "4hTicker", "1dTicker"


class BookTicker(_Event):
    update_id: int = Field(alias="u")
    symbol: str = Field(alias="s")
    bid_price: Decimal | None = Field(None, alias="b")  # absent on USD-M futures
    bid_quantity: Decimal | None = Field(None, alias="B")  # absent on USD-M futures
    ask_price: Decimal | None = Field(None, alias="a")  # absent on USD-M futures
    ask_quantity: Decimal | None = Field(None, alias="A")  # absent on USD-M futures


class AvgPrice(_SymbolEvent):
    event_type: Literal["avgPrice"] = Field("avgPrice", alias="e")
    interval: str = Field(alias="i")
    price: Decimal = Field(alias="w")
    last_trade_time: int = Field(alias="T")


class ReferencePrice(_Event):
    """``<s>@referencePrice``: the reference price of the price-range execution rule (``r`` null when none)."""

    event_type: Literal["referencePrice"] = Field("referencePrice", alias="e")
    symbol: str = Field(alias="s")
    reference_price: Decimal | None = Field(None, alias="r")
    valid_time: int = Field(alias="t", description="engine time (ms) at which the reference price was valid")


class BlockTrade(_Fill):
    """``<s>@blockTrade``: ``trade_id`` is the block trade's id (its own sequence)."""

    event_type: Literal["blockTrade"] = Field("blockTrade", alias="e")


class PartialDepth(_Event):
    last_update_id: int = Field(alias="lastUpdateId")
    bids: list[PriceLevel]
    asks: list[PriceLevel]


class DepthUpdate(_SymbolEvent):
    event_type: Literal["depthUpdate"] = Field("depthUpdate", alias="e")
    first_update_id: int = Field(alias="U")
    final_update_id: int = Field(alias="u")
    bids: list[PriceLevel] = Field(alias="b")
    asks: list[PriceLevel] = Field(alias="a")


class MarkPriceUpdate(_SymbolEvent):
    """USD-M futures ``<s>@markPrice``: ``T`` is the next funding time."""

    event_type: Literal["markPriceUpdate"] = Field("markPriceUpdate", alias="e")
    mark_price: Decimal = Field(alias="p")
    index_price: Decimal | None = Field(None, alias="i")
    estimated_settle_price: Decimal | None = Field(None, alias="P")
    funding_rate: Decimal | None = Field(None, alias="r")
    next_funding_time: int | None = Field(None, alias="T")


_SINGLE: dict[StreamKind, type[_Event]] = {
    StreamKind.TRADE: Trade,
    StreamKind.AGG_TRADE: AggTrade,
    StreamKind.KLINE: Kline,
    StreamKind.MINI_TICKER: MiniTicker,
    StreamKind.TICKER: Ticker24h,
    StreamKind.ROLLING_TICKER: RollingTicker,
    StreamKind.BOOK_TICKER: BookTicker,
    StreamKind.AVG_PRICE: AvgPrice,
    StreamKind.PARTIAL_DEPTH: PartialDepth,
    StreamKind.DEPTH: DepthUpdate,
    StreamKind.MARK_PRICE: MarkPriceUpdate,
    StreamKind.REFERENCE_PRICE: ReferencePrice,
    StreamKind.BLOCK_TRADE: BlockTrade,
}
_ARRAY: dict[StreamKind, type[_Event]] = {
    StreamKind.ALL_MINI_TICKERS: MiniTicker,
    StreamKind.ALL_ROLLING_TICKERS: RollingTicker,
}


def model_for(stream: str) -> type[_Event]:
    """The payload model of a stream (for ``!...@arr`` streams: the model of one array element)."""
    spec = parse_stream(stream)
    return _SINGLE.get(spec.kind) or _ARRAY[spec.kind]


def parse_payload(stream: str, payload: bytes | str | dict[str, Any] | list[Any]) -> _Event | list[_Event]:
    """Validate a raw payload of ``stream`` into its model (a list of models for array streams)."""
    data = orjson.loads(payload) if isinstance(payload, bytes | str) else payload
    spec = parse_stream(stream)
    if spec.kind in _ARRAY:
        model = _ARRAY[spec.kind]
        return [model.model_validate(x) for x in data]
    if spec.venue == "um" and spec.kind is StreamKind.PARTIAL_DEPTH:
        return DepthUpdate.model_validate(data)  # futures partial books are depthUpdate events
    return _SINGLE[spec.kind].model_validate(data)


def event_time_ms(payload: dict[str, Any]) -> int | None:
    """The event time ``E`` of a payload, if it has one (bookTicker and partial depth do not)."""
    e = payload.get("E") if isinstance(payload, dict) else None
    return e if isinstance(e, int) else None
