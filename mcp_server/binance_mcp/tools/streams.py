"""Stream tools: subscribe to the shared live feed and read it from Redis.

Nothing here opens a WebSocket: subscribing writes a lease (see :mod:`..feed.leases`) that the feed daemon
honours, and every read comes from the keys the daemon writes (see :mod:`..feed`). Every answer built from
stream data carries its freshness (as-of time, age, source, stale flag, subscription state).

Equivalents of the seed system's tools: subscribe_to_{trade,kline,ticker,book_ticker,depth}_stream ->
``subscribe_streams`` (``kind`` + ``symbols`` or stream names); list_active_subscriptions ->
``list_stream_subscriptions``; get_latest_stream_data -> ``get_stream_latest``; unsubscribe_from_stream ->
``unsubscribe_streams``; cleanup_all_streams -> ``unsubscribe_all_streams``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import orjson
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from binance_common.streams import KLINE_INTERVALS, build_stream, validate_stream
from binance_common.timeutil import now_ms

from ..answers.provenance import STATE_NOT_SUBSCRIBED
from ..answers.respond import respond, respond_within
from ..answers.streams import (
    FeedStatus,
    HistoryEntry,
    StreamHistory,
    StreamLatest,
    SubscribeResult,
    SubscriptionInfo,
    SubscriptionList,
    SubscriptionOutcome,
    UnsubscribeResult,
    compact_history,
)
from ..feed.history import MAX_HISTORY_COUNT, MAX_WAIT_S, parse_cursor
from ..feed.leases import holder_for
from ..feed.reader import FeedReader
from .context import (
    READ_ONLY_LOCAL,
    SUBSCRIBE,
    UNSUBSCRIBE,
    SymbolName,
    ToolContext,
    ToolSpec,
)

MAX_STREAMS_PER_CALL = 100
FINAL_STATES = ("live", "failed")

StreamKindName = Literal[
    "trade", "aggTrade", "kline", "miniTicker", "ticker", "rollingTicker", "bookTicker", "avgPrice", "depth",
    "allMiniTickers", "allRollingTickers", "referencePrice", "blockTrade",
]
StreamName = Annotated[str, Field(min_length=1, max_length=64)]


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


def holder_of(tc: ToolContext, ctx: Context | None) -> tuple[str, Literal["process", "session", "pool"]]:
    """The lease holder of this caller and its scope (process, session or pool: see :mod:`..feed.leases`)."""
    return holder_for(ctx, transport=tc.rt.transport, base=tc.rt.holder, keeper=tc.leases)


async def always_on(tc: ToolContext) -> set[str]:
    """Streams the daemon's own configuration keeps (no lease needed)."""
    return {m.decode() if isinstance(m, bytes) else m for m in await tc.r.smembers(tc.keys.always_on)}


async def _unsubscribe_result(
    tc: ToolContext, names: list[str], released: list[str], h: str, scope: Literal["process", "session", "pool"]
) -> UnsubscribeResult:
    leases = await tc.leases.snapshot()
    always = await always_on(tc)
    return UnsubscribeResult(
        released=released,
        not_held=[s for s in names if s not in released],
        still_wanted_by_others=[s for s in released if leases.get(s) or s in always],
        holder=h,
        scope=scope,
    )


async def subscribe_streams(
    tc: ToolContext,
    ctx: Context,
    streams: list[StreamName] = Field(
        default_factory=list,
        max_length=MAX_STREAMS_PER_CALL,
        description="Binance stream names, e.g. ['btcusdt@trade', 'ethusdt@kline_1m', 'btcusdt@depth10@100ms']; "
        "USD-M futures streams take the prefix um:, e.g. 'um:btcusdt@markPrice@1s', 'um:btcusdt@aggTrade', "
        "'um:btcusdt@depth@100ms' (which also keeps the futures book).",
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
    h, scope = holder_of(tc, ctx)
    t0 = now_ms()
    await tc.leases.acquire(h, names)
    alive = await tc.feed.daemon_alive()
    states = await wait_for_states(tc.feed, names, timeout_s=wait_s if alive else 0.0, since_ms=t0)
    latest = await tc.feed.latest_many(names)
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
            lease_ttl_s=tc.settings.lease_ttl_s,
            daemon_alive=alive,
            waited_ms=now_ms() - t0,
            note=note,
        )
    )


async def unsubscribe_streams(
    tc: ToolContext,
    ctx: Context,
    streams: list[StreamName] = Field(
        min_length=1, max_length=MAX_STREAMS_PER_CALL, description="Stream names to release, e.g. ['btcusdt@trade']."
    ),
) -> Annotated[CallToolResult, UnsubscribeResult]:
    """Release your subscriptions to these streams. The feed stops a stream once nobody holds it."""
    names = list(dict.fromkeys(validate_stream(s) for s in streams))
    h, scope = holder_of(tc, ctx)
    released = await tc.leases.release(h, names)
    return respond(await _unsubscribe_result(tc, names, released, h, scope))


