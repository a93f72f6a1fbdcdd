"""Read the feed the daemon keeps in Redis: latest values, capped histories, books, statuses, health.

One :class:`FeedReader` per replica; tools and resources share it. It only reads (leases are written by
:mod:`leases`). Every read that feeds one answer is a single round trip (a pipeline), and every answer
carries a :class:`~binance_mcp.freshness.Freshness`. Inputs are validated by the callers (stream names via
``binance_common.streams``, cursors via :func:`parse_cursor`) before any key is built.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import orjson
import redis.asyncio as aioredis

from binance_common.feedstore import BookState, GapEntry, decode_book, decode_history
from binance_common.keys import Keys
from binance_common.models import event_time_ms, parse_payload
from binance_common.streams import normalize_symbol
from binance_common.timeutil import now_ms

from .freshness import BOOK_STALE_AFTER_MS, STATE_NOT_SUBSCRIBED, Freshness, freshness, iso_ms, stale_after_ms
from .schemas import (
    BandDepth,
    BookLevel,
    FeedStatus,
    GapInfo,
    HistoryEntry,
    OrderBookView,
    StreamHistory,
    StreamLatest,
    StreamProblem,
    StreamStatus,
)

MAX_HISTORY_COUNT = 1000
MAX_WAIT_S = 30.0
_CURSOR_RE = re.compile(r"^(\d{1,15})-(\d{1,12})(?::(\d{1,15}))?$")


class FeedError(ValueError):
    """A request the feed cannot answer (no such data, bad cursor); the message says what to do."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a stream's history: the Redis entry id and, when known, its 1-based sequence number
    (how many entries had been added up to and including it), which lets a reader count trimmed entries."""

    ms: int
    seq: int
    n: int | None = None

    @property
    def entry_id(self) -> str:
        return f"{self.ms}-{self.seq}"

    def __str__(self) -> str:
        return self.entry_id if self.n is None else f"{self.entry_id}:{self.n}"


def parse_cursor(text: str) -> Cursor:
    """``"1700000000000-0:42"`` (as returned by the history tool), a bare Redis id, or ``"0"`` (the start)."""
    if not isinstance(text, str):
        raise FeedError("cursor must be a string")
    t = text.strip()
    if t in ("0", "0-0"):
        return Cursor(0, 0, 0)
    m = _CURSOR_RE.match(t)
    if not m:
        raise FeedError(
            f"invalid cursor {text[:60]!r}: pass the next_cursor of a previous history answer "
            "(e.g. 1700000000000-0:42), a Redis stream id (1700000000000-0), or 0 for the oldest entry"
        )
    return Cursor(int(m.group(1)), int(m.group(2)), int(m.group(3)) if m.group(3) else None)


def _id_tuple(entry_id: bytes | str) -> tuple[int, int]:
    s = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    a, _, b = s.partition("-")
    return int(a), int(b or 0)


def _s(v: Any) -> str | None:
    if v is None:
        return None
    return v.decode() if isinstance(v, bytes) else str(v)


def _i(v: Any) -> int | None:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def plain_decimal(d: Decimal) -> str:
    """A decimal as positional notation with every digit kept (``Decimal("1E-8")`` -> ``"0.00000001"``)."""
    return format(d, "f")


def to_jsonable(obj: Any) -> Any:
    """Recursively turn Decimals into exact positional strings (pydantic would emit ``1E-8``)."""
    if isinstance(obj, Decimal):
        return plain_decimal(obj)
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    return obj


def decode_payload(stream: str, data: Any) -> tuple[Any, bool]:
    """(readable model dump, True), or (the raw payload, False) when it does not fit the model."""
    try:
        parsed = parse_payload(stream, data)
    except (ValueError, TypeError, KeyError):
        return data, False
    if isinstance(parsed, list):
        return [to_jsonable(p.model_dump()) for p in parsed], True
    return to_jsonable(parsed.model_dump()), True


def status_model(h: Mapping[Any, Any] | None) -> StreamStatus:
    if not h:
        return StreamStatus(state=STATE_NOT_SUBSCRIBED)
    g = {(_s(k) or ""): v for k, v in h.items()}
    return StreamStatus(
        state=_s(g.get("state")) or STATE_NOT_SUBSCRIBED,
        reason=_s(g.get("reason")) or None,
        since_ms=_i(g.get("since")),
        last_recv_ms=_i(g.get("last_recv")),
        msgs=_i(g.get("msgs")),
        gaps_found=_i(g.get("gaps_found")),
        gaps_filled=_i(g.get("gaps_filled")),
        reconnects=_i(g.get("reconnects")),
        connection=_s(g.get("conn")) or None,
    )


class FeedReader:
    """Read-only access to the feed for one replica."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        history_cap: int,
        blocking: aioredis.Redis | None = None,
        max_blocking: int = 128,
    ) -> None:
        self.r = redis
        self.keys = keys
        self.history_cap = history_cap
        self._blocking = blocking or redis
        self._block_slots = asyncio.Semaphore(max_blocking)

    # --- latest ----------------------------------------------------------------------------------
    async def latest(self, stream: str, *, raw: bool = False) -> StreamLatest:
        pipe = self.r.pipeline(transaction=False)
        pipe.get(self.keys.latest(stream))
        pipe.hgetall(self.keys.status(stream))
        blob, status = await pipe.execute()
        return self.latest_from(stream, blob, status_model(status), raw=raw)

    @staticmethod
    def latest_from(stream: str, blob: bytes | None, status: StreamStatus, *, raw: bool = False) -> StreamLatest:
        threshold = stale_after_ms(stream)
        if blob is None:
            fr = freshness(
                now_ms=now_ms(), threshold_ms=threshold, received_ms=None, state=status.state, reason=status.reason
            )
            return StreamLatest(stream=stream, data=None, decoded=False, freshness=fr)
        env = orjson.loads(blob)
        payload = env.get("d")
        fr = freshness(
            now_ms=now_ms(),
            threshold_ms=threshold,
            received_ms=int(env.get("r") or 0),
            state=status.state,
            reason=status.reason,
            event_time_ms=event_time_ms(payload),
        )
        if raw:
            return StreamLatest(stream=stream, data=payload, decoded=False, freshness=fr)
        data, ok = decode_payload(stream, payload)
        return StreamLatest(stream=stream, data=data, decoded=ok, freshness=fr)

    async def statuses(self, streams: list[str]) -> dict[str, StreamStatus]:
        if not streams:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for s in streams:
            pipe.hgetall(self.keys.status(s))
        rows = await pipe.execute()
        return {s: status_model(h) for s, h in zip(streams, rows, strict=True)}

    async def latest_many(self, streams: list[str]) -> dict[str, StreamLatest]:
        """Latest value and status of many streams in one round trip."""
        if not streams:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for s in streams:
            pipe.get(self.keys.latest(s))
            pipe.hgetall(self.keys.status(s))
        rows = await pipe.execute()
        out: dict[str, StreamLatest] = {}
        for i, s in enumerate(streams):
            out[s] = self.latest_from(s, rows[2 * i], status_model(rows[2 * i + 1]))
        return out

    # --- history ---------------------------------------------------------------------------------
    async def history(
        self, stream: str, *, count: int, since: Cursor | None, wait_s: float, raw: bool = False
    ) -> StreamHistory:
        """Last ``count`` entries, or the entries after ``since`` (waiting up to ``wait_s`` for one)."""
        key = self.keys.history(stream)
        waited = 0
        if since is None:
            result = await self._last_n(key, count)
        else:
            result = await self._after(stream, key, since, count)
            if not result[0] and wait_s > 0:
                t0 = now_ms()
                await self._wait_for_entry(key, result[4] or since.entry_id, wait_s)
                waited = now_ms() - t0
                result = await self._after(stream, key, since, count)
        rows, first_n, missed, retained, end_cursor = result
        status = status_model(await self.r.hgetall(self.keys.status(stream)))
        entries: list[HistoryEntry] = []
        for i, (eid, fields) in enumerate(rows):
            ms, seq = _id_tuple(eid)
            cursor = str(Cursor(ms, seq, first_n + i if first_n is not None else None))
            entry = decode_history(fields)
            if isinstance(entry, GapEntry):
                gap = GapInfo(from_id=entry.from_id, to_id=entry.to_id, reason=entry.reason)
                entries.append(HistoryEntry(cursor=cursor, received_ms=entry.received_ms or ms, source="gap",
                                            data=None, gap=gap))
                continue
            data = entry.payload if raw else decode_payload(stream, entry.payload)[0]
            entries.append(HistoryEntry(cursor=cursor, received_ms=entry.received_ms or ms,
                                        source="rest" if entry.backfilled else "ws", data=data))
        if entries:
            last = entries[-1]
            next_cursor: str | None = last.cursor
            fr = freshness(
                now_ms=now_ms(),
                threshold_ms=stale_after_ms(stream),
                received_ms=last.received_ms,
                state=status.state,
                reason=status.reason,
                source="rest" if last.source == "gap" else last.source,
            )
        else:
            next_cursor = end_cursor if since is None else str(since)
            fr = freshness(
                now_ms=now_ms(),
                threshold_ms=stale_after_ms(stream),
                received_ms=None,
                state=status.state,
                reason=status.reason,
            )
        return StreamHistory(
            stream=stream,
            entries=entries,
            next_cursor=next_cursor,
            missed=missed,
            retained=retained,
            cap=self.history_cap,
            waited_ms=waited,
            freshness=fr,
        )

    async def _wait_for_entry(self, key: str, after_id: str, wait_s: float) -> None:
        """XREAD BLOCK until an entry after ``after_id`` exists or ``wait_s`` passes (a bounded number of
        waiters per replica; one that finds no free slot in time just returns)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        try:
            await asyncio.wait_for(self._block_slots.acquire(), wait_s)
        except TimeoutError:
            return
        try:
            left_ms = int((deadline - loop.time()) * 1000)
            if left_ms > 0:
                await self._blocking.xread({key: after_id}, count=1, block=left_ms)
        finally:
            self._block_slots.release()

    @staticmethod
    def _xinfo(info: Any) -> tuple[int, int, tuple[int, int] | None, tuple[int, int] | None]:
        """(entries-added, length, first id, last id) from an XINFO STREAM answer."""
        d = {(_s(k) or ""): v for k, v in info.items()}
        length = int(d.get("length") or 0)
        added = int(d.get("entries-added") or length)
        first = d.get("first-entry")
        last = d.get("last-entry")
        return added, length, _id_tuple(first[0]) if first else None, _id_tuple(last[0]) if last else None

    async def _last_n(self, key: str, count: int) -> tuple[list[Any], int | None, int | None, int, str | None]:
        """The newest ``count`` entries: (rows oldest first, sequence number of the first row, missed,
        retained, cursor of the stream's end)."""
        pipe = self.r.pipeline(transaction=True)
        pipe.xinfo_stream(key)
        pipe.xrevrange(key, "+", "-", count=count)
        info, rows = await pipe.execute(raise_on_error=False)
        if isinstance(info, Exception) or not info:  # no such key: nothing recorded yet
            return [], None, 0, 0, None
        added, length, _first, last = self._xinfo(info)
        rows = list(reversed(rows))
        end = str(Cursor(last[0], last[1], added)) if last else None
        return rows, (added - len(rows) + 1 if rows else None), 0, length, end

    async def _after(
        self, stream: str, key: str, since: Cursor, count: int
    ) -> tuple[list[Any], int | None, int | None, int, str | None]:
        """Entries after ``since``: (rows, sequence number of the first row, missed, retained, id to block on)."""
        at_start = since.ms == 0 and since.seq == 0
        pipe = self.r.pipeline(transaction=True)
        pipe.xinfo_stream(key)
        pipe.xrange(key, f"({since.entry_id}", "+", count=count)
        pipe.xrange(key, since.entry_id, since.entry_id, count=1)
        info, rows, exact = await pipe.execute(raise_on_error=False)
        if isinstance(info, Exception) or not info:
            raise FeedError(
                f"no history for {stream}: the stream is not in the feed yet (subscribe to it first; the "
                "latest-value tool shows its state)"
            )
        added, length, first, last = self._xinfo(info)
        cur = (since.ms, since.seq)
        if last is not None and cur > last:
            raise FeedError(
                f"cursor {since} is after the last entry of {stream} ({last[0]}-{last[1]}), so it names no "
                "entry; pass the next_cursor of a previous answer"
            )
        if since.n is not None and not at_start and since.n > added:
            raise FeedError(
                f"cursor {since} does not belong to the current history of {stream} (it counts {since.n} "
                f"entries, the stream has had {added}): the history was reset; read again without since"
            )
        first_seq = added - length + 1  # sequence number of the oldest retained entry
        if first is not None and not at_start and cur >= first:
            if not exact:
                raise FeedError(
                    f"cursor {since} does not name an entry of {stream}; pass the next_cursor of a previous answer"
                )
            missed: int | None = 0
            if since.n is not None:
                first_n: int | None = since.n + 1
            elif len(rows) < count:  # every entry after the cursor was returned
                first_n = added - len(rows) + 1
            else:
                first_n = None
        else:
            # The cap trimmed the cursor (or it is the start): rows begin at the oldest retained entry.
            first_n = first_seq
            missed = max(0, first_seq - since.n - 1) if since.n is not None else None
        block_from = f"{last[0]}-{last[1]}" if last else since.entry_id
        return rows, (first_n if rows else None), missed, length, block_from

    # --- order book ------------------------------------------------------------------------------
    async def book(self, symbol: str, *, levels: int, band_pct: Decimal) -> OrderBookView:
        sym = normalize_symbol(symbol)
        lower = sym.lower()
        pipe = self.r.pipeline(transaction=False)
        pipe.get(self.keys.book(sym))
        pipe.hget(self.keys.status(f"{lower}@depth@100ms"), "state")
        pipe.hget(self.keys.status(f"{lower}@depth"), "state")
        blob, st100, st1000 = await pipe.execute()
        state = _s(st100) or _s(st1000)
        value = decode_book(blob)
        if value is None:
            raise FeedError(
                f"no live order book for {sym} yet (its depth stream state: {state or STATE_NOT_SUBSCRIBED}): "
                f"the feed keeps local books for BINANCE_MCP_ORDER_BOOK_SYMBOLS and for every subscribed "
                f"{lower}@depth@100ms stream. Subscribe to {lower}@depth@100ms (subscribe_streams) and ask again "
                "in a second, or use the REST order-book tool"
            )
        if value.state is BookState.UNSUBSCRIBED:
            raise FeedError(
                f"the feed no longer keeps the order book of {sym} (nothing subscribes {lower}@depth@100ms); "
                f"subscribe to it (subscribe_streams) or use the REST order-book tool (get_order_book)"
            )
        if not value.live:
            since = f" since {iso_ms(value.since)} ({max(0, now_ms() - value.since) / 1000:.1f} s)" if value.since else ""
            raise FeedError(
                f"the order book of {sym} is resyncing{since}: after a reconnect, a restart or missed updates the "
                "feed serves a book only once its continuity is proven again (usually within a second or two). "
                "Use the REST order-book tool (get_order_book) meanwhile, or ask again shortly"
            )
        return book_view(sym, orjson.loads(blob), levels=levels, band_pct=band_pct, state=state)

    # --- health ----------------------------------------------------------------------------------
    async def heartbeat(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        pipe = self.r.pipeline(transaction=False)
        pipe.get(self.keys.heartbeat)
        pipe.get(self.keys.daemon_stats)
        hb, stats = await pipe.execute()
        return _json_or_none(hb), _json_or_none(stats)

    async def daemon_alive(self) -> bool:
        return bool(await self.r.exists(self.keys.heartbeat))

    async def feed_status(self, *, embedded: bool, replica: str) -> FeedStatus:
        hb, stats = await self.heartbeat()
        now = now_ms()
        pipe = self.r.pipeline(transaction=False)
        pipe.zrangebyscore(self.keys.leases, now, "+inf")
        pipe.scard(self.keys.always_on)
        members, always_on = await pipe.execute()
        leased = {(_s(m) or "").partition(" ")[0] for m in members}
        by_state: dict[str, int] = {}
        problems: list[StreamProblem] = []
        status_keys = [k async for k in self.r.scan_iter(match=self.keys.status_pattern, count=1000)]
        if status_keys:
            pipe = self.r.pipeline(transaction=False)
            for k in status_keys:
                pipe.hmget(k, "state", "reason")
            rows = await pipe.execute()
            for k, (state, reason) in zip(status_keys, rows, strict=True):
                st = _s(state) or "unknown"
                by_state[st] = by_state.get(st, 0) + 1
                if st in ("failed", "pending") and len(problems) < 50:
                    stream = self.keys.stream_from_status_key(_s(k) or "")
                    problems.append(StreamProblem(stream=stream, state=st, reason=_s(reason)))
        hb_ts = _i((hb or {}).get("ts"))
        return FeedStatus(
            daemon_alive=hb is not None,
            heartbeat=hb,
            heartbeat_age_ms=max(0, now - hb_ts) if hb_ts else None,
            stats=summarize_stats(stats),
            streams_by_state=by_state,
            leased_streams=len(leased),
            leases=len(members),
            always_on=int(always_on or 0),
            problems=sorted(problems, key=lambda p: p.stream),
            embedded=embedded,
            replica=replica,
            redis_ok=True,
        )


def summarize_stats(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    """The daemon's stats without the per-stream table (which grows with the stream count; per-stream figures
    are in each stream's status), with connection counts added."""
    if stats is None:
        return None
    out = {k: v for k, v in stats.items() if k != "streams"}
    per_stream = stats.get("streams")
    if isinstance(per_stream, dict):
        out["streams"] = len(per_stream)
    conns = stats.get("connections")
    if isinstance(conns, list):
        out["connections_up"] = sum(1 for c in conns if isinstance(c, dict) and c.get("up"))
    return out


def _json_or_none(blob: bytes | None) -> dict[str, Any] | None:
    if blob is None:
        return None
    try:
        v = orjson.loads(blob)
    except orjson.JSONDecodeError:
        return None
    return v if isinstance(v, dict) else {"value": v}


def _dec(x: Any) -> Decimal:
    return Decimal(str(x))


def book_view(
    symbol: str, book: dict[str, Any], *, levels: int, band_pct: Decimal, state: str | None
) -> OrderBookView:
    """Top levels, spread and depth within ``band_pct`` % of the mid price. Exact decimal arithmetic."""
    try:
        bids = [(_dec(p), _dec(q), str(p), str(q)) for p, q in book.get("bids") or []]
        asks = [(_dec(p), _dec(q), str(p), str(q)) for p, q in book.get("asks") or []]
    except (InvalidOperation, ValueError, TypeError) as e:
        raise FeedError(f"order book for {symbol} is malformed in the feed store: {e}") from e
    bids.sort(key=lambda x: x[0], reverse=True)
    asks.sort(key=lambda x: x[0])
    best_bid = bids[0][0] if bids else None
    best_ask = asks[0][0] if asks else None
    mid = spread = bps = None
    depth = None
    if best_bid is not None and best_ask is not None:
        mid = (best_bid + best_ask) / 2
        spread = best_ask - best_bid
        if mid > 0:
            bps = (spread / mid * 10_000).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
            frac = band_pct / 100
            low, high = mid * (1 - frac), mid * (1 + frac)
            in_b = [(p, q) for p, q, _, _ in bids if p >= low]
            in_a = [(p, q) for p, q, _, _ in asks if p <= high]
            depth = BandDepth(
                band_pct=plain_decimal(band_pct),
                low=plain_decimal(low.normalize()),
                high=plain_decimal(high.normalize()),
                bid_quantity=plain_decimal(sum((q for _, q in in_b), Decimal(0))),
                bid_notional=plain_decimal(sum((p * q for p, q in in_b), Decimal(0))),
                ask_quantity=plain_decimal(sum((q for _, q in in_a), Decimal(0))),
                ask_notional=plain_decimal(sum((p * q for p, q in in_a), Decimal(0))),
                bid_levels=len(in_b),
                ask_levels=len(in_a),
            )
    asof = _i(book.get("asof")) or _i(book.get("E"))
    fr = freshness(
        now_ms=now_ms(),
        threshold_ms=BOOK_STALE_AFTER_MS,
        received_ms=asof,
        state=state or "live",
        event_time_ms=_i(book.get("E")),
    )
    return OrderBookView(
        symbol=symbol,
        last_update_id=_i(book.get("lastUpdateId")),
        bids=[BookLevel(price=ps, quantity=qs) for _, _, ps, qs in bids[:levels]],
        asks=[BookLevel(price=ps, quantity=qs) for _, _, ps, qs in asks[:levels]],
        best_bid=bids[0][2] if bids else None,
        best_ask=asks[0][2] if asks else None,
        mid=plain_decimal(mid.normalize()) if mid is not None else None,
        spread=plain_decimal(spread) if spread is not None else None,
        spread_bps=plain_decimal(bps) if bps is not None else None,
        depth=depth,
        levels_available={"bids": len(bids), "asks": len(asks)},
        freshness=fr,
    )


def freshness_for(stream: str, latest: StreamLatest | None, status: StreamStatus) -> Freshness:
    """Freshness of a stream from its latest value (or lack of one) and status."""
    if latest is not None:
        return latest.freshness
    return freshness(
        now_ms=now_ms(), threshold_ms=stale_after_ms(stream), received_ms=None, state=status.state, reason=status.reason
    )
