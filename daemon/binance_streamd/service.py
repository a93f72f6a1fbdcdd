"""StreamDaemon: leadership, and the feed it runs while it leads.

One daemon leads a namespace at a time (:mod:`leadership`); the others stand by. A *term* of leadership
runs the feed: the REST queue, the writer (fenced by the term's token), the connection pool, the data path,
the order books, the reconciler and the reporter. A term starts from what Redis holds (each trade stream
resumes from its stored history and catches up through REST), so a restart, a ``kill -9`` or a standby's
takeover continues the feed where Redis says it stopped. Losing the leadership to another daemon ends the
term at once and drops what was not written (the new leader has it from REST).

Usable standalone (``binance-streamd run``) or embedded (``StreamDaemon(settings, redis=fake).start()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from binance_common.keys import CONTROL_RECONCILE, Keys
from binance_common.redis_conn import make_redis
from binance_common.rest import BinanceRest
from binance_common.settings import Settings
from binance_common.signed import SignedRest, signed_from
from binance_common.timeutil import now_ms

from . import systemd, wiring
from .bookmanager import BookManager
from .datapath import DataPath, Stream
from .leadership import Fenced, Leadership, Term
from .limits import wait_event
from .reconcile import Reconciler, SymbolDirectory
from .recovery import RedisRecovery
from .reporting import STATUS_EVERY_S, Reporter
from .restqueue import RestQueue
from .routes import Routes
from .userdata import UserDataKeeper
from .writer import RedisWriter

log = logging.getLogger(__name__)

__all__ = ["StreamDaemon"]

RECONCILE_EVERY_S = 2.0


class StreamDaemon:
    def __init__(self, settings: Settings, redis: aioredis.Redis | None = None,
                 rest: BinanceRest | None = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.namespace)
        self._own_redis = redis is None
        self.redis = redis if redis is not None else make_redis(settings)
        self._own_rest = rest is None
        self.rest = rest
        self.started_ms = now_ms()
        self.leadership = Leadership(self.redis, self.keys, settings.heartbeat_ttl_s)
        self.role = "starting"
        self.states: dict[str, Stream] = {}
        self.reporter = Reporter(self.redis, self.keys, settings, self.leadership, self.states, self.started_ms,
                                 self.stats)
        # the current term's feed (None while standing by)
        self.writer: RedisWriter | None = None
        self.queue: RestQueue | None = None
        self.pool: Routes | None = None
        self.futures_rest: BinanceRest | None = None
        self.futures_queue: RestQueue | None = None
        self._futures_symbols: SymbolDirectory | None = None
        self.books: BookManager | None = None
        self.datapath: DataPath | None = None
        self.recovery: RedisRecovery | None = None
        self.reconciler: Reconciler | None = None
        self._symbols: SymbolDirectory | None = None
        self.signed: SignedRest | None = None
        self.user_data: UserDataKeeper | None = None
        self._term_tasks: list[asyncio.Task[Any]] = []
        self._lead_task: asyncio.Task[None] | None = None
        self._lead_wake = asyncio.Event()
        self._reconcile_now = asyncio.Event()
        self._stopping = False
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def malformed(self) -> int:
        return self.datapath.malformed if self.datapath else 0

    @property
    def leading(self) -> bool:
        return self.role == "leader"

    # --- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> StreamDaemon:
        """Take the leadership if it is free and start the feed; otherwise stand by (and keep trying)."""
        if self.rest is None:
            from binance_common.ratelimit import RedisGovernor

            self.rest = BinanceRest(self.settings, governor=RedisGovernor(self.redis, self.keys, self.settings))
        if self.signed is None:
            self.signed = signed_from(self.rest, self.settings)  # KeyConfigError: an unusable key stops the start
        if self.futures_rest is None:
            self.futures_rest = wiring.futures_rest(self.settings, self.redis, self.keys)
        try:
            term = await self.leadership.acquire()
        except (RedisError, OSError) as e:
            log.warning("Redis unavailable at start (%s); standing by until it answers", e)
            term = Term.FOLLOWER
        if term in (Term.NEW, Term.RESUMED):
            await self._start_term()
        else:
            self.role = "standby"
            log.info("another daemon leads (%s); standing by", self.leadership.leader_token)
        self._lead_task = asyncio.create_task(self._leadership_loop(), name="leadership")
        return self

    async def stop(self) -> None:
        """Graceful: stop reading, flush, delete the heartbeat, give the leadership up, close."""
        if self._stopping:
            return
        self._stopping = True
        self._lead_wake.set()
        if self._lead_task is not None:
            done, _ = await asyncio.wait([self._lead_task], timeout=10.0)
            if not done:
                self._lead_task.cancel()
        if self.leading:
            await self._stop_term(graceful=True)
            with contextlib.suppress(RedisError, OSError, Fenced):
                await self.reporter.write(final=True)
                await self.leadership.execute([["DEL", self.keys.heartbeat]])
                await self.leadership.release()
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(self.keys.standby(self.leadership.identity.rsplit(":", 1)[0]))
        if self._own_rest and self.rest is not None:
            await self.rest.aclose()
        if self.futures_rest is not None:
            await self.futures_rest.aclose()
        if self._own_redis:
            with contextlib.suppress(Exception):
                await self.redis.aclose()

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        await self.start()
        try:
            await (stop or asyncio.Event()).wait()
        finally:
            await self.stop()

    # --- leadership ----------------------------------------------------------------------------------
    async def _leadership_loop(self) -> None:
        ttl = self.settings.heartbeat_ttl_s
        while not self._stopping:
            every = ttl / 3 if self.leading else min(1.0, ttl / 5)
            await wait_event(self._lead_wake, every)
            self._lead_wake.clear()
            if self._stopping:
                return
            systemd.notify("WATCHDOG=1")
            try:
                term = await self.leadership.acquire()
            except (RedisError, OSError) as e:
                log.debug("leadership: Redis unavailable (%s)", e)
                continue
            if self.leading:
                if term is Term.RESUMED and self.writer is not None:
                    log.warning("leadership: lease had expired, nobody else led; resuming the same term")
                    self.writer.unfence()
                elif term is Term.NEW:
                    log.warning("leadership: another term began meanwhile; restarting the feed from Redis")
                    await self._stop_term(graceful=False)
                    await self._start_term()
                elif term is Term.FOLLOWER:
                    log.warning("leadership lost to %s; standing by", self.leadership.leader_token)
                    await self._stop_term(graceful=False)
                    self.role = "standby"
            elif term in (Term.NEW, Term.RESUMED):
                log.info("leadership taken (%s); starting the feed", self.leadership.token)
                await self._start_term()
            else:
                with contextlib.suppress(RedisError, OSError):
                    await self.reporter.write_standby()

    def _on_fenced(self) -> None:
        self._lead_wake.set()

    # --- one term --------------------------------------------------------------------------------------
    async def _start_term(self) -> None:
        s = self.settings
        assert self.rest is not None
        self.states.clear()
        self.queue = RestQueue(self.rest)
        assert self.futures_rest is not None
        self.futures_queue = RestQueue(self.futures_rest)
        self.writer = RedisWriter(self.redis, self.keys, maxlen=s.history_maxlen, buffer_max=s.redis_buffer_max,
                                  linger_s=s.writer_linger_ms / 1000, fence=lambda: self.leadership.fence,
                                  on_fenced=self._on_fenced)
        await self.writer.start()
        self.datapath = DataPath(self.states, self.writer, self.queue, max_ids=s.backfill_max_ids,
                                 futures_queue=self.futures_queue)
        self.recovery = RedisRecovery(self.datapath)  # a full buffer or a Redis that lost writes: no hole
        self.writer.on_dropped, self.writer.on_rewound = self.recovery.dropped, self.recovery.rewound
        self.books = BookManager(wiring.SnapshotRest(self.queue, self.futures_queue), [], top_n=s.order_book_top_n,
                                 write=self.writer.set_book, snapshot_limit=s.order_book_snapshot_limit)
        self.datapath.book_diff = self.books.on_diff_nowait
        self.pool = wiring.routes(s, self.datapath.on_data, self._on_failed, self._on_live,
                                  on_malformed=self.datapath.on_malformed, on_lost=self._on_lost,
                                  on_error=self._on_error, backpressure=self.writer)
        self._symbols = SymbolDirectory(self.redis, self.keys, self.queue, s.exchange_info_ttl_s)
        self._futures_symbols = SymbolDirectory(self.redis, self.keys, self.futures_queue, s.exchange_info_ttl_s,
                                                path="/fapi/v1/exchangeInfo", cache="futures_exchange_info")
        self.reconciler = Reconciler(self.redis, self.keys, s, self.states, self.datapath, self.pool, self.books,
                                     self._symbols, self.leadership.execute, self.reporter.forget,
                                     futures_symbols=self._futures_symbols)
        pubsub = None
        with contextlib.suppress(RedisError, OSError):
            pubsub = self.redis.pubsub()
            await pubsub.subscribe(self.keys.control_channel)  # before start() returns: no missed nudge
        self.role = "leader"
        self._term_tasks = [
            asyncio.create_task(self._reconcile_loop(), name="reconcile"),
            asyncio.create_task(self._control_listener(pubsub), name="control"),
            asyncio.create_task(self._status_loop(), name="status"),
        ]
        if self.signed is not None:
            self.user_data = UserDataKeeper(s, self.redis, self.keys, self.signed, self.leadership.execute)
            self._term_tasks.append(asyncio.create_task(self._user_data_loop(self.user_data), name="user-data"))

    async def _user_data_loop(self, keeper: UserDataKeeper) -> None:
        """The account's user-data stream for this term; an unexpected failure restarts it (with a gap)."""
        while True:
            try:
                await keeper.run()
            except Fenced:
                return
            except Exception:
                log.exception("user-data stream failed; restarting it in 5 s")
                await asyncio.sleep(5.0)

    async def _stop_term(self, *, graceful: bool) -> None:
        """End the term. ``graceful``: stop reading, then flush everything; else drop what is unwritten."""
        if self.pool is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.pool.close(), 10.0)
        if self.recovery is not None:  # an unpark must not start fills in a finished term
            await self.recovery.stop()
        fills = [st.fill_task for st in self.states.values() if st.fill_task is not None]
        for t in [*self._term_tasks, *fills]:
            t.cancel()
        pending = [*self._term_tasks, *fills]
        if pending:  # bounded: a task that swallows its cancel (seen with redis-py pub/sub) cannot hang stop
            await asyncio.wait(pending, timeout=3.0)
        self._term_tasks = []
        for directory in (self._symbols, self._futures_symbols):
            if directory is not None:
                directory.close()
        for queue in (self.queue, self.futures_queue):
            if queue is not None:
                await queue.close()
        if self.books is not None:
            with contextlib.suppress(Exception):
                if graceful:
                    await self.books.flush()
                await self.books.close()
        if self.writer is not None:
            if not graceful:
                dropped = self.writer.discard()
                if dropped:
                    log.warning("dropped %d unwritten messages of the ended term (the new leader has them)", dropped)
            await self.writer.close()
        self.role = "standby"

    async def _reconcile_loop(self) -> None:
        while True:
            if self.reconciler is not None:
                await self.reconciler.reconcile()
            if self.pool is not None:
                self.pool.check_silent(self.states)  # futures streams on the wrong path
            self._reconcile_now.clear()
            await wait_event(self._reconcile_now, RECONCILE_EVERY_S)

    async def _control_listener(self, pubsub: Any) -> None:
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

    async def _status_loop(self) -> None:
        while True:
            try:
                await self.reporter.write()
            except Fenced:
                self._lead_wake.set()
            except (RedisError, OSError):
                pass
            await asyncio.sleep(min(STATUS_EVERY_S, self.settings.heartbeat_ttl_s / 3))

    # --- pool callbacks --------------------------------------------------------------------------------
    def _on_live(self, streams: list[str], conn_id: int) -> None:
        assert self.datapath is not None
        for s in streams:
            st = self.states.get(s)
            if st is None:
                continue
            if self.pool is not None:
                self.pool.acknowledged(s)  # futures: data must follow, else the path is wrong
            if self.datapath.acknowledged(st, conn_id):  # the first ack of a stream with no id: persist it
                self._spawn(self.leadership.execute([["HSET", self.keys.status(s), "first_ack", st.first_ack]]))
            sym = self.datapath.book_streams.get(s)
            if sym is not None and self.books is not None:
                self.books.subscribed(sym)

    def _on_lost(self, streams: list[str], reason: str) -> None:
        assert self.datapath is not None
        for s in streams:
            st = self.states.get(s)
            if st is not None:
                self.datapath.lost(st, reason)
            sym = self.datapath.book_streams.get(s)
            if sym is not None and self.books is not None:
                self.books.suspend(sym)

    def _on_error(self, streams: list[str], reason: str) -> None:
        for s in streams:
            st = self.states.get(s)
            if st is not None and not st.acked:
                st.reason = reason

    def _on_failed(self, streams: list[str], reason: str) -> None:
        for s in streams:
            if self.reconciler is not None:
                self.reconciler.fail(s, reason)
            log.warning("%s: subscription refused: %s", s, reason)

    def _spawn(self, coro: Any) -> None:
        async def run() -> None:
            with contextlib.suppress(Exception):
                await coro

        t = asyncio.get_running_loop().create_task(run())
        self._background.add(t)
        t.add_done_callback(self._background.discard)

    # --- stats ---------------------------------------------------------------------------------------
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
                              "paused_s": round(c.paused_s, 2) if c else 0.0, "probing": len(slot.probing)})
        now = now_ms()
        lags = [now - st.last_recv for st in self.states.values() if st.last_recv]
        return {
            "pid": os.getpid(), "started": self.started_ms, "ts": now,
            "role": self.role, "token": self.leadership.token, "terms": self.leadership.terms,
            "connections": conns, "connects": pool.connects if pool else 0,
            "streams": {st.name: {"state": st.state.value, "conn": st.conn, "rate": round(st.rate, 2),
                                  "msgs": st.msgs, "lag_ms": now - st.last_recv if st.last_recv else None,
                                  "gaps_found": st.gaps_found, "gaps_filled": st.gaps_filled,
                                  "gaps_unfilled": st.gaps_unfilled, "reconnects": st.reconnects,
                                  "reason": st.reason}
                        for st in self.states.values()},
            "max_silence_ms": max(lags) if lags else None,
            "malformed": self.malformed,
            "fills": self.datapath.fills if self.datapath else 0,
            "rest": self.queue.stats() if self.queue else {},
            "writer": self.writer.stats() if self.writer else {},
            "books": self.books.status() if self.books else {},
            "user_data": dict(self.user_data.stats) if self.user_data else None,
        }
