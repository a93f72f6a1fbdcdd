"""The Redis writer: everything received in one event-loop turn goes to Redis in one round trip.

Per batch: ``XADD hist:<stream> MAXLEN ~ N * d <payload> r <recv ms> [b 1]`` for every message, one
``SET latest:<stream>`` per stream (the newest message of the batch; older ones in the same batch would be
overwritten anyway), ``SET book:<SYMBOL>`` for changed books, and one ``PUBLISH updates`` naming what changed.

Two strategies behind one interface, chosen at start:
* ``script``: one EVALSHA per batch; the per-message work happens inside Redis. Keys are built here (by
  :mod:`binance_common.keys`) and passed in, so the key schema stays in one module.
* ``pipeline``: a plain MULTI-less pipeline, for Redis servers without Lua (fakeredis in embedded mode).

When Redis is down the pending messages stay in a bounded buffer (oldest dropped past
``settings.redis_buffer_max``, counted in ``dropped``); the writer retries with backoff and never raises.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from binance_common.keys import Keys

log = logging.getLogger(__name__)

# ARGV: maxlen, n_groups, n_latest, channel, updates, then n_groups x (hist key, backfill flag, entries),
# then n_latest x (key, value). ``entries`` packs a group's messages as "<recv ms>\n<payload>" joined by
# \x1e (JSON text never contains a raw newline or \x1e): one argument per stream instead of four per
# message, which is what the client-side cost of a batch is made of (redis-py encodes every argument).
_BATCH_LUA = r"""
local maxlen = ARGV[1]
local ng = tonumber(ARGV[2])
local nl = tonumber(ARGV[3])
local i = 6
local n = 0
for _ = 1, ng do
  local key, flag, blob = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local pos = 1
  local len = #blob
  while pos <= len do
    local stop = string.find(blob, '\30', pos, true) or (len + 1)
    local nl_at = string.find(blob, '\n', pos, true)
    local recv = string.sub(blob, pos, nl_at - 1)
    local payload = string.sub(blob, nl_at + 1, stop - 1)
    if flag == '1' then
      redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'd', payload, 'r', recv, 'b', '1')
    else
      redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'd', payload, 'r', recv)
    end
    n = n + 1
    pos = stop + 1
  end
  i = i + 3
end
for _ = 1, nl do
  redis.call('SET', ARGV[i], ARGV[i + 1])
  i = i + 2
end
if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return n
"""

Message = tuple[str, bytes, int, bool]


def _as_bytes(v: str | bytes) -> bytes:
    return v if isinstance(v, bytes) else v.encode()


def _bulk(b: bytes) -> bytes:
    """A RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(b), b)  # stream, raw payload, receive ms, backfilled


