"""Latest values and statuses of streams (``latest:<stream>``, ``status:<stream>``)."""

from __future__ import annotations

from typing import Any

from binance_common.feedstore import decode_latest
from binance_common.models import event_time_ms
from binance_common.timeutil import now_ms

from ..answers.provenance import STATE_NOT_SUBSCRIBED, Freshness, freshness, stale_after_ms
from ..answers.streams import StreamLatest, StreamStatus
from .base import FeedBase, decode_payload, status_model

Decoded = tuple[bytes, tuple[int, Any] | None, Any, bool]
"""A latest value as decoded once: (the stored bytes, (received ms, payload), readable data, readable?)."""


class LatestReads(FeedBase):
    async def latest(self, stream: str, *, raw: bool = False) -> StreamLatest:
        blob, state, reason = await self.latest_and_state(stream)
        status = StreamStatus(state=state or STATE_NOT_SUBSCRIBED, reason=reason or None)
        return self.latest_from(stream, blob, status, raw=raw, memo=self.decoded)

    @staticmethod
    def latest_from(stream: str, blob: bytes | None, status: StreamStatus, *, raw: bool = False,
                    memo: dict[str, Decoded] | None = None) -> StreamLatest:
        """``memo``: decoded values by stream, reused while the stored bytes are the same object (a cached read)."""
        threshold = stale_after_ms(stream)
        hit = memo.get(stream) if memo is not None and blob is not None else None
        if hit is not None and hit[0] is blob:
            value, data, ok = hit[1], hit[2], hit[3]
        else:
            value = decode_latest(blob)
            data, ok = decode_payload(stream, value[1]) if value is not None else (None, False)
            if memo is not None and blob is not None:
                if len(memo) >= 10_000:
                    memo.clear()
                memo[stream] = (blob, value, data, ok)
        if value is None:  # nothing yet (or an unreadable value: treated as nothing, never served)
            fr = freshness(
                now_ms=now_ms(), threshold_ms=threshold, received_ms=None, state=status.state, reason=status.reason
            )
            return StreamLatest(stream=stream, data=None, decoded=False, freshness=fr)
        received, payload = value
        fr = freshness(
            now_ms=now_ms(),
            threshold_ms=threshold,
            received_ms=received,
            state=status.state,
            reason=status.reason,
            event_time_ms=event_time_ms(payload),
        )
        if raw:
            return StreamLatest(stream=stream, data=payload, decoded=False, freshness=fr)
        return StreamLatest(stream=stream, data=data, decoded=ok, freshness=fr)

    async def statuses(self, streams: list[str]) -> dict[str, StreamStatus]:
        if not streams:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for s in streams:
            pipe.hgetall(self.keys.status(s))
        rows = await pipe.execute()
        return {s: status_model(h) for s, h in zip(streams, rows, strict=True)}

    async def latest_many(self, streams: list[str]) -> dict[str, StreamLatest]:
        """Latest value and status of many streams in one round trip."""
        if not streams:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for s in streams:
            pipe.get(self.keys.latest(s))
            pipe.hgetall(self.keys.status(s))
        rows = await pipe.execute()
        out: dict[str, StreamLatest] = {}
        for i, s in enumerate(streams):
            out[s] = self.latest_from(s, rows[2 * i], status_model(rows[2 * i + 1]))
        return out


def freshness_for(stream: str, latest: StreamLatest | None, status: StreamStatus) -> Freshness:
    """Freshness of a stream from its latest value (or lack of one) and status."""
    if latest is not None:
        return latest.freshness
    return freshness(
        now_ms=now_ms(), threshold_ms=stale_after_ms(stream), received_ms=None, state=status.state, reason=status.reason
    )
