"""The Redis writer: everything received in one event-loop turn goes to Redis in one round trip.

Per batch: ``XADD hist:<stream> MAXLEN ~ N * d <payload> r <recv ms> [b 1]`` for every message (gap entries
carry ``g``), one ``SET latest:<stream>`` per stream (the newest message of the batch), ``SET book:<SYMBOL>``
for changed books, and one ``PUBLISH updates`` naming what changed (:mod:`binance_common.feedstore`).

Two strategies behind this one interface, chosen at start: :class:`~binance_streamd.writer_script.ScriptStrategy`
(one fenced EVALSHA per batch, pipelined on one connection) and, for Redis servers without Lua (fakeredis in
embedded mode), :class:`~binance_streamd.writer_pipeline.PipelineStrategy`. What they share (the buffer,
backpressure, books, bookkeeping) is :class:`~binance_streamd.writer_base.WriterBase`.

When Redis is down the pending messages stay in a bounded buffer (oldest dropped past
``settings.redis_buffer_max``, counted in ``dropped``); the writer retries with backoff and never raises.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .writer_base import WriterBase, log
from .writer_kinds import BACKFILL, GAP, LATEST, LIVE, Message
from .writer_pipeline import PipelineStrategy
from .writer_script import ScriptStrategy

__all__ = ["BACKFILL", "GAP", "LATEST", "LIVE", "Message", "RedisWriter"]


class RedisWriter(WriterBase):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._strategy: ScriptStrategy | PipelineStrategy = PipelineStrategy(self)

    def _send_now(self) -> None:
        self._strategy.send_now()

    def _forget_inflight(self) -> None:
        self._strategy.forget_inflight()

    async def start(self) -> None:
        try:
            self._strategy = ScriptStrategy(self, await ScriptStrategy.load(self.redis))
        except Exception as e:
            log.info("writer: using pipelines (%s)", type(e).__name__)
            self._strategy = PipelineStrategy(self)
        self.strategy = self._strategy.name
        self._task = asyncio.create_task(self._strategy.run(), name="redis-writer")

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
        await self._strategy.close()

