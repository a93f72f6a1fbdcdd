"""How fresh a piece of stream data is: as-of time, age, source, stale flag. Pure functions, no I/O.

Every stream answer carries a :class:`Freshness`. A value is *stale* when its age exceeds the threshold of
its stream type (:func:`stale_after_ms`): streams Binance pushes on a timer (tickers, klines, partial depth,
average price) go stale quickly, event-driven streams (trades, best bid/ask, diff depth) may legitimately
be quiet on an illiquid pair, so they get more slack. When there is no data yet, the freshness still says
what the subscription is doing (``state`` and ``reason`` from the daemon's ``status:<stream>`` hash).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from binance_common.streams import StreamKind, parse_stream

Source = Literal["ws", "rest", "none"]

# Milliseconds after which a value of each stream kind is reported stale.
STALE_AFTER_MS: dict[StreamKind, int] = {
    StreamKind.TRADE: 60_000,
    StreamKind.AGG_TRADE: 60_000,
    StreamKind.BOOK_TICKER: 30_000,
    StreamKind.DEPTH: 15_000,
    StreamKind.PARTIAL_DEPTH: 5_000,
    StreamKind.KLINE: 10_000,
    StreamKind.MINI_TICKER: 10_000,
    StreamKind.ALL_MINI_TICKERS: 10_000,
    StreamKind.TICKER: 10_000,
    StreamKind.ROLLING_TICKER: 10_000,
    StreamKind.ALL_ROLLING_TICKERS: 10_000,
    StreamKind.AVG_PRICE: 10_000,
}
BOOK_STALE_AFTER_MS = 10_000
"""A local order book (``book:<SYMBOL>``) untouched for this long is stale."""

STATE_NOT_SUBSCRIBED = "not_subscribed"


class Freshness(BaseModel):
    """How old a stream answer is and where it came from."""

    as_of_ms: int | None = Field(
        None, description="When the feed received the data, ms since the Unix epoch (UTC); null without data."
    )
    as_of: str | None = Field(None, description="as_of_ms as an ISO-8601 UTC timestamp.")
    age_ms: int | None = Field(None, description="Now minus as_of_ms, ms; null without data.")
    event_time_ms: int | None = Field(None, description="Binance's own event time (E) when the payload has one.")
    source: Source = Field(
        description="ws: live WebSocket feed; rest: backfilled from Binance REST; none: no data yet."
    )
    stale: bool = Field(description="True when there is no data or it is older than stale_after_ms.")
    stale_after_ms: int = Field(description="Staleness threshold of this stream type, ms.")
    state: str = Field(
        description="Subscription state from the feed daemon: pending (not acknowledged yet, or reconnecting), "
        "catching_up (acknowledged; missed trades are being recovered from REST), live, failed, or "
        "not_subscribed when the daemon is not asked for this stream."
    )
    reason: str | None = Field(None, description="Why the subscription is failed or pending, when known.")


def stale_after_ms(stream: str) -> int:
    """The staleness threshold of a (valid) stream name."""
    return STALE_AFTER_MS.get(parse_stream(stream).kind, 60_000)


def iso_ms(ms: int) -> str:
    """``1700000000123`` -> ``2023-11-14T22:13:20.123+00:00``."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def freshness(
    *,
    now_ms: int,
    threshold_ms: int,
    received_ms: int | None,
    state: str | None,
    reason: str | None = None,
    event_time_ms: int | None = None,
    source: Source | None = None,
) -> Freshness:
    """Build the freshness of one answer. ``received_ms`` None means there is no data yet."""
    st = state or STATE_NOT_SUBSCRIBED
    if received_ms is None:
        return Freshness(source="none", stale=True, stale_after_ms=threshold_ms, state=st, reason=reason)
    age = max(0, now_ms - received_ms)
    return Freshness(
        as_of_ms=received_ms,
        as_of=iso_ms(received_ms),
        age_ms=age,
        event_time_ms=event_time_ms,
        source=source or "ws",
        stale=age > threshold_ms or st in ("failed", "not_subscribed"),
        stale_after_ms=threshold_ms,
        state=st,
        reason=reason,
    )
