"""The daemon's REST requests in priority order under the shared weight budget.

REST weight is scarce and shared (one budget per IP, kept by the governor in Redis). After a reconnect the
daemon needs two kinds of requests: trade catch-ups and backfills (small, and every second of delay is a
second of history readers cannot trust) and order-book snapshots (heavy: 50 weight at 1000 levels). They
go through one queue: lower :class:`Priority` first, first come first served within a priority (so
snapshots of many symbols are served fairly, one request per symbol in flight), at most ``workers``
requests in flight. When the governor holds a request back (the minute's budget is used, a 429 or 418
deadline), the request keeps its place and every worker waits until the deadline: nothing is sent over the
budget, and a catch-up queued meanwhile still goes first. Snapshots may use only part of the budget
(:data:`BUDGET_SHARE`): the rest stays available to catch-ups, so they are never starved by resyncs.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from binance_common.errors import RateLimitedError

log = logging.getLogger(__name__)

__all__ = ["Priority", "RestQueue"]


class Priority(IntEnum):
    CATCHUP = 0  # trade catch-ups and backfills
    SNAPSHOT = 1  # order-book snapshots
    BACKGROUND = 2  # exchangeInfo refreshes


# The share of the minute's budget each priority may draw on: what snapshots leave is for catch-ups (and for
# the front ends' own calls), so a wave of resyncs can never hold the recovery of trades back a minute.
BUDGET_SHARE = {Priority.CATCHUP: 1.0, Priority.SNAPSHOT: 0.7, Priority.BACKGROUND: 0.7}


@dataclass(order=True)
class _Item:
    priority: int
    seq: int
    path: str = field(compare=False)
    params: Mapping[str, Any] = field(compare=False)
    future: asyncio.Future[Any] = field(compare=False)


class RestQueue:
    """``rest``: an object with ``async get(path, params)`` (a :class:`binance_common.rest.BinanceRest`)."""

    def __init__(self, rest: Any, *, workers: int = 4, max_wait_s: float = 60.0) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.rest = rest
        self.workers = workers
        self.max_wait_s = max_wait_s
        self._heap: list[_Item] = []
        self._seq = itertools.count()
        self._ready = asyncio.Event()
        self._blocked_until = [0.0] * len(Priority)  # monotonic, per priority: its share is used up until then
        self._tasks: list[asyncio.Task[None]] = []
        self.sent: dict[str, int] = {p.name.lower(): 0 for p in Priority}
        self.held_back = 0  # times the governor held a request back
        self.in_flight = 0

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work(), name=f"rest-queue-{i}") for i in range(self.workers)]

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for item in self._heap:
            if not item.future.done():
                item.future.cancel()
        self._heap.clear()

    async def get(self, priority: Priority, path: str, params: Mapping[str, Any]) -> Any:
        """GET ``path`` once it is this request's turn; Binance errors other than rate limits propagate."""
        self.start()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, _Item(int(priority), next(self._seq), path, params, fut))
        self._ready.set()
        return await fut

    def queued(self) -> dict[str, int]:
        out = {p.name.lower(): 0 for p in Priority}
        for item in self._heap:
            out[Priority(item.priority).name.lower()] += 1
        return out

    def stats(self) -> dict[str, Any]:
        return {"queued": self.queued(), "sent": dict(self.sent), "held_back": self.held_back,
                "in_flight": self.in_flight,
                "blocked_for_s": {p.name.lower(): round(max(0.0, self._blocked_until[p] - time.monotonic()), 1)
                                  for p in Priority}}

    async def _next(self) -> _Item:
        """The first request (by priority, then age) whose priority is not held back; waits otherwise."""
        while True:
            now = time.monotonic()
            kept: list[_Item] = []
            found: _Item | None = None
            while self._heap:
                item = heapq.heappop(self._heap)
                if item.future.done():  # the caller gave up (cancelled)
                    continue
                if self._blocked_until[item.priority] > now:
                    kept.append(item)
                    continue
                found = item
                break
            for item in kept:
                heapq.heappush(self._heap, item)
            if found is not None:
                return found
            self._ready.clear()
            waits = [self._blocked_until[i.priority] - now for i in self._heap]
            timeout = max(0.01, min(waits)) if waits else None
            try:
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                pass

    async def _work(self) -> None:
        while True:
            item = await self._next()
            self.in_flight += 1
            try:
                share = BUDGET_SHARE[Priority(item.priority)]
                result = await self.rest.get(item.path, dict(item.params), budget_share=share)
            except RateLimitedError as e:
                # not sent (governor) or refused (429/418): keep the place; this priority (and every one below
                # it) waits for the deadline; a 429/418 stops every priority
                self.held_back += 1
                wait = min(self.max_wait_s, max(0.05, e.retry_after_s))
                until = time.monotonic() + wait
                lowest = 0 if e.status in (429, 418) else item.priority
                for p in Priority:
                    if p >= lowest:
                        self._blocked_until[p] = max(self._blocked_until[p], until)
                heapq.heappush(self._heap, item)
                self._ready.set()
                log.info("REST %s held back for %.1f s (%s)", item.path, wait, type(e).__name__)
            except asyncio.CancelledError:
                if not item.future.done():
                    item.future.cancel()
                raise
            except Exception as e:
                if not item.future.done():
                    item.future.set_exception(e)
            else:
                self.sent[Priority(item.priority).name.lower()] += 1
                if not item.future.done():
                    item.future.set_result(result)
            finally:
                self.in_flight -= 1
