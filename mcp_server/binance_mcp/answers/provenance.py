"""Where an answer came from and how old it is: one table of age limits per stream kind, one provenance
record (:class:`Fresh`), and its two renderings on the wire.

* Market tools (REST, or the live feed when it is fresh enough) put :class:`Sourced` fields at the top level
  of their answer: ``source`` (rest, ws, cache), ``as_of_ms``, ``age_ms`` and ``stream``.
* Stream tools nest a :class:`Freshness`: the same as-of time and age plus the stale flag and the
  subscription's state, because a stream answer may be old or empty and must say so.

:data:`LIMITS` holds, per stream kind, how old a feed value may be to *serve* a market tool instead of REST
(``serve_ms``) and when a stream answer is flagged *stale* (``stale_ms``). Streams Binance pushes on a timer
(tickers, klines, partial depth, average price) age quickly; event-driven ones (trades, best bid/ask, diff
depth) may be quiet on an illiquid pair, so they get more slack. Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from binance_common.streams import StreamKind, parse_stream
from binance_common.timeutil import now_ms

from .respond import Answer

FeedSource = Literal["ws", "rest", "none"]
Source = Literal["rest", "ws", "cache"]


@dataclass(frozen=True, slots=True)
class Limits:
    serve_ms: int
    """A feed value at most this old answers a market tool (``source=auto``) instead of REST."""
    stale_ms: int
    """A stream answer older than this is flagged stale."""


LIMITS: dict[StreamKind, Limits] = {
    StreamKind.TRADE: Limits(60_000, 60_000),
    StreamKind.AGG_TRADE: Limits(60_000, 60_000),
    StreamKind.BOOK_TICKER: Limits(5_000, 30_000),
    StreamKind.DEPTH: Limits(5_000, 15_000),
    StreamKind.PARTIAL_DEPTH: Limits(5_000, 5_000),
    StreamKind.KLINE: Limits(5_000, 10_000),
    StreamKind.MINI_TICKER: Limits(5_000, 10_000),
    StreamKind.ALL_MINI_TICKERS: Limits(5_000, 10_000),
    StreamKind.TICKER: Limits(5_000, 10_000),
    StreamKind.ROLLING_TICKER: Limits(5_000, 10_000),
    StreamKind.ALL_ROLLING_TICKERS: Limits(5_000, 10_000),
    StreamKind.AVG_PRICE: Limits(5_000, 10_000),
    StreamKind.MARK_PRICE: Limits(5_000, 10_000),
    StreamKind.FORCE_ORDER: Limits(60_000, 600_000),
    StreamKind.REFERENCE_PRICE: Limits(5_000, 10_000),
    StreamKind.BLOCK_TRADE: Limits(60_000, 600_000),
}
DEFAULT_LIMITS = Limits(5_000, 60_000)
BOOK_LIMITS = Limits(5_000, 10_000)
"""The daemon's local order book (``book:<SYMBOL>``)."""

STATE_NOT_SUBSCRIBED = "not_subscribed"


def limits(stream: str) -> Limits:
    """The age limits of a (valid) stream name, or of ``book:<SYMBOL>``."""
    if stream.startswith("book:"):
        return BOOK_LIMITS
    return LIMITS.get(parse_stream(stream).kind, DEFAULT_LIMITS)


@dataclass(frozen=True, slots=True)
class Fresh:
    """A value read from the feed with its provenance (the one record both renderings are made from)."""

    stream: str  # the stream name, or "book:<SYMBOL>"
    payload: Any
    received_ms: int
    age_ms: int


class Sourced(Answer):
    """Provenance of a market answer (top-level fields)."""

    source: Source = Field(
        description="rest: Binance REST just now; ws: the live WebSocket feed in Redis (no REST weight); "
        "cache: the shared exchangeInfo cache."
    )
    as_of_ms: int = Field(description="When the data was received from Binance, ms since the epoch (UTC).")
    age_ms: int = Field(description="Age of the data when answered, ms.")
    stream: str | None = Field(None, description="The live stream that served it (source ws).")


def rest_meta() -> dict[str, Any]:
    """:class:`Sourced` fields of an answer fetched from REST just now."""
    return {"source": "rest", "as_of_ms": now_ms(), "age_ms": 0}


def ws_meta(f: Fresh) -> dict[str, Any]:
    """:class:`Sourced` fields of an answer served from the feed."""
    return {"source": "ws", "as_of_ms": f.received_ms, "age_ms": f.age_ms, "stream": f.stream}


class Freshness(BaseModel):
    """How old a stream answer is and where it came from."""

    as_of_ms: int | None = Field(
        None, description="When the feed received the data, ms since the Unix epoch (UTC); null without data."
    )
    as_of: str | None = Field(None, description="as_of_ms as an ISO-8601 UTC timestamp.")
    age_ms: int | None = Field(None, description="Now minus as_of_ms, ms; null without data.")
    event_time_ms: int | None = Field(None, description="Binance's own event time (E) when the payload has one.")
    source: FeedSource = Field(
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
    return limits(stream).stale_ms


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
    source: FeedSource | None = None,
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
