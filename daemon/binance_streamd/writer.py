"""The Redis writer: everything received in one event-loop turn goes to Redis in one round trip.

Per batch: ``XADD hist:<stream> MAXLEN ~ N * d <payload> r <recv ms> [b 1]`` for every message, one
``SET latest:<stream>`` per stream (the newest message of the batch; older ones in the same batch would be
overwritten anyway), ``SET book:<SYMBOL>`` for changed books, and one ``PUBLISH updates`` naming what changed.

Two strategies behind one interface, chosen at start:
* ``script``: one EVALSHA per batch; the per-message work happens inside Redis. Keys are built here (by
  :mod:`binance_common.keys`) and passed in, so the key schema stays in one module. The command is packed
  here as RESP (stream keys' encodings cached) and sent on one dedicated connection, with up to
  ``MAX_INFLIGHT`` batches pipelined: while Redis runs one batch the daemon packs the next, instead of each
  side waiting for the other. One connection keeps Redis's execution order equal to arrival order.
* ``pipeline``: a plain MULTI-less pipeline, for Redis servers without Lua (fakeredis in embedded mode).

When Redis is down the pending messages stay in a bounded buffer (oldest dropped past
``settings.redis_buffer_max``, counted in ``dropped``); the writer retries with backoff and never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from binance_common.feedstore import F_BACKFILL, F_DATA, F_GAP, F_RECV
from binance_common.keys import Keys

from .leadership import fence_check, is_fenced
from .redis_adapter import stream_writer

log = logging.getLogger(__name__)

# ARGV: maxlen, n_groups, n_latest, channel, updates, leader key, fencing token ('' = unfenced), then
# n_groups x (hist key, kind flag, entries), then n_latest x (key, value). ``entries`` packs a group's
# messages as "<recv ms>\n<payload>" joined by \x1e (JSON text never contains a raw newline or \x1e): one
# argument per stream instead of four per message, which is what the client-side cost of a batch is made of
# (redis-py encodes every argument). Kind flags: 0 live data, 1 data from REST, 2 gap entries.
_BATCH_LUA = fence_check(6) + r"""
local maxlen = ARGV[1]
local ng = tonumber(ARGV[2])
local nl = tonumber(ARGV[3])
local i = 8
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
    elseif flag == '2' then
      redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'g', payload, 'r', recv)
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

Message = tuple[str, bytes, int, int]  # stream, raw payload (or gap JSON), receive ms, kind
LIVE, BACKFILL, GAP, LATEST = 0, 1, 2, 3  # LATEST: only the latest value (one element of an all-market array)
_KIND_ARG = {LIVE: b"$1\r\n0\r\n", BACKFILL: b"$1\r\n1\r\n", GAP: b"$1\r\n2\r\n"}


def _as_bytes(v: str | bytes) -> bytes:
    return v if isinstance(v, bytes) else v.encode()


