"""The writer's ``script`` strategy: one EVALSHA per batch, packed here as RESP, pipelined on one connection.

The per-message work happens inside Redis (:data:`BATCH_LUA`). Keys are built by :mod:`binance_common.keys` and
passed in, so the key schema stays in one module; the stream keys' RESP encodings are cached. Up to
``MAX_INFLIGHT`` batches are in flight on one dedicated connection: while Redis runs one batch the daemon packs
the next, and one connection keeps Redis's execution order equal to arrival order. Every batch starts with the
fencing check (:func:`leadership.fence_check`): a deposed leader's batches are refused, and the writer holds
everything until it is told to resume or discard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError, RedisError

from binance_common.feedstore import encode_latest

from .leadership import fence_check, is_fenced
from .redis_adapter import stream_writer
from .writer_kinds import BACKFILL, GAP, LATEST, LIVE, Message

if TYPE_CHECKING:
    from .writer_base import WriterBase

log = logging.getLogger("binance_streamd.writer")

# ARGV: maxlen, n_groups, n_latest, channel, updates, leader key, fencing token ('' = unfenced), mark key,
# writer id, batch number, then n_groups x (hist key, kind flag, entries), then n_latest x (key, value).
# ``entries`` packs a group's messages as "<recv ms>\n<payload>" joined by \x1e (JSON text never contains a raw
# newline or \x1e): one argument per stream instead of four per message, which is what the client-side cost of
# a batch is made of (redis-py encodes every argument). Kind flags: 0 live data, 1 data from REST, 2 gap
# entries. The mark (``daemon:writer`` = "<writer id> <batch number>") makes a batch count once: a batch
# resent after its reply was lost (the connection dropped after Redis ran it) finds its number there and
# returns -1 without writing again.
BATCH_LUA = fence_check(6) + r"""
local mark = redis.call('GET', ARGV[8])
if mark then
  local sp = string.find(mark, ' ', 1, true)
  if sp and string.sub(mark, 1, sp - 1) == ARGV[9] and tonumber(string.sub(mark, sp + 1)) >= tonumber(ARGV[10]) then
    return -1
  end
end
redis.call('SET', ARGV[8], ARGV[9] .. ' ' .. ARGV[10])
local maxlen = ARGV[1]
local ng = tonumber(ARGV[2])
local nl = tonumber(ARGV[3])
local i = 11
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

_KIND_ARG = {LIVE: b"$1\r\n0\r\n", BACKFILL: b"$1\r\n1\r\n", GAP: b"$1\r\n2\r\n"}


def _as_bytes(v: str | bytes) -> bytes:
    return v if isinstance(v, bytes) else v.encode()


