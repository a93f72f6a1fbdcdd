"""Live resources: stream latest values, order books, tickers and feed status, read from Redis.

Each read returns JSON with a ``freshness`` block. Subscribe to a URI (``subscriptions/listen`` on
2026-07-28, ``resources/subscribe`` before) to be notified when it changes; the subscription also leases
the stream behind it so the feed carries it (see :mod:`.legacy`). URI grammar: :mod:`.uris`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, ParamSpec, Protocol

import orjson
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from pydantic import BaseModel
from redis.exceptions import RedisError

from binance_common.streams import StreamNameError, SymbolError, normalize_symbol, validate_stream

from ..answers.respond import dump
from ..feed.base import FeedError
from ..feed.reader import FeedReader
from .uris import BOOK_TEMPLATE, FEED_STATUS_URI, STREAM_TEMPLATE, TICKER_TEMPLATE, ticker_stream

JSON = "application/json"
P = ParamSpec("P")


def _dump(model: BaseModel | dict[str, Any]) -> str:
    return orjson.dumps(dump(model) if isinstance(model, BaseModel) else model).decode()


def resource_errors(fn: Callable[P, Awaitable[str]]) -> Callable[P, Awaitable[str]]:
    """Anticipated failures become ResourceError / ResourceNotFoundError with an actionable message."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> str:
        try:
            return await fn(*args, **kwargs)
        except (StreamNameError, SymbolError) as e:
            raise ResourceNotFoundError(str(e)) from e
        except (RedisError, ConnectionError, OSError) as e:
            raise ResourceError(
                f"the shared feed store (Redis) is unreachable: {type(e).__name__}; check BINANCE_MCP_REDIS_URL"
            ) from e

    return wrapper


class ResourceHost(Protocol):
    """What the resources read through (the Runtime): the feed reader, whether it is embedded, the replica."""

    @property
    def feed(self) -> FeedReader: ...

    @property
    def embedded(self) -> bool: ...

    holder: str


def register(mcp: MCPServer, rt: ResourceHost) -> None:
    @mcp.resource(
        STREAM_TEMPLATE,
        name="stream",
        title="Latest message of a live stream",
        description="Latest message of a Binance stream (e.g. binance://stream/btcusdt@trade), decoded, with "
        "freshness. Subscribe to be notified on every update (at most 4 per second per URI).",
        mime_type=JSON,
    )
    @resource_errors
    async def stream_resource(stream: str) -> str:
        return _dump(await rt.feed.latest(validate_stream(stream)))

    @mcp.resource(
        BOOK_TEMPLATE,
        name="order_book",
        title="Live order book",
        description="Top 20 levels, spread and depth within 1% of mid of the feed's local order book "
        "(e.g. binance://book/BTCUSDT).",
        mime_type=JSON,
    )
    @resource_errors
    async def book_resource(symbol: str) -> str:
        sym = normalize_symbol(symbol)
        try:
            view = await rt.feed.book(sym, levels=20, band_pct=Decimal(1))
        except FeedError as e:
            return _dump({"symbol": sym, "available": False, "note": str(e)})
        return _dump(view)

    @mcp.resource(
        TICKER_TEMPLATE,
        name="ticker",
        title="24 h ticker",
        description="24 h rolling ticker of a symbol from the <symbol>@ticker stream (e.g. "
        "binance://ticker/BTCUSDT), with freshness.",
        mime_type=JSON,
    )
    @resource_errors
    async def ticker_resource(symbol: str) -> str:
        return _dump(await rt.feed.latest(ticker_stream(symbol)))

    @mcp.resource(
        FEED_STATUS_URI,
        name="feed_status",
        title="Feed health",
        description="Daemon heartbeat, connections, lag and stream states of the shared feed.",
        mime_type=JSON,
    )
    async def feed_status_resource() -> str:
        try:
            status = await rt.feed.feed_status(embedded=rt.embedded, replica=rt.holder)
        except (RedisError, ConnectionError, OSError) as e:
            raise ResourceError(f"the shared feed store (Redis) is unreachable: {type(e).__name__}") from e
        return _dump(status)
