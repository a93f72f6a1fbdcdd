"""Stream tools: subscribe to the shared live feed and read it from Redis.

Nothing here opens a WebSocket: subscribing writes a lease (see :mod:`leases`) that the feed daemon
honours, and every read comes from the keys the daemon writes (see :mod:`feed`). Every answer built from
stream data carries its freshness (as-of time, age, source, stale flag, subscription state).

Equivalents of the seed system's tools: subscribe_to_{trade,kline,ticker,book_ticker,depth}_stream ->
``subscribe_streams`` (``kind`` + ``symbols`` or stream names); list_active_subscriptions ->
``list_stream_subscriptions``; get_latest_stream_data -> ``get_stream_latest``; unsubscribe_from_stream ->
``unsubscribe_streams``; cleanup_all_streams -> ``unsubscribe_all_streams``.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from binance_common.streams import KLINE_INTERVALS, build_stream, validate_stream
from binance_common.timeutil import now_ms

from .errors import tool_errors
from .feed import MAX_HISTORY_COUNT, MAX_WAIT_S, FeedReader, parse_cursor
from .freshness import STATE_NOT_SUBSCRIBED
from .leases import holder_for
from .runtime import Runtime
from .schemas import (
    FeedStatus,
    OrderBookView,
    StreamHistory,
    StreamLatest,
    SubscribeResult,
    SubscriptionInfo,
    SubscriptionList,
    SubscriptionOutcome,
    UnsubscribeResult,
    respond,
)

READ_ONLY_LOCAL = ToolAnnotations(readOnlyHint=True, openWorldHint=False, idempotentHint=True)
SUBSCRIBE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=True)
UNSUBSCRIBE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=False)

MAX_STREAMS_PER_CALL = 100
FINAL_STATES = ("live", "failed")

StreamKindName = Literal[
    "trade", "aggTrade", "kline", "miniTicker", "ticker", "rollingTicker", "bookTicker", "avgPrice", "depth",
    "allMiniTickers", "allRollingTickers",
]
StreamName = Annotated[str, Field(min_length=1, max_length=64)]
SymbolName = Annotated[str, Field(min_length=1, max_length=20)]


def resolve_streams(
    streams: list[str],
    kind: str | None,
    symbols: list[str],
    *,
    interval: str | None = None,
    levels: int | None = None,
    update_speed_ms: int | None = None,
    window: str | None = None,
) -> list[str]:
    """Canonical stream names from explicit names plus ``kind`` x ``symbols``; raises ValueError subclasses."""
    out = [validate_stream(s) for s in streams]
    if kind is not None:
        if kind in ("allMiniTickers", "allRollingTickers"):
            out.append(build_stream(kind, window=window))
        else:
            if not symbols:
                raise ToolError(f"kind={kind!r} needs at least one symbol, e.g. symbols=['BTCUSDT']")
            for sym in symbols:
                out.append(
                    build_stream(
                        kind, sym, interval=interval, levels=levels, speed_ms=update_speed_ms, window=window
                    )
                )
    elif symbols:
        raise ToolError("symbols were given without kind; add kind (e.g. 'trade') or pass full stream names")
    out = list(dict.fromkeys(out))
    if not out:
        raise ToolError(
            "nothing to subscribe: pass streams (e.g. ['btcusdt@trade']) or kind + symbols "
            "(e.g. kind='kline', symbols=['BTCUSDT'], interval='1m')"
        )
    if len(out) > MAX_STREAMS_PER_CALL:
        raise ToolError(f"{len(out)} streams in one call; at most {MAX_STREAMS_PER_CALL} are allowed")
    return out


async def wait_for_states(
    reader: FeedReader, streams: list[str], *, timeout_s: float, since_ms: int
) -> dict[str, tuple[str, str | None]]:
    """Poll the daemon's status of ``streams`` until each is live or failed, or ``timeout_s`` passes.

    A ``failed`` recorded before ``since_ms`` (an earlier attempt) only counts after a short grace, since the
    daemon retries a stream it is asked for again.
    """
    deadline = asyncio.get_running_loop().time() + timeout_s
    stale_failure_grace = min(1.0, timeout_s)
    start = asyncio.get_running_loop().time()
    delay = 0.02
    result: dict[str, tuple[str, str | None]] = {}
    while True:
        statuses = await reader.statuses(streams)
        now = asyncio.get_running_loop().time()
        done = True
        for s, st in statuses.items():
            state = st.state
            if state == "failed" and (st.since_ms or since_ms) < since_ms and now - start < stale_failure_grace:
                state = "pending"
            if state not in FINAL_STATES:
                state, done = "pending", False
            result[s] = (state, st.reason)
        if done or now >= deadline:
            return result
        await asyncio.sleep(min(delay, max(0.0, deadline - now)))
        delay = min(delay * 1.5, 0.25)


def register(mcp: MCPServer, rt: Runtime) -> None:
    def reader() -> FeedReader:
        return rt.feed

    def holder(ctx: Context | None) -> tuple[str, Literal["process", "session", "pool"]]:
        return holder_for(ctx, transport=rt.transport, base=rt.holder, keeper=rt.leases)

    @mcp.tool(name="subscribe_streams", title="Subscribe to live streams", annotations=SUBSCRIBE)
    @tool_errors
    async def subscribe_streams(
        ctx: Context,
        streams: list[StreamName] = Field(
            default_factory=list,
            max_length=MAX_STREAMS_PER_CALL,
            description="Binance stream names, e.g. ['btcusdt@trade', 'ethusdt@kline_1m', 'btcusdt@depth10@100ms'].",
        ),
        kind: StreamKindName | None = Field(
            None,
            description="Instead of names: the stream type for every symbol in `symbols` (trade, aggTrade, "
            "kline, miniTicker, ticker, rollingTicker, bookTicker, avgPrice, depth; allMiniTickers and "
            "allRollingTickers need no symbol).",
        ),
        symbols: list[SymbolName] = Field(
            default_factory=list, max_length=MAX_STREAMS_PER_CALL, description="Pairs for `kind`, e.g. ['BTCUSDT']."
        ),
        interval: str | None = Field(None, description=f"Kline interval for kind=kline: {' '.join(KLINE_INTERVALS)}."),
        levels: Literal[5, 10, 20] | None = Field(
            None, description="kind=depth: 5, 10 or 20 gives a partial book; omit for the diff stream."
        ),
        update_speed_ms: Literal[100, 1000] | None = Field(None, description="kind=depth: 100 or 1000 (default)."),
        window: Literal["1h", "4h", "1d"] | None = Field(None, description="kind=rollingTicker/allRollingTickers."),
        wait_s: float = Field(
            10.0, ge=0, le=MAX_WAIT_S, description="How long to wait for each stream to go live or fail, s."
        ),
    ) -> Annotated[CallToolResult, SubscribeResult]:
        """Subscribe to live Binance streams through the shared feed (several at once).

        Records a lease the server renews while you stay connected, then waits (bounded) until each stream
        is live or failed and says which. Read data with get_stream_latest / get_stream_history /
        get_live_order_book. Replaces subscribe_to_trade/kline/ticker/book_ticker/depth_stream."""
        names = resolve_streams(
            streams, kind, symbols, interval=interval, levels=levels, update_speed_ms=update_speed_ms, window=window
        )
        h, scope = holder(ctx)
        t0 = now_ms()
        await rt.leases.acquire(h, names)
        alive = await reader().daemon_alive()
        states = await wait_for_states(reader(), names, timeout_s=wait_s if alive else 0.0, since_ms=t0)
        latest = await reader().latest_many(names)
        outcomes = []
        for s in names:
            fr = latest[s].freshness
            if fr.state == STATE_NOT_SUBSCRIBED:  # leased a moment ago; the daemon has not written a status yet
                fr = fr.model_copy(update={"state": "pending"})
            outcomes.append(SubscriptionOutcome(stream=s, state=states[s][0], reason=states[s][1], freshness=fr))
        counts = {k: sum(1 for o in outcomes if o.state == k) for k in ("live", "failed", "pending")}
        note = None
        if not alive:
            note = (
                "the feed daemon is not running (no heartbeat): the subscription is recorded and will be "
                "served when binance-streamd starts"
            )
        elif counts["pending"]:
            note = f"{counts['pending']} stream(s) still pending after {wait_s:g} s; check again with list_stream_subscriptions"
        return respond(
            SubscribeResult(
                subscriptions=outcomes,
                **counts,
                holder=h,
                scope=scope,
                lease_ttl_s=rt.settings.lease_ttl_s,
                daemon_alive=alive,
                waited_ms=now_ms() - t0,
                note=note,
            )
        )

    @mcp.tool(name="unsubscribe_streams", title="Unsubscribe from streams", annotations=UNSUBSCRIBE)
    @tool_errors
    async def unsubscribe_streams(
        ctx: Context,
        streams: list[StreamName] = Field(
            min_length=1, max_length=MAX_STREAMS_PER_CALL, description="Stream names to release, e.g. ['btcusdt@trade']."
        ),
    ) -> Annotated[CallToolResult, UnsubscribeResult]:
        """Release your subscriptions to these streams. The feed stops a stream once nobody holds it."""
        names = list(dict.fromkeys(validate_stream(s) for s in streams))
        h, scope = holder(ctx)
        released = await rt.leases.release(h, names)
        return respond(await _unsubscribe_result(names, released, h, scope))

    @mcp.tool(name="unsubscribe_all_streams", title="Release every subscription", annotations=UNSUBSCRIBE)
    @tool_errors
    async def unsubscribe_all_streams(ctx: Context) -> Annotated[CallToolResult, UnsubscribeResult]:
        """Release every stream subscription you hold (the seed's cleanup_all_streams). Over stateless HTTP
        this releases the subscriptions of every stateless client, which share one pool."""
        h, scope = holder(ctx)
        released = await rt.leases.release(h)
        return respond(await _unsubscribe_result(released, released, h, scope))

    async def _unsubscribe_result(
        names: list[str], released: list[str], h: str, scope: Literal["process", "session", "pool"]
    ) -> UnsubscribeResult:
        leases = await rt.leases.snapshot()
        always = {m.decode() if isinstance(m, bytes) else m for m in await rt.r.smembers(rt.keys.always_on)}
        return UnsubscribeResult(
            released=released,
            not_held=[s for s in names if s not in released],
            still_wanted_by_others=[s for s in released if leases.get(s) or s in always],
            holder=h,
            scope=scope,
        )

    @mcp.tool(name="list_stream_subscriptions", title="List stream subscriptions", annotations=READ_ONLY_LOCAL)
    @tool_errors
    async def list_stream_subscriptions(
        ctx: Context,
        mine_only: bool = Field(False, description="Only streams you hold a lease on."),
        limit: int = Field(200, ge=1, le=1000, description="At most this many streams (yours first)."),
    ) -> Annotated[CallToolResult, SubscriptionList]:
        """Streams the shared feed carries (leased by any agent, or always-on), each with its status and
        freshness, and whether you hold it."""
        h, scope = holder(ctx)
        leases = await rt.leases.snapshot()
        always = sorted(m.decode() if isinstance(m, bytes) else m for m in await rt.r.smembers(rt.keys.always_on))
        names = sorted(set(leases) | set(always))
        mine = {s for s, holders in leases.items() if h in holders}
        if mine_only:
            names = [s for s in names if s in mine]
        names.sort(key=lambda s: (s not in mine, s))
        shown = names[:limit]
        latest = await reader().latest_many(shown)
        statuses = await reader().statuses(shown)
        infos = [
            SubscriptionInfo(
                stream=s,
                yours=s in mine,
                holders=len(leases.get(s, {})),
                always_on=s in always,
                lease_expires_ms=max(leases[s].values()) if leases.get(s) else None,
                status=statuses[s],
                freshness=latest[s].freshness,
            )
            for s in shown
        ]
        return respond(
            SubscriptionList(subscriptions=infos, total=len(names), truncated=len(names) > limit, holder=h, scope=scope)
        )

    @mcp.tool(name="get_stream_latest", title="Latest value of a stream", annotations=READ_ONLY_LOCAL)
    @tool_errors
    async def get_stream_latest(
        stream: StreamName = Field(description="Stream name, e.g. btcusdt@trade or btcusdt@kline_1m."),
        raw: bool = Field(False, description="Return Binance's raw JSON instead of readable field names."),
    ) -> Annotated[CallToolResult, StreamLatest]:
        """The latest message of a live stream from the shared feed, with its freshness (as-of time, age,
        source, stale flag, and the subscription state when there is no data yet)."""
        return respond(await reader().latest(validate_stream(stream), raw=raw))

    @mcp.tool(name="get_stream_history", title="Recent messages of a stream", annotations=READ_ONLY_LOCAL)
    @tool_errors
    async def get_stream_history(
        stream: StreamName = Field(description="Stream name, e.g. btcusdt@aggTrade."),
        count: int = Field(100, ge=1, le=MAX_HISTORY_COUNT, description="At most this many entries."),
        since: str | None = Field(
            None,
            max_length=64,
            description="Cursor: return entries after it (the next_cursor of a previous answer; '0' = oldest "
            "kept). Omit for the last `count` entries.",
        ),
        wait_s: float = Field(
            0.0, ge=0, le=MAX_WAIT_S, description="With `since`: wait up to this long for a new entry, s."
        ),
        raw: bool = Field(False, description="Return Binance's raw JSON instead of readable field names."),
    ) -> Annotated[CallToolResult, StreamHistory]:
        """Recent messages of a stream from its capped history (oldest first): the last N, or those after a
        cursor, optionally waiting for new ones. `missed` counts entries the cap trimmed before you read
        them, so a slow reader knows it lost data."""
        name = validate_stream(stream)
        if since is None and wait_s > 0:
            raise ToolError(
                "wait_s needs since: call once without wait_s, then pass the answer's next_cursor as since "
                "to wait for what comes after it"
            )
        cursor = parse_cursor(since) if since is not None else None
        return respond(await reader().history(name, count=count, since=cursor, wait_s=wait_s, raw=raw))

    @mcp.tool(name="get_live_order_book", title="Live order book", annotations=READ_ONLY_LOCAL)
    @tool_errors
    async def get_live_order_book(
        symbol: SymbolName = Field(description="Trading pair, e.g. BTCUSDT."),
        levels: int = Field(10, ge=1, le=1000, description="Price levels per side to return."),
        band_pct: float = Field(
            1.0, gt=0, le=50, description="Depth is summed within this percentage of the mid price."
        ),
    ) -> Annotated[CallToolResult, OrderBookView]:
        """Top levels of the locally maintained order book, spread, and depth within a price band, from the
        feed (no REST weight). Needs the symbol's book kept by the daemon."""
        return respond(await reader().book(symbol, levels=levels, band_pct=Decimal(str(band_pct))))

    @mcp.tool(name="get_feed_status", title="Feed health", annotations=READ_ONLY_LOCAL)
    @tool_errors
    async def get_feed_status() -> Annotated[CallToolResult, FeedStatus]:
        """Health of the shared live feed: daemon heartbeat, connections, lag, streams by state, leases."""
        return respond(await reader().feed_status(embedded=rt.settings.embedded, replica=rt.holder))

