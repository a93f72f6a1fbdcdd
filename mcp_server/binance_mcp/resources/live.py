"""Live resources: stream latest values, order books, tickers and feed status, read from Redis.

Each read returns JSON with a ``freshness`` block. Subscribe to a URI (``subscriptions/listen`` on
2026-07-28, ``resources/subscribe`` before) to be notified when it changes; the subscription also leases
the stream behind it so the feed carries it (see :mod:`.legacy`). URI grammar: :mod:`.uris`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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


async def stream_resource(rt: ResourceHost, stream: str) -> str:
    return _dump(await rt.feed.latest(validate_stream(stream)))


async def book_resource(rt: ResourceHost, symbol: str) -> str:
    sym = normalize_symbol(symbol)
    try:
        view = await rt.feed.book(sym, levels=20, band_pct=Decimal(1))
    except FeedError as e:
        return _dump({"symbol": sym, "available": False, "note": str(e)})
    return _dump(view)


async def ticker_resource(rt: ResourceHost, symbol: str) -> str:
    return _dump(await rt.feed.latest(ticker_stream(symbol)))


async def feed_status_resource(rt: ResourceHost) -> str:
    return _dump(await rt.feed.feed_status(embedded=rt.embedded, replica=rt.holder))


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    uri: str
    name: str
    title: str
    description: str
    fn: Callable[..., Awaitable[str]]


RESOURCES = (
    ResourceSpec(
        STREAM_TEMPLATE, "stream", "Latest message of a live stream",
        "Latest message of a Binance stream (e.g. binance://stream/btcusdt@trade), decoded, with freshness. "
        "Subscribe to be notified on every update (at most 4 per second per URI).",
        stream_resource,
    ),
    ResourceSpec(
        BOOK_TEMPLATE, "order_book", "Live order book",
        "Top 20 levels, spread and depth within 1% of mid of the feed's local order book "
        "(e.g. binance://book/BTCUSDT).",
        book_resource,
    ),
    ResourceSpec(
        TICKER_TEMPLATE, "ticker", "24 h ticker",
        "24 h rolling ticker of a symbol from the <symbol>@ticker stream (e.g. binance://ticker/BTCUSDT), with "
        "freshness.",
        ticker_resource,
    ),
    ResourceSpec(
        FEED_STATUS_URI, "feed_status", "Feed health",
        "Daemon heartbeat, connections, lag and stream states of the shared feed.",
        feed_status_resource,
    ),
)


def _bound(fn: Callable[..., Awaitable[str]], rt: ResourceHost) -> Callable[..., Awaitable[str]]:
    """``fn`` with ``rt`` supplied and failures mapped, its other parameters (the URI's) left for the SDK."""
    sig = inspect.signature(fn, eval_str=True)
    params = list(sig.parameters.values())[1:]

    @resource_errors
    async def read(**kwargs: Any) -> str:
        return await fn(rt, **kwargs)

    read.__name__ = fn.__name__
    read.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    read.__annotations__ = {p.name: p.annotation for p in params} | {"return": str}
    return read


def register(mcp: MCPServer, rt: ResourceHost) -> None:
    for spec in RESOURCES:
        mcp.resource(spec.uri, name=spec.name, title=spec.title, description=spec.description, mime_type=JSON)(
            _bound(spec.fn, rt)
        )
