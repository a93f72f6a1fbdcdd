"""BookManager: the I/O driver keeping many symbols' local books live (REST snapshots, feed diffs, resync of only
the affected symbol) and publishing them. The pure book and the official sync procedure are in orderbook.py.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from binance_common.errors import RateLimitedError
from binance_common.feedstore import BookState, book_marker
from binance_common.timeutil import now_ms

from .futures_book import FuturesBookSync, futures_snapshot_limit, is_futures_book
from .orderbook import BookSync, LocalBook

log = logging.getLogger(__name__)

__all__ = ["BookManager", "WriteFn"]

WriteFn = Callable[[str, bytes], Awaitable[None] | None]
DEPTH_PATH = "/api/v3/depth"


class BookManager:
    """Keeps the local books of ``symbols`` live and publishes them through ``write``.

    ``rest``: an object with ``async get(path, params) -> JSON`` (a :class:`binance_common.rest.BinanceRest`).
    ``top_n``: levels a side written. ``write(symbol, value)``: sync or async callback publishing the
    ``book:<SYMBOL>`` value (:meth:`LocalBook.to_json`); called at most once per ``write_interval_s`` per
    symbol, and the latest state is always written eventually (a delayed flush; :meth:`flush` forces it).
    ``write_interval_s = 0`` writes on every change. A book that is not live is written once as a marker
    (``state`` syncing or unsubscribed, no levels) so readers never take it for a live one.
    ``snapshot_limit``: depth levels asked for (1000 = weight 50; 5000 = weight 250). ``verify_after_s``: a
    book kept across a lost connection that no diff has proved continuous this long after the resubscription
    (a quiet symbol) is proved with a snapshot instead. ``retry_delays_s``: waits before the n-th snapshot retry (failed or stale); a 429/418 waits
    its ``Retry-After`` instead. ``max_concurrent_snapshots`` bounds snapshot requests in flight.
    ``clock``: monotonic seconds, for the write throttle.

    Symbols not configured are ignored by :meth:`on_diff` (see :meth:`add_symbol`).
    """

    def __init__(
        self,
        rest: Any,
        symbols: Iterable[str],
        *,
        top_n: int,
        write: WriteFn,
        snapshot_limit: int = 1000,
        write_interval_s: float = 0.1,
        verify_after_s: float = 2.0,
        retry_delays_s: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
        max_buffer: int = 10_000,
        max_concurrent_snapshots: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if top_n < 1:
            raise ValueError("top_n must be at least 1")
        if not retry_delays_s:
            raise ValueError("retry_delays_s must not be empty")
        self._rest = rest
        self._write = write
        self.top_n = top_n
        self.snapshot_limit = snapshot_limit
        self.write_interval_s = write_interval_s
        self.verify_after_s = verify_after_s
        self._delays = tuple(retry_delays_s)
        self._max_buffer = max_buffer
        self._clock = clock
        self._sem = asyncio.Semaphore(max_concurrent_snapshots)
        self._syncs: dict[str, BookSync] = {}
        self._fetch_tasks: dict[str, asyncio.Task[None]] = {}
        self._flush_tasks: dict[str, asyncio.Task[None]] = {}
        self._last_write: dict[str, float] = {}
        self._dirty: set[str] = set()
        self._errors: dict[str, str] = {}
        self._writes: dict[str, int] = {}
        self._live: dict[str, asyncio.Event] = {}
        self._since: dict[str, int] = {}  # when the book entered its current state (ms)
        self._verify_tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        for s in symbols:
            self.add_symbol(s)

    # --- symbols -------------------------------------------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        return list(self._syncs)

    def add_symbol(self, symbol: str) -> None:
        """Start keeping a book for ``symbol`` (no-op if kept already); it syncs on its first diff."""
        sym = symbol.upper()
        if sym not in self._syncs:
            futures = is_futures_book(sym)
            limit = futures_snapshot_limit(self.snapshot_limit) if futures else self.snapshot_limit
            kind = FuturesBookSync if futures else BookSync
            self._syncs[sym] = kind(sym, max_buffer=self._max_buffer, keep_levels=min(self.top_n, limit // 2),
                                    snapshot_limit=limit)
            self._writes[sym] = 0
            self._live[sym] = asyncio.Event()
            self._mark(sym, BookState.SYNCING)  # replaces whatever an earlier run left there

    async def remove_symbol(self, symbol: str) -> None:
        """Stop keeping ``symbol``'s book; its value is marked unsubscribed."""
        sym = symbol.upper()
        if self._syncs.pop(sym, None) is not None:
            self._mark(sym, BookState.UNSUBSCRIBED)
        self._live.pop(sym, None)
        self._since.pop(sym, None)
        self._dirty.discard(sym)
        await _cancel(self._fetch_tasks.pop(sym, None), self._flush_tasks.pop(sym, None),
                      self._verify_tasks.pop(sym, None))

    def _mark(self, sym: str, state: BookState) -> None:
        """Write a not-live marker now (no throttle: readers must stop using the book at once)."""
        self._since[sym] = now_ms()
        self._dirty.discard(sym)
        try:
            result = self._write(sym, book_marker(sym, state, self._since[sym]))
            if inspect.isawaitable(result):
                asyncio.ensure_future(result)
        except Exception:
            log.exception("order book %s: marker write failed", sym)

    # --- connection events -----------------------------------------------------------------------------
    def suspend(self, symbol: str) -> None:
        """The connection carrying ``symbol``'s diffs was lost: the book is not served until the new
        connection's first diff (or a snapshot) proves it continuous."""
        sync = self._syncs.get(symbol.upper())
        if sync is None or self._closed:
            return
        if sync.suspend().changed:
            self._live[sync.symbol].clear()
            self._mark(sync.symbol, BookState.SYNCING)

    def subscribed(self, symbol: str) -> None:
        """``symbol``'s depth stream is (re)acknowledged: a book with nothing to start from asks for its
        snapshot now; a kept book gets ``verify_after_s`` for a diff to prove it, then a snapshot."""
        sym = symbol.upper()
        sync = self._syncs.get(sym)
        if sync is None or self._closed:
            return
        sync.resumed()
        if sync.state == "syncing" and not sync.buffer:
            if sync.request_snapshot().fetch_snapshot:
                self._start_fetch(sym)
        elif sync.state == "verifying":
            task = self._verify_tasks.get(sym)
            if task is None or task.done():
                self._verify_tasks[sym] = asyncio.create_task(self._verify_later(sym), name=f"book-verify-{sym}")

    async def _verify_later(self, sym: str) -> None:
        await asyncio.sleep(self.verify_after_s)
        sync = self._syncs.get(sym)
        if sync is not None and sync.state == "verifying" and sync.request_snapshot().fetch_snapshot:
            log.info("order book %s: no diff since the reconnect; proving it with a snapshot", sym)
            self._start_fetch(sym)

    def book(self, symbol: str) -> LocalBook | None:
        """The live book of ``symbol``, or None while it is syncing (read-only use)."""
        sync = self._syncs.get(symbol.upper())
        return sync.book if sync is not None and sync.state == "live" else None

    async def wait_live(self, symbol: str) -> None:
        """Return once ``symbol``'s book is live (at once if it is). Bound it with ``asyncio.timeout``."""
        await self._live[symbol.upper()].wait()

    # --- input ---------------------------------------------------------------------------------------
    async def on_diff(self, symbol: str, payload: dict[str, Any], recv_ms: int) -> None:
        """Feed one depth diff of ``symbol`` (from ``<s>@depth`` or ``<s>@depth@100ms``), received at
        ``recv_ms`` (ms since epoch). Starts a snapshot fetch task when needed; a gap resyncs this symbol
        only. Duplicates (e.g. from two overlapping connections) are harmless."""
        sym = self._apply(symbol, payload, recv_ms)
        if sym is not None:
            await self._publish(sym)

    def on_diff_nowait(self, symbol: str, payload: dict[str, Any], recv_ms: int) -> None:
        """:meth:`on_diff` for a synchronous caller (the daemon's data path): the book changes now, and its
        write is left to one flush task per symbol and write interval instead of a task per diff."""
        sym = self._apply(symbol, payload, recv_ms)
        if sym is None:
            return
        self._dirty.add(sym)
        task = self._flush_tasks.get(sym)
        if task is None or task.done():
            wait = max(0.0, self.write_interval_s - (self._clock() - self._last_write.get(sym, float("-inf"))))
            self._flush_tasks[sym] = asyncio.get_running_loop().create_task(
                self._flush_later(sym, wait), name=f"book-flush-{sym}")

    def _apply(self, symbol: str, payload: dict[str, Any], recv_ms: int) -> str | None:
        """Feed the diff to the symbol's sync state machine; the symbol when its live book changed."""
        sync = self._syncs.get(symbol.upper())
        if sync is None or self._closed:
            return None
        was = sync.state
        res = sync.on_diff(payload, recv_ms)
        if res.gap:
            self._live[sync.symbol].clear()
            if was != "syncing":
                self._mark(sync.symbol, BookState.SYNCING)
            if not res.refresh:
                log.warning("order book %s: missed depth updates; resyncing this symbol", sync.symbol)
        elif was == "verifying" and sync.state == "live":
            self._since[sync.symbol] = now_ms()
            self._live[sync.symbol].set()
        if res.fetch_snapshot:
            self._start_fetch(sync.symbol)
        return sync.symbol if res.changed else None

    async def touch(self, symbol: str, recv_ms: int) -> None:
        """Mark ``symbol``'s live book current as of ``recv_ms`` without a diff and publish it (throttled).

        A quiet symbol can go minutes without a depth diff while its book stays exact; the daemon may call
        this when it knows the depth stream is alive (e.g. a recent frame or pong on its connection), so
        the ``asof`` readers see does not make a correct book look stale. No-op while syncing.
        """
        sync = self._syncs.get(symbol.upper())
        if sync is None or self._closed or sync.state != "live":
            return
        if sync.last_recv_ms is None or recv_ms > sync.last_recv_ms:
            sync.last_recv_ms = recv_ms
            await self._publish(sync.symbol)

    async def resync(self, symbol: str) -> None:
        """Discard ``symbol``'s book and sync it again from its next diff."""
        sym = symbol.upper()
        sync = self._syncs.get(sym)
        if sync is None:
            return
        await _cancel(self._fetch_tasks.pop(sym, None))
        was = sync.state
        sync.reset()
        sync.resyncs += 1
        self._live[sym].clear()
        if was != "syncing":
            self._mark(sym, BookState.SYNCING)

    # --- snapshots -----------------------------------------------------------------------------------
    def _start_fetch(self, sym: str) -> None:
        task = self._fetch_tasks.get(sym)
        if task is not None and not task.done():
            return  # the running loop sees snapshot_requested and fetches again
        self._fetch_tasks[sym] = asyncio.create_task(self._fetch_loop(sym), name=f"book-snapshot-{sym}")

    async def _fetch_loop(self, sym: str) -> None:
        attempt = 0
        while not self._closed:
            sync = self._syncs.get(sym)
            if sync is None or not sync.snapshot_requested:
                return
            delay = 0.0
            try:
                async with self._sem:
                    data = await self._rest.get(DEPTH_PATH, {"symbol": sym, "limit": self.snapshot_limit})
                res = sync.on_snapshot(int(data["lastUpdateId"]), data["bids"], data["asks"])
            except asyncio.CancelledError:
                raise
            except Exception as e:
                sync.snapshot_requested = True  # still wanted: this loop retries
                self._errors[sym] = f"{type(e).__name__}: {e}"
                delay = self._delays[min(attempt, len(self._delays) - 1)]
                if isinstance(e, RateLimitedError):
                    delay = max(delay, e.retry_after_s)
                attempt += 1
                log.warning("order book %s: snapshot failed (%s); retrying in %.2f s", sym, e, delay)
            else:
                self._errors.pop(sym, None)
                if res.changed:
                    if sync.last_recv_ms is None:  # no buffered diff was newer: the snapshot is the data
                        sync.last_recv_ms = now_ms()
                    self._since[sym] = now_ms()
                    self._live[sym].set()
                    await self._publish(sym)
                if res.fetch_snapshot:
                    delay = self._delays[min(attempt, len(self._delays) - 1)]
                    attempt += 1
                    log.info("order book %s: snapshot older than buffered diffs; fetching again", sym)
            await asyncio.sleep(delay)  # also when 0: never spin without yielding

    # --- output --------------------------------------------------------------------------------------
    async def _publish(self, sym: str) -> None:
        elapsed = self._clock() - self._last_write.get(sym, float("-inf"))
        if elapsed >= self.write_interval_s:
            await self._write_now(sym)
            return
        self._dirty.add(sym)
        task = self._flush_tasks.get(sym)
        if task is None or task.done():
            wait = self.write_interval_s - elapsed
            self._flush_tasks[sym] = asyncio.create_task(self._flush_later(sym, wait), name=f"book-flush-{sym}")

    async def _flush_later(self, sym: str, wait: float) -> None:
        await asyncio.sleep(wait)
        if sym in self._dirty:
            await self._write_now(sym)

    async def _write_now(self, sym: str) -> None:
        self._dirty.discard(sym)
        sync = self._syncs.get(sym)
        if sync is None or sync.state != "live":
            return
        value = sync.book.to_json(self.top_n, sync.last_recv_ms, self._since.get(sym))
        self._last_write[sym] = self._clock()
        try:
            result = self._write(sym, value)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("order book %s: write failed", sym)
            self._dirty.add(sym)  # written again with the next change or flush
        else:
            self._writes[sym] += 1

    async def flush(self) -> None:
        """Write every book that changed since its last write, now."""
        for sym in list(self._dirty):
            await self._write_now(sym)

    # --- status and shutdown -------------------------------------------------------------------------
    def status(self) -> dict[str, dict[str, Any]]:
        """Per symbol: ``state`` (syncing|verifying|live), ``lastUpdateId`` (None while syncing), ``E``, ``buffered``,
        ``resyncs``, ``gaps``, ``snapshots``, ``stale_snapshots``, ``writes``, ``last_error`` (of the last
        failed snapshot request, cleared by the next success)."""
        out: dict[str, dict[str, Any]] = {}
        for sym, sync in self._syncs.items():
            st = sync.status()
            st["writes"] = self._writes.get(sym, 0)
            st["last_error"] = self._errors.get(sym)
            out[sym] = st
        return out

    async def close(self) -> None:
        """Write pending changes, then stop every task. Further diffs are ignored."""
        if self._closed:
            return
        await self.flush()
        self._closed = True
        tasks = [*self._fetch_tasks.values(), *self._flush_tasks.values(), *self._verify_tasks.values()]
        self._fetch_tasks.clear()
        self._flush_tasks.clear()
        self._verify_tasks.clear()
        await _cancel(*tasks)


async def _cancel(*tasks: asyncio.Task[None] | None) -> None:
    live = [t for t in tasks if t is not None and not t.done()]
    for t in live:
        t.cancel()
    if live:
        await asyncio.gather(*live, return_exceptions=True)
