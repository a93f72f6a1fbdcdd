"""What the daemon should be subscribed to, and keeping it so: leases + always-on streams -> the pool.

Every ``RECONCILE_EVERY_S`` (and at once on a ``control`` nudge) :meth:`Reconciler.reconcile`:

* reads the wanted set (unexpired leases plus the configured always-on streams, which it re-asserts in
  ``always_on`` in case Redis lost them);
* refuses locally what cannot work: names outside the grammar, and symbols the exchange does not list
  (exchangeInfo, shared with the front ends through ``cache:exchange_info``), so bad names cost no control
  messages and never delay good ones;
* resumes each new trade stream from Redis (:meth:`DataPath.resume`) before subscribing it;
* forgets, after ``unsubscribe_grace_s``, every stream nothing wants any more, failed or not: its state,
  its ``status:`` key and its stats, so memory and keys stay bounded whatever clients ask for. A failed
  stream that is still wanted is tried again every ``FAILED_RETRY_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from binance_common.exchange_info import CACHE_NAME, compact_exchange_info, symbol_names
from binance_common.feedstore import StreamState
from binance_common.keys import Keys
from binance_common.settings import Settings
from binance_common.streams import StreamKind, StreamNameError, parse_stream
from binance_common.timeutil import now_ms

from .datapath import DataPath, Stream
from .restqueue import Priority, RestQueue
from .sequence import StreamSequencer

log = logging.getLogger(__name__)

__all__ = ["FAILED_RETRY_S", "Reconciler"]

FAILED_RETRY_S = 60.0
SYMBOLS_WAIT_S = 3.0  # the first reconcile waits this long for exchangeInfo before subscribing unchecked
SYMBOLS_RETRY_S = 60.0

Execute = Callable[[Sequence[Sequence[Any]]], Awaitable[None]]


class SymbolDirectory:
    """Which symbols the exchange lists: the shared cache, else one exchangeInfo request (weight 20)."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, queue: RestQueue, ttl_s: float, *,
                 path: str = "/api/v3/exchangeInfo", cache: str = CACHE_NAME) -> None:
        self.r = redis
        self.keys = keys
        self.queue = queue
        self.path = path  # /fapi/v1/exchangeInfo for the futures directory
        self.cache = cache
        self.ttl_s = max(30.0, ttl_s)
        self.names: set[str] | None = None
        self._at = float("-inf")
        self._task: asyncio.Task[None] | None = None

    async def known(self) -> set[str] | None:
        """The listed symbols, or None when unknown (then nothing is refused locally)."""
        if time.monotonic() - self._at >= self.ttl_s and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._refresh(), name="exchange-info")
        if self.names is None and self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), SYMBOLS_WAIT_S)
            except (TimeoutError, Exception):
                pass
        return self.names

    async def _refresh(self) -> None:
        key = self.keys.cache(self.cache)
        try:
            names = symbol_names(await self.r.get(key))
            if names is None:
                raw = await self.queue.get(Priority.BACKGROUND, self.path, {})
                compact = compact_exchange_info(raw, now_ms())
                names = {s["symbol"] for s in compact["symbols"]}
                await self.r.set(key, orjson.dumps(compact, default=str), px=int(self.ttl_s * 1000), nx=True)
            self.names = names or None
            self._at = time.monotonic()
        except Exception as e:
            log.info("exchangeInfo unavailable (%s); stream names are not checked against it for now", e)
            self._at = time.monotonic() - self.ttl_s + SYMBOLS_RETRY_S

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


