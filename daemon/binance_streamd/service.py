"""StreamDaemon: the feed. Reconciles wanted streams from Redis, runs the pool, checks sequences,
backfills gaps, keeps order books, writes everything through one RedisWriter, reports status and health.

Usable standalone (``binance-streamd run``) or embedded (``StreamDaemon(settings, redis=fake).start()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from binance_common.keys import CONTROL_RECONCILE, Keys
from binance_common.redis_conn import make_redis
from binance_common.rest import BinanceRest
from binance_common.settings import Settings
from binance_common.streams import StreamKind, StreamNameError, parse_stream

from .backfill import BackfillError, backfill_trades
from .bookmanager import BookManager
from .connection import WsConnection
from .pool import Pool
from .sequence import NEW, StreamSequencer

log = logging.getLogger(__name__)
RECONCILE_EVERY_S = 2.0
STATUS_EVERY_S = 1.0
FULL_STATUS_EVERY_S = 30.0
FAILED_RETRY_S = 60.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class StreamState:
    name: str
    seq: StreamSequencer
    kind: StreamKind
    state: str = "pending"
    reason: str = ""
    since: int = field(default_factory=now_ms)
    conn: int | None = None
    msgs: int = 0
    dups: int = 0
    last_recv: int = 0
    last_event: int = 0
    gaps_found: int = 0
    gaps_filled: int = 0
    gaps_unfilled: int = 0
    ids_missing: int = 0
    reconnects: int = 0
    held: list[tuple[bytes, int]] | None = None  # live messages held while a backfill runs
    rate_base: int = 0  # msgs at the last rate sample
    rate: float = 0.0


class StreamDaemon:
    def __init__(self, settings: Settings, redis: aioredis.Redis | None = None,
                 rest: BinanceRest | None = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.namespace)
        self._own_redis = redis is None
        self.redis = redis if redis is not None else make_redis(settings)
        self._own_rest = rest is None
        self.rest = rest
        self.states: dict[str, StreamState] = {}
        self.unwanted_since: dict[str, float] = {}
        self.failed_at: dict[str, float] = {}
        self.malformed = 0
        self.started_ms = now_ms()
        self._status_written: dict[str, tuple[Any, ...]] = {}  # stream -> status last written (but "updated")
        self._full_status_at = 0.0
        self._tasks: list[asyncio.Task[Any]] = []
        self._reconcile_now = asyncio.Event()
        self._stopping = False
        self._backfills: set[asyncio.Task[None]] = set()
        self.writer: Any = None
        self.pool: Pool | None = None
        self.books: BookManager | None = None
        self._book_streams: dict[str, str] = {}  # depth@100ms stream -> symbol whose book it feeds
        self._configured_book_streams: set[str] = set()

    # --- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> StreamDaemon:
        from .writer import RedisWriter

        s = self.settings
        if self.rest is None:
            governor = None
            try:
                from binance_common.ratelimit import RedisGovernor

                governor = RedisGovernor(self.redis, self.keys, s)
            except ImportError:
                pass
            self.rest = BinanceRest(s, governor=governor)
        self.writer = RedisWriter(self.redis, self.keys, maxlen=s.history_maxlen, buffer_max=s.redis_buffer_max,
                                  linger_s=s.writer_linger_ms / 1000)
        await self.writer.start()
        self.pool = Pool(s.ws_base_url, self._on_data, self._on_failed, self._on_live,
                         max_per_conn=s.max_streams_per_connection, lifetime_s=s.connection_lifetime_s,
                         stale_after_s=s.stale_after_s, max_delay_s=s.reconnect_max_delay_s,
                         proxy=s.ws_proxy or s.proxy, on_malformed=self._on_malformed,
                         on_reconnect=self._on_reconnect, backpressure=self.writer)
        # Books: always for the configured symbols, and for any leased <s>@depth@100ms stream while it is leased.
        syms = [x.upper() for x in s.order_book_symbols]
        self.books = BookManager(self.rest, syms, top_n=s.order_book_top_n, write=self.writer.set_book)
        self._book_streams = {f"{x.lower()}@depth@100ms": x for x in syms}
        self._configured_book_streams = set(self._book_streams)
        self._pubsub = None
        with contextlib.suppress(RedisError, OSError):
            self._pubsub = self.redis.pubsub()
            await self._pubsub.subscribe(self.keys.control_channel)  # before start() returns: no missed nudge
        self._tasks = [
            asyncio.create_task(self._reconcile_loop(), name="reconcile"),
            asyncio.create_task(self._control_listener(), name="control"),
            asyncio.create_task(self._status_loop(), name="status"),
        ]
        return self

    async def stop(self) -> None:
        """Graceful: stop reading, flush, delete the heartbeat, close."""
        if self._stopping:
            return
        self._stopping = True
        if self.pool is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.pool.close(), 10.0)
        for t in list(self._backfills):
            t.cancel()
        for t in self._tasks:
            t.cancel()
        pending = [*self._tasks, *self._backfills]
        if pending:  # bounded: a task that swallows its cancel (seen with redis-py pub/sub) cannot hang stop
            await asyncio.wait(pending, timeout=3.0)
        if self.books is not None:
            with contextlib.suppress(Exception):
                await self.books.flush()
                await self.books.close()
        if self.writer is not None:
            await self.writer.close()
        with contextlib.suppress(RedisError, OSError):
            await self._write_status(final=True)
            await self.redis.delete(self.keys.heartbeat)
        if self._own_rest and self.rest is not None:
            await self.rest.aclose()
        if self._own_redis:
            with contextlib.suppress(Exception):
                await self.redis.aclose()

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        await self.start()
        try:
            await (stop or asyncio.Event()).wait()
        finally:
            await self.stop()

    # --- wanted streams ------------------------------------------------------------------------------
    def always_on(self) -> set[str]:
        return set(self.settings.streams) | self._configured_book_streams

    async def wanted(self) -> set[str]:
        k = self.keys
        now = now_ms()
        pipe = self.redis.pipeline(transaction=False)
        pipe.zremrangebyscore(k.leases, "-inf", now)
        pipe.zrangebyscore(k.leases, now, "+inf")
        _, members = await pipe.execute()
        out = self.always_on()
        for m in members:
            stream, _ = k.split_lease_member(m.decode() if isinstance(m, bytes) else m)
            out.add(stream)
        return out

    async def reconcile(self) -> None:
        assert self.pool is not None
        try:
            wanted = await self.wanted()
        except (RedisError, OSError) as e:
            log.warning("reconcile: Redis unavailable (%s); keeping current streams", type(e).__name__)
            return
        now = time.monotonic()
        add: list[str] = []
        for name in sorted(wanted):
            if name in self.states and self.states[name].state != "failed":
                self.unwanted_since.pop(name, None)
                continue
            if name in self.failed_at and now - self.failed_at[name] < FAILED_RETRY_S:
                continue
            try:
                spec = parse_stream(name)
            except StreamNameError as e:
                self._fail_state(name, str(e).split(". Allowed")[0])
                continue
            self.states[name] = StreamState(name, StreamSequencer(name), spec.kind)
            self.failed_at.pop(name, None)
            add.append(name)
            if (spec.kind is StreamKind.DEPTH and spec.speed_ms == 100 and spec.symbol and self.books is not None
                    and name not in self._book_streams):
                self._book_streams[name] = spec.symbol
                self.books.add_symbol(spec.symbol)
        if add:
            self.pool.add(add)
        drop: list[str] = []
        for name, st in list(self.states.items()):
            if name in wanted or st.state == "failed":
                continue
            since = self.unwanted_since.setdefault(name, now)
            if now - since >= self.settings.unsubscribe_grace_s:
                drop.append(name)
        if drop:
            self.pool.remove(drop)
            for name in drop:
                self.unwanted_since.pop(name, None)
                st = self.states.pop(name)
                st.state = "unsubscribed"
                sym = self._book_streams.pop(name, None)
                if sym is not None and self.books is not None:
                    await self.books.remove_symbol(sym)
                await self._write_one_status(st)
        always = sorted(self.always_on())
        with contextlib.suppress(RedisError, OSError):
            pipe = self.redis.pipeline(transaction=False)
            pipe.delete(self.keys.always_on)
            if always:
                pipe.sadd(self.keys.always_on, *always)
            await pipe.execute()

    def _fail_state(self, name: str, reason: str) -> None:
        st = self.states.get(name)
        if st is None:
            try:
                kind = parse_stream(name).kind
                st = StreamState(name, StreamSequencer(name), kind)
            except StreamNameError:
                st = StreamState(name, StreamSequencer("x@trade"), StreamKind.TRADE)
            self.states[name] = st
        st.state, st.reason = "failed", reason
        self.failed_at[name] = time.monotonic()

    async def _reconcile_loop(self) -> None:
        while True:
            await self.reconcile()
            self._reconcile_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reconcile_now.wait(), RECONCILE_EVERY_S)

    async def _control_listener(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        while True:
            try:
                if pubsub is None:
                    pubsub = self.redis.pubsub()
                    await pubsub.subscribe(self.keys.control_channel)
                async for msg in pubsub.listen():
                    if msg.get("type") == "message":
                        data = msg.get("data")
                        if (data.decode() if isinstance(data, bytes) else data) == CONTROL_RECONCILE:
                            self._reconcile_now.set()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # Redis went away: resubscribe later, never die
                log.debug("control listener: %s", e)
                pubsub = None
                await asyncio.sleep(1.0)

    # --- data path (hot) -----------------------------------------------------------------------------
    def _on_data(self, conn: WsConnection, stream: str, payload: bytes, recv_ms: int) -> None:
        st = self.states.get(stream)
        if st is None:
            return  # a stream being unsubscribed, or not ours
        try:
            obj = orjson.loads(payload)
            verdict = st.seq.check(obj)
            e = obj.get("E")
        except (orjson.JSONDecodeError, TypeError, ValueError, KeyError, AttributeError):
            self._on_malformed(conn, payload)
            return
        if verdict is NEW and st.held is None and st.state == "live":  # the common case, kept short
            st.conn = conn.id
            st.msgs += 1
            st.last_recv = recv_ms
            if e.__class__ is int:
                st.last_event = e
            self.writer.add(stream, payload, recv_ms)
            if stream in self._book_streams:
                self._on_book_diff(stream, obj, recv_ms)
            return
        if verdict.kind == "duplicate":
            st.dups += 1
            return
        if st.state != "live":
            st.state, st.reason, st.since = "live", "", now_ms()
        st.conn = conn.id
        st.msgs += 1
        st.last_recv = recv_ms
        if e.__class__ is int:
            st.last_event = e
        if verdict.kind == "gap":
            st.gaps_found += 1
            lo, hi = verdict.missing_from or 0, verdict.missing_to or 0
            st.ids_missing += max(0, hi - lo + 1)
            if st.kind in (StreamKind.TRADE, StreamKind.AGG_TRADE):
                st.held = [(payload, recv_ms)]
                t = asyncio.get_running_loop().create_task(self._backfill(st, lo, hi))
                self._backfills.add(t)
                t.add_done_callback(self._backfills.discard)
                return
            st.gaps_unfilled += 1
        if st.held is not None:
            st.held.append((payload, recv_ms))
            return
        self.writer.add(stream, payload, recv_ms)
        if stream in self._book_streams:
            self._on_book_diff(stream, obj, recv_ms)

    def _on_book_diff(self, stream: str, obj: Any, recv_ms: int) -> None:
        if self.books is not None:
            self.books.on_diff_nowait(self._book_streams[stream], obj, recv_ms)

    async def _backfill(self, st: StreamState, lo: int, hi: int) -> None:
        assert self.rest is not None
        try:
            payloads = await backfill_trades(self.rest, st.name, lo, hi)
            for p in payloads:
                self.writer.add(st.name, p, now_ms(), backfill=True)
            got = len(payloads)
            if got == hi - lo + 1:
                st.gaps_filled += 1
            else:
                st.gaps_unfilled += 1
            log.info("%s: gap %d..%d backfilled (%d of %d)", st.name, lo, hi, got, hi - lo + 1)
        except (BackfillError, Exception) as e:
            st.gaps_unfilled += 1
            st.reason = f"gap {lo}..{hi} not backfilled: {e}"
            log.warning("%s: %s", st.name, st.reason)
        finally:
            held, st.held = st.held or [], None
            for payload, recv_ms in held:
                self.writer.add(st.name, payload, recv_ms)

    def _on_malformed(self, conn: WsConnection, frame: bytes | str) -> None:
        self.malformed += 1
        if self.malformed <= 10 or self.malformed % 1000 == 0:
            log.warning("conn %d: malformed frame #%d ignored: %r", conn.id, self.malformed, frame[:120])

    def _on_failed(self, streams: list[str], reason: str) -> None:
        for s in streams:
            self._fail_state(s, reason)
            log.warning("%s: subscription refused: %s", s, reason)

    def _on_live(self, streams: list[str], conn_id: int) -> None:
        for s in streams:
            st = self.states.get(s)
            if st is not None:
                st.conn = conn_id

    def _on_reconnect(self, streams: list[str]) -> None:
        for s in streams:
            st = self.states.get(s)
            if st is not None:
                st.reconnects += 1
            if self.books is not None and s in self._book_streams:
                asyncio.get_running_loop().create_task(self.books.resync(self._book_streams[s]))

    # --- status, heartbeat, stats --------------------------------------------------------------------
    def _status_fields(self, st: StreamState) -> dict[str, Any]:
        return {"state": st.state, "reason": st.reason, "conn": st.conn or "", "since": st.since,
                "last_recv": st.last_recv, "last_event": st.last_event, "msgs": st.msgs, "dups": st.dups,
                "gaps_found": st.gaps_found, "gaps_filled": st.gaps_filled, "gaps_unfilled": st.gaps_unfilled,
                "ids_missing": st.ids_missing, "reconnects": st.reconnects, "rate": round(st.rate, 2),
                "updated": now_ms()}

    async def _write_one_status(self, st: StreamState) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.redis.hset(self.keys.status(st.name), mapping=self._status_fields(st))  # type: ignore[arg-type]

    async def _write_status(self, final: bool = False) -> None:
        """Status of the streams whose status changed (all of them every FULL_STATUS_EVERY_S, which also
        repairs a Redis that lost them), the heartbeat and the stats record: idle streams cost nothing."""
        pipe = self.redis.pipeline(transaction=False)
        full = final or time.monotonic() - self._full_status_at >= FULL_STATUS_EVERY_S
        if full:
            self._full_status_at = time.monotonic()
        written = self._status_written
        for st in self.states.values():
            fields = self._status_fields(st)
            sig = tuple(fields.values())[:-1]  # all but "updated"
            if full or written.get(st.name) != sig:
                written[st.name] = sig
                pipe.hset(self.keys.status(st.name), mapping=fields)  # type: ignore[arg-type]
        if len(written) > 2 * len(self.states) + 100:  # forget streams that are gone
            for name in [n for n in written if n not in self.states]:
                del written[name]
        if not final:
            hb = {"pid": os.getpid(), "host": socket.gethostname(), "started": self.started_ms, "ts": now_ms()}
            pipe.set(self.keys.heartbeat, orjson.dumps(hb), px=int(self.settings.heartbeat_ttl_s * 1000))
        pipe.set(self.keys.daemon_stats, orjson.dumps(self.stats()))
        await pipe.execute()

    async def _status_loop(self) -> None:
        last = time.monotonic()
        while True:
            now = time.monotonic()
            dt = max(1e-3, now - last)
            last = now
            for st in self.states.values():
                st.rate, st.rate_base = (st.msgs - st.rate_base) / dt, st.msgs
            try:
                await self._write_status()
            except (RedisError, OSError):
                pass
            from . import systemd

            systemd.notify("WATCHDOG=1")
            await asyncio.sleep(min(STATUS_EVERY_S, self.settings.heartbeat_ttl_s / 3))

    def stats(self) -> dict[str, Any]:
        pool = self.pool
        conns = []
        if pool is not None:
            for slot in pool.slots:
                c = slot.conn
                conns.append({"slot": slot.id, "conn": c.id if c else None, "streams": len(slot.streams),
                              "age_s": round(c.age_s, 1) if c else 0, "frames": c.frames if c else 0,
                              "control_sent": c.control_sent if c else 0, "reconnects": slot.reconnects,
                              "rotations": slot.rotations, "up": bool(c and not c.closed.is_set()),
                              "paused": c.pauses if c else 0,
                              "paused_s": round(c.paused_s, 2) if c else 0.0})
        now = now_ms()
        lags = [now - st.last_recv for st in self.states.values() if st.last_recv]
        return {
            "pid": os.getpid(), "started": self.started_ms, "ts": now,
            "connections": conns, "connects": pool.connects if pool else 0,
            "streams": {st.name: {"state": st.state, "conn": st.conn, "rate": round(st.rate, 2), "msgs": st.msgs,
                                  "lag_ms": now - st.last_recv if st.last_recv else None,
                                  "gaps_found": st.gaps_found, "gaps_filled": st.gaps_filled,
                                  "reconnects": st.reconnects, "reason": st.reason}
                        for st in self.states.values()},
            "max_silence_ms": max(lags) if lags else None,
            "malformed": self.malformed,
            "writer": self.writer.stats() if self.writer else {},
            "books": self.books.status() if self.books else {},
        }