def _bulk(b: bytes) -> bytes:
    """A RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(b), b)


class ScriptStrategy:
    name = "script"
    MAX_INFLIGHT = 16

    def __init__(self, w: WriterBase, sha: str) -> None:
        self.w = w
        self._sha = sha
        self._inflight: deque[tuple[int, dict[str, bytes], int]] = deque()  # (messages, books, number) per batch
        self._resend: deque[tuple[int, int]] = deque()  # (messages, number) of batches to send again, as they were
        self._wid = uuid.uuid4().hex[:12]  # this writer's batches in the mark
        self._no = 0  # number of the last new batch
        self._confirmed = 0  # number of the last batch Redis answered
        self._check_mark = False  # after a failure: does Redis still hold every batch it answered?
        self._conn: Any = None  # the dedicated connection
        self._has_inflight = asyncio.Event()
        self._hist_bulk: dict[str, bytes] = {}  # stream -> RESP bulk string of its history key
        self._latest_bulk: dict[str, bytes] = {}
        self._channel_bulk = _bulk(w.keys.updates_channel.encode())
        self._mark_bulk = _bulk(w.keys.writer_mark.encode())

    @staticmethod
    async def load(redis: Any) -> str:
        """Load the batch script (raises where Redis has no scripting, e.g. fakeredis without Lua)."""
        sha: str = await redis.script_load(BATCH_LUA)
        return sha

    def forget_inflight(self) -> None:
        self._inflight.clear()
        self._resend.clear()

    def _next_batch(self) -> tuple[list[Message], dict[str, bytes], int]:
        """A batch to send: first any batch that must go again exactly as it went (same messages, same number:
        the mark then tells Redis whether it ran already), else the next unsent messages under a new number."""
        w = self.w
        if self._resend:
            n, no = self._resend.popleft()
            start = sum(x[0] for x in self._inflight)  # the resent batches go in order, right after these
            return [w.pending[i] for i in range(start, start + n)], {}, no
        batch, books = w._take()
        w._sent += len(batch)
        self._no += 1
        return batch, books, self._no

    def send_now(self) -> None:
        """Send a full batch from inside the data path, without waiting for the writer's turn.

        picows hands over everything one socket read returned (thousands of frames after a pause) in one
        callback; without this, Redis would sit idle until that callback ends and the writer task runs.
        The write is synchronous (the transport buffers it); the reply reader takes the reply in order.
        """
        w = self.w
        conn = self._conn
        writer = stream_writer(conn)
        if (writer is None or len(self._inflight) >= self.MAX_INFLIGHT or not w.redis_ok or w.fenced
                or not conn.is_connected or writer.is_closing() or self._resend):
            return
        batch, books, no = self._next_batch()
        command = self._pack(batch, books, no)
        self._inflight.append((len(batch), books, no))
        self._has_inflight.set()
        writer.write(command)
        w._wake.set()

    async def run(self) -> None:
        w = self.w
        loop = asyncio.get_running_loop()
        delay = 0.05
        replies = loop.create_task(self._read_replies(), name="redis-writer-replies")
        while not w._closing:
            try:
                if replies.done():
                    replies.result()  # it only ends by raising the error of a batch
                    raise ConnectionError("reply reader stopped")
                inflight = len(self._inflight)
                # send while fewer than MAX_INFLIGHT batches are out: under load the next batch is packed
                # while Redis runs the previous one, and each batch holds what arrived meanwhile
                if (not w.fenced and (self._resend or w._unsent() or (w.books and not inflight))
                        and inflight < self.MAX_INFLIGHT):
                    await w._linger(loop)
                    await self._send_batch()
                    continue
                await w._wait_for_work()  # add(), _send_now() and every reply wake it
            except asyncio.CancelledError:
                replies.cancel()
                raise
            except Exception as e:
                replies.cancel()
                self._check_mark = True
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await replies
                # whatever was in flight is sent again as it was (the mark skips a batch Redis ran already); a
                # dead or confused connection is replaced
                self._resend = deque([*((n, no) for n, _, no in self._inflight), *self._resend])
                self._inflight.clear()
                if self._conn is not None:
                    await self._conn.disconnect()
                w.reconnects += 1
                replies = loop.create_task(self._read_replies(), name="redis-writer-replies")
                if is_fenced(e):  # another daemon leads: hold everything until told to resume or discard
                    if not w.fenced:
                        log.warning("writer: a batch was refused by the fencing token (%s)", e)
                        w.fenced = True
                        if w.on_fenced is not None:
                            w.on_fenced()
                    continue
                if isinstance(e, AttributeError):  # redis-py closed the connection under a send (Redis dropped)
                    e = ConnectionError(f"connection closed while sending ({e})")
                if isinstance(e, NoScriptError):  # Redis restarted without our script: load it, resend
                    try:
                        self._sha = await w.redis.script_load(BATCH_LUA)
                        continue
                    except Exception as e2:
                        e = e2
                if not isinstance(e, (RedisError, OSError, ConnectionError)):
                    log.exception("writer: unexpected error")
                w._failed(e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05

    async def _read_replies(self) -> None:
        """Complete in-flight batches in order. Replies already received are consumed without yielding to
        the loop, so one turn can complete every batch Redis has finished."""
        w = self.w
        try:
            while True:
                while not self._inflight:
                    self._has_inflight.clear()
                    await self._has_inflight.wait()
                await self._conn.read_response()  # raises the batch's error (NoScriptError, ...)
                if not self._inflight:
                    continue  # the batches were discarded meanwhile (this daemon stepped down)
                n, books, no = self._inflight.popleft()
                self._confirmed = max(self._confirmed, no)
                w._sent -= n
                w._done(n, books)
                w._wake.set()
        finally:
            w._wake.set()

    async def _send_batch(self) -> None:
        w = self.w
        if self._conn is None:
            self._conn = await w.redis.connection_pool.get_connection()
        if not self._conn.is_connected:  # before anything is in flight: the reply reader must not race it
            await self._conn.connect()
        if self._check_mark:
            await self._rewound()
        batch, books, no = self._next_batch()
        command = self._pack(batch, books, no)
        self._inflight.append((len(batch), books, no))
        self._has_inflight.set()
        w._last_write = asyncio.get_running_loop().time()
        await self._conn.send_packed_command(command, check_health=False)

    async def _rewound(self) -> None:
        """After a failure, before sending again: when Redis no longer holds a batch it answered (restarted from
        an older snapshot, a lagging replica promoted, its data lost) the batches waiting to go again are
        dissolved (everything held is unsent) and ``on_rewound`` takes the trade streams back to where their
        histories in Redis now end, so nothing after that is skipped."""
        w = self.w
        mark = await w.redis.get(w.keys.writer_mark)
        self._check_mark = False
        wid, _, no = (mark.decode() if isinstance(mark, bytes) else mark or "").partition(" ")
        if not self._confirmed or (wid == self._wid and no.isdigit() and int(no) >= self._confirmed):
            return
        log.warning("writer: Redis no longer holds batches it confirmed (now at %r, confirmed %d): taking the "
                    "trade streams back to where Redis stands", mark, self._confirmed)
        self._resend.clear()
        w._sent = 0
        self._confirmed = 0
        w.rewinds += 1
        if w.on_rewound is not None:
            w.on_rewound()

    def _pack(self, batch: list[Message], books: dict[str, bytes], no: int) -> bytes:
        """EVALSHA of the batch as one RESP command (see BATCH_LUA for the argument layout)."""
        w = self.w
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
        leader_key, token = w.fence()
        parts = [b"*%d\r\n$7\r\nEVALSHA\r\n" % (13 + 3 * len(runs) + 2 * (len(newest) + len(books))),
                 _bulk(_as_bytes(self._sha)), b"$1\r\n0\r\n", _bulk(b"%d" % w.maxlen),
                 _bulk(b"%d" % len(runs)), _bulk(b"%d" % (len(newest) + len(books))), self._channel_bulk,
                 _bulk(updates), _bulk(leader_key.encode()), _bulk(token.encode()), self._mark_bulk,
                 _bulk(self._wid.encode()), _bulk(b"%d" % no)]
        for stream, kind, entries in runs:
            blob = b"\x1e".join(entries)
            parts += (hist.get(stream) or self._cache_keys(stream)[0], _KIND_ARG[kind],
                      b"$%d\r\n" % len(blob), blob, b"\r\n")
        for stream, (payload, recv_ms) in newest.items():
            value = encode_latest(recv_ms, payload)
            parts += (lat.get(stream) or self._cache_keys(stream)[1], b"$%d\r\n" % len(value), value, b"\r\n")
        for sym, value in books.items():
            parts += (_bulk(w.keys.book(sym).encode()), _bulk(value))
        return b"".join(parts)

    def _cache_keys(self, stream: str) -> tuple[bytes, bytes]:
        w = self.w
        if len(self._hist_bulk) > 100_000:  # bounded: streams come and go over a long run
            self._hist_bulk.clear()
            self._latest_bulk.clear()
        h = self._hist_bulk[stream] = _bulk(w.keys.history(stream).encode())
        t = self._latest_bulk[stream] = _bulk(w.keys.latest(stream).encode())
        return h, t

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.disconnect()
            finally:
                await self.w.redis.connection_pool.release(conn)