def _bulk(b: bytes) -> bytes:
    """A RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(b), b)


class RedisWriter:
    HIGH_WATER = 100_000
    LOW_WATER = 25_000
    MAX_INFLIGHT = 16

    def __init__(self, redis: aioredis.Redis, keys: Keys, *, maxlen: int, buffer_max: int,
                 batch_max: int = 2048, linger_s: float = 0.0005,
                 fence: Callable[[], tuple[str, str]] | None = None,
                 on_fenced: Callable[[], None] | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.maxlen = maxlen
        self.batch_max = batch_max
        self.linger_s = linger_s
        self.pending: deque[Message] = deque()  # in arrival order; the first ``_sent`` are in flight
        self.buffer_max = buffer_max
        self.books: dict[str, bytes] = {}
        self.written = 0
        self.dropped = 0
        self.batches = 0
        self.errors = 0
        self.redis_ok = True
        self.last_error: str | None = None
        self.strategy = "pipeline"
        self.fence = fence or (lambda: ("", ""))  # (leader key, token) checked by the batch script
        self.on_fenced = on_fenced
        self.fenced = False  # a batch was refused: this daemon no longer leads; nothing more is sent
        self.reconnects = 0
        self._sha: str | None = None
        self._wake = asyncio.Event()
        self._busy = False  # messages were added since the writer last looked
        self._last_write = 0.0  # loop time of the last batch sent
        self._sent = 0  # messages at the head of ``pending`` sent and awaiting their reply
        self._inflight: deque[tuple[int, dict[str, bytes]]] = deque()  # (messages, books) per batch sent
        self._conn: Any = None  # the script strategy's dedicated connection
        self._has_inflight = asyncio.Event()
        self._hist_bulk: dict[str, bytes] = {}  # stream -> RESP bulk string of its history key
        self._latest_bulk: dict[str, bytes] = {}
        self._channel_bulk = _bulk(keys.updates_channel.encode())
        self._idle = asyncio.Event()
        self._idle.set()
        self._drained = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # --- producer side (sync, cheap) ---------------------------------------------------------------
    def add(self, stream: str, payload: bytes, recv_ms: int, kind: int = LIVE) -> None:
        if len(self.pending) >= self.buffer_max and not self.redis_ok:  # Redis is down: bounded, oldest first
            # (while Redis is up the backlog is bounded by congested(): readers pause at HIGH_WATER, and what one
            # socket read already holds must not be thrown away)
            self.dropped += 1
            if self._sent >= len(self.pending):
                return  # everything held is in flight: the newest message is the one lost
            del self.pending[self._sent]  # the oldest message not yet sent
        self.pending.append((stream, payload, recv_ms, kind))
        if len(self.pending) - self._sent >= self.batch_max and len(self._inflight) < self.MAX_INFLIGHT:
            self._send_now()
        if not self._busy:  # first message since the writer took its last batch: wake it
            self._busy = True
            self._idle.clear()
            self._wake.set()

    def _send_now(self) -> None:
        """Send a full batch from inside the data path, without waiting for the writer's turn.

        picows hands over everything one socket read returned (thousands of frames after a pause) in one
        callback; without this, Redis would sit idle until that callback ends and the writer task runs.
        The write is synchronous (the transport buffers it); the writer task reads the reply in order.
        """
        conn = self._conn
        writer = stream_writer(conn)
        if writer is None or not self.redis_ok or self.fenced or not conn.is_connected or writer.is_closing():
            return
        batch, books = self._take()
        command = self._pack(batch, books)
        self._sent += len(batch)
        self._inflight.append((len(batch), books))
        self._has_inflight.set()
        writer.write(command)
        self._wake.set()

    def unfence(self) -> None:
        """The leadership came back with the same term: send what is held."""
        self.fenced = False
        self._wake.set()

    def discard(self) -> int:
        """Forget everything not yet written (this daemon stepped down); returns how many messages."""
        n = len(self.pending)
        self.pending.clear()
        self.books.clear()
        self._sent = 0
        self._inflight.clear()
        self._idle.set()
        self._drained.set()
        return n

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
        run = self._run_script if self.strategy == "script" else self._run_pipeline
        self._task = asyncio.create_task(run(), name="redis-writer")

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
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.disconnect()
            finally:
                await self.redis.connection_pool.release(conn)

    # --- shared bookkeeping ----------------------------------------------------------------------------
    def _unsent(self) -> int:
        return len(self.pending) - self._sent

    def _take(self) -> tuple[list[Message], dict[str, bytes]]:
        """The next batch: up to ``batch_max`` unsent messages and every changed book."""
        self._busy = False  # from here on, an add() wakes the loop again
        first = self._sent
        n = min(len(self.pending) - first, self.batch_max)
        pending = self.pending
        return [pending[i] for i in range(first, first + n)], dict(self.books)

    def _done(self, n: int, books: dict[str, bytes]) -> None:
        """A batch of the ``n`` oldest messages (and these book values) is in Redis."""
        if not self.redis_ok:
            log.warning("redis reachable again; writing %d buffered messages", len(self.pending))
        self.redis_ok = True
        for _ in range(n):
            self.pending.popleft()
        for sym, val in books.items():
            if self.books.get(sym) is val:
                del self.books[sym]
        self.written += n
        self.batches += 1
        if len(self.pending) <= self.LOW_WATER:
            self._drained.set()

    def _failed(self, e: BaseException) -> None:
        self.errors += 1
        if self.redis_ok:
            log.warning("redis write failed (%s: %s); buffering", type(e).__name__, e)
        self.redis_ok = False
        self._drained.set()  # readers keep reading into the bounded buffer
        self.last_error = f"{type(e).__name__}: {e}"

    async def _wait_for_work(self) -> None:
        if not self.pending and not self.books:
            self._idle.set()
        await self._wake.wait()
        self._wake.clear()
        await asyncio.sleep(0)  # let the rest of this loop turn's messages arrive

    async def _linger(self, loop: asyncio.AbstractEventLoop) -> None:
        # A small batch waits until linger_s after the previous one: at tens of thousands of messages a
        # second that halves the round trips (and syscalls) for <= linger_s of latency.
        wait = self._last_write + self.linger_s - loop.time()
        if wait > 0 and self._unsent() < self.batch_max // 4:
            await asyncio.sleep(wait)

    # --- script strategy: packed EVALSHA, pipelined on one connection --------------------------------
    async def _run_script(self) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.05
        replies = loop.create_task(self._read_replies(), name="redis-writer-replies")
        while not self._closing:
            try:
                if replies.done():
                    replies.result()  # it only ends by raising the error of a batch
                    raise ConnectionError("reply reader stopped")
                inflight = len(self._inflight)
                # send while fewer than MAX_INFLIGHT batches are out: under load the next batch is packed
                # while Redis runs the previous one, and each batch holds what arrived meanwhile
                if (not self.fenced and (self._unsent() or (self.books and not inflight))
                        and inflight < self.MAX_INFLIGHT):
                    await self._linger(loop)
                    await self._send_batch()
                    continue
                await self._wait_for_work()  # add(), _send_now() and every reply wake it
            except asyncio.CancelledError:
                replies.cancel()
                raise
            except Exception as e:
                replies.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await replies
                # whatever was in flight is resent (at least once); a dead or confused connection is replaced
                self._inflight.clear()
                self._sent = 0
                if self._conn is not None:
                    await self._conn.disconnect()
                self.reconnects += 1
                replies = loop.create_task(self._read_replies(), name="redis-writer-replies")
                if is_fenced(e):  # another daemon leads: hold everything until told to resume or discard
                    if not self.fenced:
                        log.warning("writer: a batch was refused by the fencing token (%s)", e)
                        self.fenced = True
                        if self.on_fenced is not None:
                            self.on_fenced()
                    continue
                if isinstance(e, AttributeError):  # redis-py closed the connection under a send (Redis dropped)
                    e = ConnectionError(f"connection closed while sending ({e})")
                if isinstance(e, NoScriptError):  # Redis restarted without our script: load it, resend
                    try:
                        self._sha = await self.redis.script_load(_BATCH_LUA)
                        continue
                    except Exception as e2:
                        e = e2
                if not isinstance(e, (RedisError, OSError, ConnectionError)):
                    log.exception("writer: unexpected error")
                self._failed(e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05

    async def _read_replies(self) -> None:
        """Complete in-flight batches in order. Replies already received are consumed without yielding to
        the loop, so one turn can complete every batch Redis has finished."""
        try:
            while True:
                while not self._inflight:
                    self._has_inflight.clear()
                    await self._has_inflight.wait()
                await self._conn.read_response()  # raises the batch's error (NoScriptError, ...)
                n, books = self._inflight.popleft()
                self._sent -= n
                self._done(n, books)
                self._wake.set()
        finally:
            self._wake.set()

    async def _send_batch(self) -> None:
        if self._conn is None:
            self._conn = await self.redis.connection_pool.get_connection()
        if not self._conn.is_connected:  # before anything is in flight: the reply reader must not race it
            await self._conn.connect()
        batch, books = self._take()
        command = self._pack(batch, books)
        self._sent += len(batch)
        self._inflight.append((len(batch), books))
        self._has_inflight.set()
        self._last_write = asyncio.get_running_loop().time()
        await self._conn.send_packed_command(command, check_health=False)

    def _pack(self, batch: list[Message], books: dict[str, bytes]) -> bytes:
        """EVALSHA of the batch as one RESP command (see _BATCH_LUA for the argument layout)."""
        # one pass: runs of one stream with one flag, in arrival order per stream (backfilled entries must
        # stay between the live entries they came between), and the newest live message of each stream
        newest: dict[str, tuple[bytes, int]] = {}
        runs: list[tuple[str, int, list[bytes]]] = []
        last: dict[str, tuple[str, int, list[bytes]]] = {}
        announce: dict[str, None] = {}  # streams with new history entries, in order
        for stream, payload, recv_ms, kind in batch:
            if kind == LATEST:  # no history entry, no announcement: the array stream itself has both
                newest[stream] = (payload, recv_ms)
                continue
            run = last.get(stream)
            if run is None or run[1] != kind:
                run = last[stream] = (stream, kind, [])
                runs.append(run)
            run[2].append(b"%d\n" % recv_ms + payload)
            if kind == LIVE:
                announce[stream] = None
                newest[stream] = (payload, recv_ms)
        updates = "\n".join([*announce, *(f"book:{s}" for s in books)]).encode()
        hist, lat = self._hist_bulk, self._latest_bulk
        assert self._sha is not None
        leader_key, token = self.fence()
        parts = [b"*%d\r\n$7\r\nEVALSHA\r\n" % (10 + 3 * len(runs) + 2 * (len(newest) + len(books))),
                 _bulk(_as_bytes(self._sha)), b"$1\r\n0\r\n", _bulk(b"%d" % self.maxlen),
                 _bulk(b"%d" % len(runs)), _bulk(b"%d" % (len(newest) + len(books))), self._channel_bulk,
                 _bulk(updates), _bulk(leader_key.encode()), _bulk(token.encode())]
        for stream, kind, entries in runs:
            blob = b"\x1e".join(entries)
            parts += (hist.get(stream) or self._cache_keys(stream)[0], _KIND_ARG[kind],
                      b"$%d\r\n" % len(blob), blob, b"\r\n")
        for stream, (payload, recv_ms) in newest.items():
            value = b'{"r":%d,"d":' % recv_ms + payload + b"}"
            parts += (lat.get(stream) or self._cache_keys(stream)[1], b"$%d\r\n" % len(value), value, b"\r\n")
        for sym, value in books.items():
            parts += (_bulk(self.keys.book(sym).encode()), _bulk(value))
        return b"".join(parts)

    def _cache_keys(self, stream: str) -> tuple[bytes, bytes]:
        if len(self._hist_bulk) > 100_000:  # bounded: streams come and go over a long run
            self._hist_bulk.clear()
            self._latest_bulk.clear()
        h = self._hist_bulk[stream] = _bulk(self.keys.history(stream).encode())
        t = self._latest_bulk[stream] = _bulk(self.keys.latest(stream).encode())
        return h, t

    # --- pipeline strategy (fakeredis): one MULTI-less pipeline per batch, one at a time ------------------
    async def _run_pipeline(self) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.05
        while not self._closing:
            if not self.pending and not self.books:
                await self._wait_for_work()
                continue
            await self._linger(loop)
            batch, books = self._take()
            try:
                await self._write_pipeline(batch, books)
            except (RedisError, OSError, ConnectionError) as e:
                self._failed(e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            self._last_write = loop.time()
            self._done(len(batch), books)

    async def _write_pipeline(self, batch: list[Message], books: dict[str, bytes]) -> None:
        k = self.keys
        latest: dict[str, bytes] = {}
        pipe = self.redis.pipeline(transaction=False)
        announce: set[str] = set()
        for stream, payload, recv_ms, kind in batch:
            if kind == LATEST:
                latest[stream] = b'{"r":%d,"d":' % recv_ms + payload + b"}"
                continue
            if kind == LIVE:
                announce.add(stream)
            fields: dict[str, Any] = {F_GAP if kind == GAP else F_DATA: payload, F_RECV: recv_ms}
            if kind == BACKFILL:
                fields[F_BACKFILL] = 1
            elif kind == LIVE:
                latest[stream] = b'{"r":%d,"d":' % recv_ms + payload + b"}"
            pipe.xadd(k.history(stream), fields, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
        for stream, value in latest.items():
            pipe.set(k.latest(stream), value)
        for sym, value in books.items():
            pipe.set(k.book(sym), value)
        updates = "\n".join([*(s for s in latest if s in announce), *(f"book:{s}" for s in books)])
        if updates:
            pipe.publish(k.updates_channel, updates)
        await pipe.execute()

    def stats(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "written": self.written, "buffered": len(self.pending),
                "dropped": self.dropped, "batches": self.batches, "errors": self.errors,
                "reconnects": self.reconnects, "fenced": self.fenced,
                "redis_ok": self.redis_ok, "last_error": self.last_error, "ts": int(time.time() * 1000)}