class RedisWriter:
    def __init__(self, redis: aioredis.Redis, keys: Keys, *, maxlen: int, buffer_max: int,
                 batch_max: int = 2048, linger_s: float = 0.0005) -> None:
        self.redis = redis
        self.keys = keys
        self.maxlen = maxlen
        self.batch_max = batch_max
        self.linger_s = linger_s
        self.pending: deque[Message] = deque()
        self.buffer_max = buffer_max
        self.books: dict[str, bytes] = {}
        self.written = 0
        self.dropped = 0
        self.batches = 0
        self.errors = 0
        self.redis_ok = True
        self.last_error: str | None = None
        self.strategy = "pipeline"
        self._sha: str | None = None
        self._wake = asyncio.Event()
        self._busy = False  # messages were added since the writer last looked
        self._last_write = 0.0  # loop time of the last successful write
        self._hist_bulk: dict[str, bytes] = {}  # stream -> RESP bulk string of its history key
        self._latest_bulk: dict[str, bytes] = {}
        self._channel_bulk = _bulk(keys.updates_channel.encode())
        self._idle = asyncio.Event()
        self._idle.set()
        self._drained = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # --- producer side (sync, cheap) ---------------------------------------------------------------
    def add(self, stream: str, payload: bytes, recv_ms: int, backfill: bool = False) -> None:
        if len(self.pending) >= self.buffer_max:
            self.pending.popleft()
            self.dropped += 1
        self.pending.append((stream, payload, recv_ms, backfill))
        if not self._busy:  # first message since the writer took its last batch: wake it
            self._busy = True
            self._idle.clear()
            self._wake.set()

    HIGH_WATER = 50_000
    LOW_WATER = 10_000

    def congested(self) -> bool:
        """True while the backlog is above the high-water mark: readers should pause (TCP backpressure)."""
        return len(self.pending) >= self.HIGH_WATER and self.redis_ok

    async def drained(self) -> None:
        """Wait until the backlog is below the low-water mark (or Redis is down: then keep reading into
        the bounded buffer, so the exchange does not drop us; overflow is counted)."""
        while len(self.pending) > self.LOW_WATER and self.redis_ok:
            self._drained.clear()
            await self._drained.wait()

    def set_book(self, symbol: str, value: bytes) -> None:
        self.books[symbol] = value
        self._idle.clear()
        self._wake.set()

    # --- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            self._sha = await self.redis.script_load(_BATCH_LUA)
            self.strategy = "script"
        except Exception as e:
            log.info("writer: using pipelines (%s)", type(e).__name__)
            self.strategy = "pipeline"
        self._task = asyncio.create_task(self._run(), name="redis-writer")

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything added so far is in Redis (False on timeout, e.g. Redis down)."""
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self, timeout: float = 5.0) -> None:
        await self.flush(timeout)
        self._closing = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    # --- the loop ------------------------------------------------------------------------------------
    async def _run(self) -> None:
        delay = 0.05
        loop = asyncio.get_running_loop()
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # let the rest of this loop turn's messages arrive
            while (self.pending or self.books) and not self._closing:
                # Small batches wait until linger_s after the previous write: at tens of thousands of
                # messages a second that halves the round trips (and syscalls) for <= 1 ms of latency.
                wait = self._last_write + self.linger_s - loop.time()
                if wait > 0 and len(self.pending) < self.batch_max // 4:
                    await asyncio.sleep(wait)
                self._busy = False  # from here on, an add() wakes the loop again
                n = min(len(self.pending), self.batch_max)
                batch = [self.pending[i] for i in range(n)]
                books = dict(self.books)
                try:
                    await self._write(batch, books)
                except (RedisError, OSError, ConnectionError) as e:
                    self.errors += 1
                    if self.redis_ok:
                        log.warning("redis write failed (%s: %s); buffering", type(e).__name__, e)
                    self.redis_ok = False
                    self._drained.set()
                    self.last_error = f"{type(e).__name__}: {e}"
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                if not self.redis_ok:
                    log.warning("redis reachable again; %d buffered messages written", n)
                self.redis_ok = True
                delay = 0.05
                for _ in range(n):
                    self.pending.popleft()
                for sym, val in books.items():
                    if self.books.get(sym) is val:
                        del self.books[sym]
                self._last_write = loop.time()
                self.written += n
                self.batches += 1
                if len(self.pending) <= self.LOW_WATER:
                    self._drained.set()
            if not self.pending and not self.books:
                self._idle.set()

    async def _write(self, batch: list[Message], books: dict[str, bytes]) -> None:
        k = self.keys
        # one pass: runs of one stream with one flag, in arrival order per stream (backfilled entries must
        # stay between the live entries they came between), and the newest live message of each stream
        newest: dict[str, tuple[bytes, int]] = {}
        runs: list[tuple[str, bool, list[bytes]]] = []
        last: dict[str, tuple[str, bool, list[bytes]]] = {}
        for stream, payload, recv_ms, backfill in batch:
            run = last.get(stream)
            if run is None or run[1] is not backfill:
                run = last[stream] = (stream, backfill, [])
                runs.append(run)
            run[2].append(b"%d\n" % recv_ms + payload)
            if not backfill:
                newest[stream] = (payload, recv_ms)
        latest = {stream: b'{"r":%d,"d":' % recv_ms + payload + b"}" for stream, (payload, recv_ms) in newest.items()}
        changed = list(latest) + [f"book:{s}" for s in books]
        updates = "\n".join(changed)
        if self.strategy == "script" and self._sha:
            hist, lat = self._hist_bulk, self._latest_bulk
            parts = [b"", _bulk(_as_bytes(self._sha)), b"$1\r\n0\r\n",
                     _bulk(b"%d" % self.maxlen), _bulk(b"%d" % len(runs)), _bulk(b"%d" % (len(latest) + len(books))),
                     self._channel_bulk, _bulk(updates.encode())]
            for stream, backfill, entries in runs:
                h = hist.get(stream) or self._cache_keys(stream)[0]
                blob = b"\x1e".join(entries)
                parts += (h, b"$1\r\n1\r\n" if backfill else b"$1\r\n0\r\n", b"$%d\r\n" % len(blob), blob, b"\r\n")
            for stream, value in latest.items():
                parts += (lat.get(stream) or self._cache_keys(stream)[1], b"$%d\r\n" % len(value), value, b"\r\n")
            for sym, value in books.items():
                parts += (_bulk(k.book(sym).encode()), _bulk(value))
            parts[0] = b"*%d\r\n$7\r\nEVALSHA\r\n" % (8 + 3 * len(runs) + 2 * (len(latest) + len(books)))
            try:
                await self._call_packed(b"".join(parts))
                return
            except NoScriptError:
                self._sha = await self.redis.script_load(_BATCH_LUA)  # Redis restarted: reload, retry
                parts[1] = _bulk(_as_bytes(self._sha))
                await self._call_packed(b"".join(parts))
                return
        pipe = self.redis.pipeline(transaction=False)
        for stream, payload, recv_ms, backfill in batch:
            fields: dict[str, Any] = {"d": payload, "r": recv_ms}
            if backfill:
                fields["b"] = 1
            pipe.xadd(k.history(stream), fields, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
        for stream, value in latest.items():
            pipe.set(k.latest(stream), value)
        for sym, value in books.items():
            pipe.set(k.book(sym), value)
        if updates:
            pipe.publish(k.updates_channel, updates)
        await pipe.execute()

    def _cache_keys(self, stream: str) -> tuple[bytes, bytes]:
        if len(self._hist_bulk) > 100_000:  # bounded: streams come and go over a long run
            self._hist_bulk.clear()
            self._latest_bulk.clear()
        h = self._hist_bulk[stream] = _bulk(self.keys.history(stream).encode())
        t = self._latest_bulk[stream] = _bulk(self.keys.latest(stream).encode())
        return h, t

    async def _call_packed(self, command: bytes) -> Any:
        """Send one pre-encoded RESP command on a pooled connection and read its reply.

        The batch's EVALSHA is packed by ``_write`` (stream keys' encodings cached), so redis-py's per-call
        argument encoding and instrumentation are skipped: at 4k batches/s they were ~20% of the daemon.
        Errors come back as redis-py's exceptions (``NoScriptError`` included); a broken connection is
        dropped before it goes back to the pool.
        """
        pool = self.redis.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(command, check_health=False)
            return await conn.read_response()
        except BaseException as e:
            if not isinstance(e, RedisError) or isinstance(e, (RedisConnectionError, RedisTimeoutError)):
                await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    def stats(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "written": self.written, "buffered": len(self.pending),
                "dropped": self.dropped, "batches": self.batches, "errors": self.errors,
                "redis_ok": self.redis_ok, "last_error": self.last_error, "ts": int(time.time() * 1000)}
