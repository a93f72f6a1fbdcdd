"""What every feed read shares: the Redis handles, the error type, the decoding of a stream's status and
payloads. The reads themselves are grouped by what they read (:mod:`.latest`, :mod:`.history`, :mod:`.books`,
:mod:`.health`, :mod:`.fresh`) and combined in :class:`~.reader.FeedReader`.

Every read that feeds one answer is a single round trip (a pipeline). Values are decoded with the shared codec
(:mod:`binance_common.feedstore`); inputs are validated by the callers before any key is built.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from binance_common.feedstore import StatusRecord
from binance_common.keys import Keys
from binance_common.models import parse_payload

from ..answers.numbers import to_jsonable
from ..answers.provenance import STATE_NOT_SUBSCRIBED
from ..answers.streams import StreamStatus


class FeedError(ValueError):
    """A request the feed cannot answer (no such data, bad cursor); the message says what to do."""


def text(v: Any) -> str | None:
    if v is None:
        return None
    return v.decode() if isinstance(v, bytes) else str(v)


def id_tuple(entry_id: bytes | str) -> tuple[int, int]:
    """A Redis stream entry id (``<ms>-<seq>``) as a comparable pair."""
    s = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    a, _, b = s.partition("-")
    return int(a), int(b or 0)


def integer(v: Any) -> int | None:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


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
    """A ``status:<stream>`` hash (:class:`~binance_common.feedstore.StatusRecord`) as the answer model."""
    rec = StatusRecord.from_hash(h)
    if rec is None:
        return StreamStatus(state=STATE_NOT_SUBSCRIBED)
    return StreamStatus(
        state=rec.state or STATE_NOT_SUBSCRIBED,
        reason=rec.reason or None,
        since_ms=rec.since or None,
        last_recv_ms=rec.last_recv or None,
        msgs=rec.msgs,
        gaps_found=rec.gaps_found,
        gaps_filled=rec.gaps_filled,
        reconnects=rec.reconnects,
        connection=rec.conn or None,
    )


LATEST_AND_STATE = "return {redis.call('GET', KEYS[1]), redis.call('HMGET', KEYS[2], 'state', 'reason')}"
"""The hot read of ``get_stream_latest``: the latest value and the stream's state in one command (cheaper for
the client than a pipeline of two)."""


LATEST_CACHE_S = 0.25
"""Longest a cached latest value is served without a read (an update announcement drops it sooner)."""
LATEST_CACHE_MAX = 10_000


def _never() -> int:
    return 0


class FeedBase:
    """Read-only access to the feed for one replica (the state every group of reads shares)."""

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
        self._latest_script = redis.register_script(LATEST_AND_STATE)
        self._scripts = True  # False once the server refuses scripts (in-memory Redis without Lua)
        self.cache_epoch: Callable[[], int] = _never
        """The subscription of the updates channel (> 0 while subscribed; set by the runtime): the latest-value
        cache serves only entries filled under the current one."""
        self._cache: dict[str, tuple[float, int, bytes | None, str | None, str | None]] = {}
        self._gen: dict[str, int] = {}
        self._reading: dict[str, tuple[tuple[int, int], asyncio.Future[Any]]] = {}  # reads under way, by stream
        self.decoded: dict[str, Any] = {}  # latest values decoded once per stored value (feed.latest)

    def invalidate(self, streams: Iterable[str]) -> None:
        """The daemon announced new values of ``streams`` (the ``updates`` channel): drop what is cached."""
        cache, gen = self._cache, self._gen
        for s in streams:
            cache.pop(s, None)
            gen[s] = gen.get(s, 0) + 1

    async def latest_and_state(self, stream: str) -> tuple[bytes | None, str | None, str | None]:
        """(``latest:<stream>`` value, state, reason) in one round trip, or from the cache: a value read at
        most ``LATEST_CACHE_S`` ago with no update announced since (only while the updates channel is
        subscribed; an answer's age is computed from the value's receive time either way)."""
        epoch = self.cache_epoch()
        if not epoch:  # no announcements to go by: every caller reads
            return await self._read_latest_and_state(stream)
        hit = self._cache.get(stream)
        if hit is not None and hit[1] == epoch and time.monotonic() - hit[0] < LATEST_CACHE_S:
            return hit[2], hit[3], hit[4]
        gen = self._gen.get(stream, 0)
        pending = self._reading.get(stream)
        if pending is None or pending[0] != (gen, epoch):  # no read of the current value under way: start one
            pending = ((gen, epoch), asyncio.ensure_future(self._read_into_cache(stream, gen, epoch)))
            self._reading[stream] = pending
            pending[1].add_done_callback(functools.partial(self._read_done, stream, pending))
        return await asyncio.shield(pending[1])

    async def _read_into_cache(self, stream: str, gen: int, epoch: int) -> tuple[bytes | None, str | None, str | None]:
        """One read for every caller that missed the cache since the last announcement of ``stream``: concurrent
        callers share it (one round trip per update instead of one per caller); a caller that comes after a
        newer announcement starts its own read, so it never gets a value older than what was announced."""
        got = await self._read_latest_and_state(stream)
        if self._gen.get(stream, 0) == gen and self.cache_epoch() == epoch:  # nothing announced meanwhile
            if len(self._cache) >= LATEST_CACHE_MAX:
                self._cache.clear()
            self._cache[stream] = (time.monotonic(), epoch, *got)
        return got

    def _read_done(self, stream: str, pending: tuple[tuple[int, int], asyncio.Future[Any]], _: object) -> None:
        if self._reading.get(stream) is pending:
            del self._reading[stream]
        if not pending[1].cancelled():
            pending[1].exception()  # retrieved: every caller that waited has it raised already

    async def _read_latest_and_state(self, stream: str) -> tuple[bytes | None, str | None, str | None]:
        keys = [self.keys.latest(stream), self.keys.status(stream)]
        if self._scripts:
            try:
                blob, (state, reason) = await self._latest_script(keys=keys)
                return blob, text(state), text(reason)
            except ResponseError as e:
                if "unknown command" not in str(e) and "NOSCRIPT" not in str(e):
                    raise
                self._scripts = False
        pipe = self.r.pipeline(transaction=False)
        pipe.get(keys[0])
        pipe.hmget(keys[1], "state", "reason")
        blob, (state, reason) = await pipe.execute()
        return blob, text(state), text(reason)

    async def wait_for_entry(self, key: str, after_id: str, wait_s: float) -> None:
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

    async def status(self, stream: str) -> StreamStatus:
        return status_model(await self.r.hgetall(self.keys.status(stream)))
