"""Live resource updates for both protocol eras, wired onto the MCPServer.

* **2026-07-28** (``subscriptions/listen``): :class:`LeasingListenHandler` replaces the SDK's handler. It
  validates and canonicalises the requested URIs, leases the streams behind them for as long as the listen
  stream is open (so the daemon actually carries them), registers the URIs' interest on the bus, then runs
  the SDK's own handler, which forwards matching bus events.
* **Earlier versions** (``resources/subscribe``): MCPServer registers no handler; :class:`LegacySubscriptions`
  adds one. Each connection gets a URI set, a lease holder and a sender task; bus events become
  ``notifications/resources/updated`` on the connection's standalone stream. Everything is dropped when the
  connection closes. A stateless HTTP request has no stream to notify on, so it gets a clear error instead.

Both paths are fed by the same throttled :class:`~binance_mcp.resources.bus.RedisSubscriptionBus`, so a client on
any replica is notified of feed updates, whichever replica took its subscribe.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import redis.asyncio as aioredis
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import ListenHandler, ResourceUpdated, ServerEvent
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    EmptyResult,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
    UnsubscribeRequestParams,
)

from ..aio import cancel_and_wait
from ..feed.leases import LeaseKeeper, new_holder
from ..sdk_adapter import lowlevel_server, session_connection
from .bus import RedisSubscriptionBus
from .uris import ResourceURIError, parse_uri

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

log = logging.getLogger(__name__)

STATELESS_SUBSCRIBE_HINT = (
    "resources/subscribe needs a connection that can carry notifications, and this request came over "
    "stateless HTTP. Use subscriptions/listen (protocol 2026-07-28), the legacy SSE endpoint /sse, or a "
    "replica started with `binance-mcp http --no-stateless` (per-client sessions)."
)


def _parse(uris: list[str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """[(original, canonical, streams)]; MCPError(INVALID_PARAMS) naming what is allowed on a bad URI."""
    out = []
    for u in uris:
        try:
            t = parse_uri(u)
        except ResourceURIError as e:
            raise MCPError(INVALID_PARAMS, str(e), data={"uri": str(u)[:200]}) from e
        out.append((u, t.uri, t.streams))
    return out


def _redis_unreachable(e: Exception) -> MCPError:
    return MCPError(INTERNAL_ERROR, f"the shared feed store (Redis) is unreachable: {type(e).__name__}")


class LeasingListenHandler(ListenHandler):
    """``subscriptions/listen`` that also leases the streams behind the requested resource URIs."""

    def __init__(self, bus: RedisSubscriptionBus, keeper: LeaseKeeper, base_holder: str) -> None:
        super().__init__(bus)
        self._bus_impl = bus
        self._keeper = keeper
        self._base = base_holder

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        requested = list(params.notifications.resource_subscriptions or [])
        parsed = _parse(requested)
        canon = list(dict.fromkeys(c for _, c, _ in parsed))
        streams = list(dict.fromkeys(s for _, _, ss in parsed for s in ss))
        if requested:
            filt = params.notifications.model_copy(update={"resource_subscriptions": canon})
            params = params.model_copy(update={"notifications": filt})
        holder = new_holder(self._base, "l")
        self._bus_impl.add_interest(canon)
        try:
            if streams:
                try:
                    await self._keeper.acquire(holder, streams)
                except (aioredis.RedisError, OSError) as e:
                    raise _redis_unreachable(e) from e
            return await super().__call__(ctx, params)
        finally:
            self._bus_impl.remove_interest(canon)
            if streams:
                with anyio.CancelScope(shield=True):
                    try:
                        await self._keeper.release(holder)
                    except (aioredis.RedisError, OSError) as e:
                        log.warning("could not release listen leases %s (%s); they lapse", holder, e)


@dataclass
class _Sub:
    conn: Any
    holder: str
    uris: dict[str, str] = field(default_factory=dict)  # canonical -> the client's spelling
    streams: dict[str, set[str]] = field(default_factory=dict)  # canonical uri -> streams leased for it
    pending: dict[str, None] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class LegacySubscriptions:
    """``resources/subscribe`` / ``resources/unsubscribe`` for handshake-era connections."""

    def __init__(self, bus: RedisSubscriptionBus, keeper: LeaseKeeper, base_holder: str) -> None:
        self._bus = bus
        self._keeper = keeper
        self._base = base_holder
        self._subs: dict[int, _Sub] = {}
        self._unsubscribe_bus = bus.subscribe(self.on_event)

    @property
    def connections(self) -> int:
        return len(self._subs)

    def on_event(self, event: ServerEvent) -> None:
        if not isinstance(event, ResourceUpdated):
            return
        for sub in self._subs.values():
            if event.uri in sub.uris:
                sub.pending[event.uri] = None
                sub.wake.set()

    async def subscribe(self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        (orig, canon, streams), = _parse([params.uri])
        conn = session_connection(ctx.session)
        if conn is None or not getattr(conn, "has_standalone_channel", False):
            raise MCPError(INVALID_PARAMS, STATELESS_SUBSCRIBE_HINT, data={"uri": orig})
        sub = self._subs.get(id(conn))
        if sub is None:
            sub = _Sub(conn=conn, holder=new_holder(self._base, "r"))
            self._subs[id(conn)] = sub
            sub.task = asyncio.create_task(self._sender(sub), name=f"binance-mcp-legacy-notify-{sub.holder}")
            conn.exit_stack.push_async_callback(self._drop, id(conn))
        if canon not in sub.uris:
            self._bus.add_interest([canon])
        sub.uris[canon] = orig
        if streams:
            try:
                await self._keeper.acquire(sub.holder, streams)
            except (aioredis.RedisError, OSError) as e:
                raise _redis_unreachable(e) from e
            sub.streams[canon] = set(streams)
        return EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        (_orig, canon, _streams), = _parse([params.uri])
        conn = session_connection(ctx.session)
        sub = self._subs.get(id(conn)) if conn is not None else None
        if sub is None or canon not in sub.uris:
            return EmptyResult()  # unsubscribing from something not subscribed is a no-op
        del sub.uris[canon]
        sub.pending.pop(canon, None)
        self._bus.remove_interest([canon])
        leased = sub.streams.pop(canon, set())
        still = set().union(*sub.streams.values()) if sub.streams else set()
        drop = leased - still
        if drop:
            try:
                await self._keeper.release(sub.holder, drop)
            except (aioredis.RedisError, OSError) as e:
                raise _redis_unreachable(e) from e
        return EmptyResult()

    async def _sender(self, sub: _Sub) -> None:
        while True:
            await sub.wake.wait()
            sub.wake.clear()
            while sub.pending:
                uri = next(iter(sub.pending))
                del sub.pending[uri]
                original = sub.uris.get(uri)
                if original is not None:
                    await sub.conn.send_resource_updated(original)

    async def _drop(self, key: int) -> None:
        sub = self._subs.pop(key, None)
        if sub is None:
            return
        if sub.task is not None:
            await cancel_and_wait(sub.task)
        self._bus.remove_interest(list(sub.uris))
        try:
            await self._keeper.release(sub.holder)
        except (aioredis.RedisError, OSError) as e:
            log.warning("could not release resource leases of %s (%s); they lapse", sub.holder, e)

    async def close(self) -> None:
        for key in list(self._subs):
            await self._drop(key)
        self._unsubscribe_bus()


def install(mcp: MCPServer, bus: RedisSubscriptionBus, keeper: LeaseKeeper, base_holder: str) -> LegacySubscriptions:
    """Register the listen, subscribe and unsubscribe handlers on ``mcp`` (lowlevel server: MCPServer has
    no public hook for resources/subscribe)."""
    low = lowlevel_server(mcp)
    low.add_request_handler(
        "subscriptions/listen", SubscriptionsListenRequestParams, LeasingListenHandler(bus, keeper, base_holder)
    )
    legacy = LegacySubscriptions(bus, keeper, base_holder)
    low.add_request_handler("resources/subscribe", SubscribeRequestParams, legacy.subscribe)
    low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, legacy.unsubscribe)
    return legacy
