"""The writer's ``pipeline`` strategy: one MULTI-less redis-py pipeline per batch, one batch at a time.

For Redis servers without scripting (fakeredis in embedded mode: one process, nothing to fence).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from binance_common.feedstore import F_BACKFILL, F_DATA, F_GAP, F_RECV, encode_latest

from .writer_kinds import BACKFILL, GAP, LATEST, LIVE, Message

if TYPE_CHECKING:
    from .writer_base import WriterBase


class PipelineStrategy:
    name = "pipeline"

    def __init__(self, w: WriterBase) -> None:
        self.w = w

    def send_now(self) -> None:
        """Batches are sent by the writer task only."""

    def forget_inflight(self) -> None:
        """Nothing is in flight between batches."""

    async def run(self) -> None:
        w = self.w
        loop = asyncio.get_running_loop()
        delay = 0.05
        while not w._closing:
            if not w.pending and not w.books:
                await w._wait_for_work()
                continue
            await w._linger(loop)
            batch, books = w._take()
            w._sent = len(batch)  # in flight: an overflow or a withdrawal leaves them alone
            try:
                await self._write(batch, books)
            except (RedisError, OSError, ConnectionError) as e:
                w._sent = 0
                w._failed(e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            w._last_write = loop.time()
            w._sent = 0
            w._done(len(batch), books)

    async def _write(self, batch: list[Message], books: dict[str, bytes]) -> None:
        w = self.w
        k = w.keys
        latest: dict[str, bytes] = {}
        pipe = w.redis.pipeline(transaction=False)
        announce: set[str] = set()
        for stream, payload, recv_ms, kind in batch:
            if kind == LATEST:
                latest[stream] = encode_latest(recv_ms, payload)
                continue
            if kind == LIVE:
                announce.add(stream)
            fields: dict[str, Any] = {F_GAP if kind == GAP else F_DATA: payload, F_RECV: recv_ms}
            if kind == BACKFILL:
                fields[F_BACKFILL] = 1
            elif kind == LIVE:
                latest[stream] = encode_latest(recv_ms, payload)
            pipe.xadd(k.history(stream), fields, maxlen=w.maxlen, approximate=True)  # type: ignore[arg-type]
        for stream, value in latest.items():
            pipe.set(k.latest(stream), value)
        for sym, value in books.items():
            pipe.set(k.book(sym), value)
        updates = "\n".join([*(s for s in latest if s in announce), *(f"book:{s}" for s in books)])
        if updates:
            pipe.publish(k.updates_channel, updates)
        await pipe.execute()

    async def close(self) -> None:
        return None
