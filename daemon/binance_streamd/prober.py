"""Find the names Binance refuses in a refused SUBSCRIBE batch, on a connection of its own.

Binance refuses a whole SUBSCRIBE message for one bad name, and a connection may send only 5 control
messages a second. Sorting a batch out one name at a time on the data connection would hold every other
subscription of that connection back for a minute (200 names at 4/s); bisecting on a separate probe
connection costs the data connections nothing: ``O(bad * log n)`` messages on the probe's own budget.

The probe connection opens on demand and closes when idle (or when it has collected many subscriptions:
names that pass are not unsubscribed, which would double the messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from .connection import SubscribeError, WsConnection

log = logging.getLogger(__name__)

__all__ = ["Prober"]

MAX_PROBE_STREAMS = 500


class Prober:
    def __init__(self, open_conn: Callable[[], Awaitable[WsConnection]], *, idle_close_s: float = 10.0) -> None:
        self._open = open_conn
        self.idle_close_s = idle_close_s
        self._conn: WsConnection | None = None
        self._lock = asyncio.Lock()
        self._idle_task: asyncio.Task[None] | None = None
        self.probes = 0  # SUBSCRIBE messages sent by the prober

    async def refused(self, streams: list[str]) -> dict[str, str]:
        """Name -> Binance's reason, for every name of ``streams`` that Binance refuses."""
        async with self._lock:
            if self._idle_task is not None:
                self._idle_task.cancel()
            try:
                return await self._bisect(streams)
            finally:
                if self._conn is not None and len(self._conn.streams) > MAX_PROBE_STREAMS:
                    await self._drop()
                self._idle_task = asyncio.create_task(self._close_when_idle(), name="prober-idle")

    async def _connection(self) -> WsConnection:
        if self._conn is None or self._conn.closed.is_set():
            self._conn = await self._open()
        return self._conn

    async def _bisect(self, streams: list[str]) -> dict[str, str]:
        if not streams:
            return {}
        conn = await self._connection()
        self.probes += 1
        try:
            await conn.subscribe(streams)
            return {}
        except SubscribeError as e:
            if conn.closed.is_set() or e.reason.startswith("no answer"):
                raise
            if len(streams) == 1:
                return {streams[0]: e.reason}
        mid = len(streams) // 2
        out = await self._bisect(streams[:mid])
        out.update(await self._bisect(streams[mid:]))
        return out

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close("probe done")

    async def _close_when_idle(self) -> None:
        await asyncio.sleep(self.idle_close_s)
        async with self._lock:
            await self._drop()

    async def close(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._idle_task
        await self._drop()