async def unsubscribe_all_streams(tc: ToolContext, ctx: Context) -> Annotated[CallToolResult, UnsubscribeResult]:
    """Release every stream subscription you hold (the seed's cleanup_all_streams). Over stateless HTTP
    this releases the subscriptions of every stateless client, which share one pool."""
    h, scope = holder_of(tc, ctx)
    released = await tc.leases.release(h)
    return respond(await _unsubscribe_result(tc, released, released, h, scope))


async def list_stream_subscriptions(
    tc: ToolContext,
    ctx: Context,
    mine_only: bool = Field(False, description="Only streams you hold a lease on."),
    limit: int = Field(200, ge=1, le=1000, description="At most this many streams (yours first)."),
) -> Annotated[CallToolResult, SubscriptionList]:
    """Streams the shared feed carries (leased by any agent, or always-on), each with its status and
    freshness, and whether you hold it."""
    h, scope = holder_of(tc, ctx)
    leases = await tc.leases.snapshot()
    always = sorted(await always_on(tc))
    names = sorted(set(leases) | set(always))
    mine = {s for s, holders in leases.items() if h in holders}
    if mine_only:
        names = [s for s in names if s in mine]
    names.sort(key=lambda s: (s not in mine, s))
    shown = names[:limit]
    latest = await tc.feed.latest_many(shown)
    statuses = await tc.feed.statuses(shown)
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


async def get_stream_latest(
    tc: ToolContext,
    stream: StreamName = Field(description="Stream name, e.g. btcusdt@trade, btcusdt@kline_1m, or a USD-M futures "
                               "stream such as um:btcusdt@markPrice@1s."),
    raw: bool = Field(False, description="Return Binance's raw JSON instead of readable field names."),
) -> Annotated[CallToolResult, StreamLatest]:
    """The latest message of a live stream from the shared feed, with its freshness (as-of time, age,
    source, stale flag, and the subscription state when there is no data yet)."""
    return respond(await tc.feed.latest(validate_stream(stream), raw=raw))


async def get_stream_history(
    tc: ToolContext,
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
    compact: bool = Field(
        False, description="Entries as rows of values under `columns` instead of one object each (about half the text)."
    ),
) -> Annotated[CallToolResult, StreamHistory]:
    """Recent messages of a stream from its capped history (oldest first): the last N, or those after a
    cursor, optionally waiting for new ones. `missed` counts entries the cap trimmed before you read
    them, so a slow reader knows it lost data. At most about 20 KB of text (answer_budget_bytes): a longer
    answer keeps the oldest entries after `since` (next_cursor continues) or, without `since`, the newest,
    and says truncated; compact=true fits about twice as many."""
    name = validate_stream(stream)
    if since is None and wait_s > 0:
        raise ToolError(
            "wait_s needs since: call once without wait_s, then pass the answer's next_cursor as since "
            "to wait for what comes after it"
        )
    cursor = parse_cursor(since) if since is not None else None
    full = await tc.feed.history(name, count=count, since=cursor, wait_s=wait_s, raw=raw)
    entries = full.entries

    def build(kept: Sequence[HistoryEntry]) -> StreamHistory:
        cut = len(entries) - len(kept)
        update: dict[str, Any] = {"truncated": cut > 0, "omitted": cut}
        if cut and cursor is not None:
            update["next_cursor"] = kept[-1].cursor
        if compact:
            update["entries"] = []
            update["columns"], update["rows"] = compact_history(list(kept))
        else:
            update["entries"] = list(kept)
        return full.model_copy(update=update)

    measure = (lambda e: len(orjson.dumps(compact_history([e])[1][0]))) if compact else None
    keep: Literal["first", "last"] = "first" if cursor is not None else "last"
    return respond_within(entries, build, tc.settings.answer_budget_bytes, keep=keep, size_of=measure)


async def get_feed_status(tc: ToolContext) -> Annotated[CallToolResult, FeedStatus]:
    """Health of the shared live feed: daemon heartbeat, connections, lag, streams by state, leases."""
    return respond(await tc.feed.feed_status(embedded=tc.settings.embedded, replica=tc.rt.holder))


TOOLS = (
    ToolSpec(subscribe_streams, "Subscribe to live streams", SUBSCRIBE),
    ToolSpec(unsubscribe_streams, "Unsubscribe from streams", UNSUBSCRIBE),
    ToolSpec(unsubscribe_all_streams, "Release every subscription", UNSUBSCRIBE),
    ToolSpec(list_stream_subscriptions, "List stream subscriptions", READ_ONLY_LOCAL),
    ToolSpec(get_stream_latest, "Latest value of a stream", READ_ONLY_LOCAL),
    ToolSpec(get_stream_history, "Recent messages of a stream", READ_ONLY_LOCAL),
    ToolSpec(get_feed_status, "Feed health", READ_ONLY_LOCAL),
)
