"""What both writer strategies work on: the bounded buffer in arrival order, backpressure marks, book values,
batching, retries and statistics (see :mod:`writer`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from binance_common.keys import Keys

from .writer_kinds import LIVE, Message

log = logging.getLogger("binance_streamd.writer")


class WriterBase:
    """The buffer, backpressure, books, batching and bookkeeping a strategy works on."""

    HIGH_WATER = 100_000
    LOW_WATER = 25_000

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
        self.last_error: str | None = None
        self.strategy = "pipeline"
        self.fence = fence or (lambda: ("", ""))  # (leader key, token) checked by the batch script
        self.on_fenced = on_fenced
        self.on_dropped: Callable[[Message], bool] | None = None
        """Told of every message the full buffer throws away (Redis down); True when it took the stream back."""
        self.on_rewound: Callable[[], None] | None = None
        """Told when Redis lost writes it had confirmed (the writer's buffer is all unsent again)."""
        self.rewinds = 0
        self._ok = asyncio.Event()  # set while Redis takes writes (``redis_ok``; catch-ups wait on it)
        self._ok.set()
        self.fenced = False  # a batch was refused: this daemon no longer leads; nothing more is sent
        self.reconnects = 0
        self._wake = asyncio.Event()
        self._busy = False  # messages were added since the writer last looked
        self._last_write = 0.0  # loop time of the last batch sent
        self._sent = 0  # messages at the head of ``pending`` sent and awaiting their reply
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
            if self._sent >= len(self.pending):  # everything held is in flight: the newest message is the one lost
                self._lost((stream, payload, recv_ms, kind))
                return
            victim = self.pending[self._sent]  # the oldest message not yet sent
            del self.pending[self._sent]
            if self._lost(victim) and victim[0] == stream:
                return  # its stream was taken back from that point on: this newer message is fetched again too
        self.pending.append((stream, payload, recv_ms, kind))
        if len(self.pending) - self._sent >= self.batch_max:
            self._send_now()
        if not self._busy:  # first message since the writer took its last batch: wake it
            self._busy = True
            self._idle.clear()
            self._wake.set()

    @property
    def redis_ok(self) -> bool:
        """False from a failed write until the next batch Redis answers."""
        return self._ok.is_set()

    @redis_ok.setter
    def redis_ok(self, ok: bool) -> None:
        if ok:
            self._ok.set()
        else:
            self._ok.clear()

    def _lost(self, msg: Message) -> bool:
        """``on_dropped`` for a message the full buffer threw away; True when its stream was taken back (the
        data path recovers it from that message on, so its later unsent messages were withdrawn)."""
        return self.on_dropped is not None and self.on_dropped(msg)

    def withdraw(self, stream: str) -> list[Message]:
        """Remove every unsent message of ``stream`` and return them (its owner recovers them, in order)."""
        first = self._sent
        keep: list[Message] = []
        out: list[Message] = []
        for i, m in enumerate(self.pending):
            (out if i >= first and m[0] == stream else keep).append(m)
        if out:
            self.pending = deque(keep)
        return out

    async def writable(self) -> None:
        """Return once Redis takes writes (at once while it does): a catch-up waits here instead of filling
        the buffer of a Redis that is down."""
        await self._ok.wait()

    def _send_now(self) -> None:
        """Send a full batch from inside the data path (the script strategy can; the pipeline one cannot)."""

    def _forget_inflight(self) -> None:
        """Nothing sent is awaited any more (the batches are dropped)."""

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
        self._forget_inflight()
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
    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything added so far is in Redis (False on timeout, e.g. Redis down)."""
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

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

    def stats(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "written": self.written, "buffered": len(self.pending),
                "dropped": self.dropped, "batches": self.batches, "errors": self.errors,
                "reconnects": self.reconnects, "rewinds": self.rewinds, "fenced": self.fenced,
                "redis_ok": self.redis_ok, "last_error": self.last_error, "ts": int(time.time() * 1000)}