@dataclass
class Reconciler:
    """Keeps the pools subscribed to what is wanted (see the module docstring). ``pool``: the routes facade;
    ``symbols`` / ``futures_symbols``: the spot and futures listings names are checked against."""

    r: aioredis.Redis
    keys: Keys
    settings: Settings
    states: dict[str, Stream]
    datapath: DataPath
    pool: Any
    books: Any
    symbols: SymbolDirectory
    execute: Execute
    on_forget: Callable[[str], None]
    futures_symbols: SymbolDirectory | None = None
    unwanted_since: dict[str, float] = field(default_factory=dict)
    failed_at: dict[str, float] = field(default_factory=dict)
    configured_book_streams: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.configured_book_streams = {f"{x.lower()}@depth@100ms" for x in self.settings.order_book_symbols}

    def always_on(self) -> set[str]:
        return set(self.settings.streams) | self.configured_book_streams

    async def wanted(self) -> set[str]:
        k = self.keys
        now = now_ms()
        pipe = self.r.pipeline(transaction=False)
        pipe.zremrangebyscore(k.leases, "-inf", now)
        pipe.zrangebyscore(k.leases, now, "+inf")
        _, members = await pipe.execute()
        out = self.always_on()
        for m in members:
            stream, _ = k.split_lease_member(m.decode() if isinstance(m, bytes) else m)
            out.add(stream)
        return out

    async def reconcile(self) -> None:
        try:
            wanted = await self.wanted()
        except (RedisError, OSError) as e:
            log.warning("reconcile: Redis unavailable (%s); keeping current streams", type(e).__name__)
            return
        await self._add(wanted)
        await self._drop(wanted)
        always = sorted(self.always_on())
        try:
            await self.execute([["DEL", self.keys.always_on], *([["SADD", self.keys.always_on, *always]]
                                                                if always else [])])
        except Exception as e:
            log.debug("always_on not written: %s", e)

    async def _add(self, wanted: set[str]) -> None:
        now = time.monotonic()
        fresh: list[Stream] = []
        known: dict[str, set[str] | None] = {}
        for name in sorted(wanted):
            st = self.states.get(name)
            if st is not None:
                self.unwanted_since.pop(name, None)
                if st.state is not StreamState.FAILED or now - self.failed_at.get(name, now) < FAILED_RETRY_S:
                    continue
                del self.states[name]  # failed a while ago and still wanted: try again
            try:
                spec = parse_stream(name)
            except StreamNameError as e:
                self.fail(name, str(e).split(". Allowed")[0])
                continue
            if spec.symbol:
                directory = self.futures_symbols if spec.venue == "um" else self.symbols
                if spec.venue not in known:
                    known[spec.venue] = await directory.known() if directory is not None else None
                listed = known[spec.venue]
                if listed is not None and spec.symbol.upper() not in listed:
                    where = "the futures exchangeInfo" if spec.venue == "um" else "exchangeInfo"
                    self.fail(name, f"{name}: unknown symbol {spec.symbol.upper()} (not listed in {where})")
                    continue
            st = self.datapath.new_stream(name, spec.kind)
            self.states[name] = st
            self.failed_at.pop(name, None)
            fresh.append(st)
            if (spec.kind is StreamKind.DEPTH and spec.speed_ms == 100 and spec.symbol and self.books is not None
                    and name not in self.datapath.book_streams):
                book = ("UM:" if spec.venue == "um" else "") + spec.symbol.upper()  # futures books apart
                self.datapath.book_streams[name] = book
                self.books.add_symbol(book)
        if not fresh:
            return
        try:
            await self.datapath.resume(self.r, self.keys, fresh)
        except (RedisError, OSError) as e:
            # A trade stream subscribed without its position would start a new history at the ack and skip
            # what was traded since the last id in Redis: it waits for the next pass instead.
            waiting = [st for st in fresh if st.trades]
            log.warning("could not read where %d trade streams stopped (%s); subscribing them on the next pass",
                        len(waiting), e)
            for st in waiting:
                if self.states.get(st.name) is st:
                    del self.states[st.name]
        self.pool.add([st.name for st in fresh if self.states.get(st.name) is st])

    async def _drop(self, wanted: set[str]) -> None:
        now = time.monotonic()
        gone: list[str] = []
        for name in list(self.states):
            if name in wanted:
                continue
            since = self.unwanted_since.setdefault(name, now)
            if now - since >= self.settings.unsubscribe_grace_s:
                gone.append(name)
        for name in list(self.unwanted_since):  # a failed name may have been forgotten already
            if name not in self.states:
                self.unwanted_since.pop(name, None)
        if not gone:
            return
        self.pool.remove(gone)
        for name in gone:
            await self.forget(name)
        try:
            await self.execute([["DEL", *(self.keys.status(n) for n in gone)]])
        except Exception as e:
            log.debug("status keys of forgotten streams not deleted: %s", e)

    async def forget(self, name: str) -> None:
        """Drop everything this process keeps about ``name``."""
        st = self.states.pop(name, None)
        self.unwanted_since.pop(name, None)
        self.failed_at.pop(name, None)
        if st is not None and st.fill_task is not None:
            st.fill_task.cancel()
        sym = self.datapath.book_streams.pop(name, None)
        if sym is not None and self.books is not None:
            await self.books.remove_symbol(sym)
        self.on_forget(name)

    def fail(self, name: str, reason: str) -> None:
        st = self.states.get(name)
        if st is None:
            try:
                kind = parse_stream(name).kind
            except StreamNameError:
                kind = StreamKind.TRADE
            st = Stream(name, kind, StreamSequencer("x@trade"))  # never fed: nothing is subscribed
            self.states[name] = st
        st.held = None
        st.set_state(StreamState.FAILED, reason)
        self.failed_at[name] = time.monotonic()
