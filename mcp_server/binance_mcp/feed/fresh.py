"""Stream-first answers: serve a market tool from the live feed when it holds fresh data.

A market tool names candidate streams (or the book, :meth:`~.books.BookReads.fresh_book`); a value younger
than its stream kind's serve limit (:data:`~binance_mcp.answers.provenance.LIMITS`) answers with
``source="ws"`` and its age, costing no REST weight. Otherwise (or with ``source="rest"``) the tool calls
Binance.

Trades are served from a stream's history only when the subscription is live, the newest entry is recent,
and the last ``count`` entries have contiguous trade ids (no gap the daemon has not filled), so a stream
answer is exactly what REST would have said.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from redis.exceptions import RedisError

from binance_common.feedstore import DataEntry, decode_history, decode_latest
from binance_common.timeutil import now_ms

from ..answers.provenance import Fresh, limits
from .base import FeedBase, text

log = logging.getLogger(__name__)

SourceChoice = Literal["auto", "rest", "stream"]
T = TypeVar("T")


class StreamUnavailable(ValueError):
    """``source="stream"`` was asked for and the feed holds no fresh data; the message says what to do."""


class FreshReads(FeedBase):
    async def fresh_latest(self, streams: list[str]) -> Fresh | None:
        """The freshest ``latest:<stream>`` among ``streams`` within its kind's serve limit."""
        if not streams:
            return None
        pipe = self.r.pipeline(transaction=False)
        for s in streams:
            pipe.get(self.keys.latest(s))
        blobs = await pipe.execute()
        now = now_ms()
        best: Fresh | None = None
        for s, blob in zip(streams, blobs, strict=True):
            value = decode_latest(blob)
            if value is None:
                continue
            recv, payload = value
            age = max(0, now - recv)
            if age <= limits(s).serve_ms and (best is None or age < best.age_ms):
                best = Fresh(s, payload, recv, age)
        return best

    async def fresh_history(self, stream: str, *, count: int, id_field: str) -> tuple[list[dict[str, Any]], Fresh] | None:
        """The last ``count`` payloads of a live stream's history (oldest first), when they are complete.

        Complete means: the daemon reports the stream live, its newest value is within the serve limit, and
        after ordering by ``id_field`` (``t`` for trades, ``a`` for aggTrades) the ids are contiguous.
        """
        pipe = self.r.pipeline(transaction=False)
        pipe.get(self.keys.latest(stream))
        pipe.hget(self.keys.status(stream), "state")
        pipe.xrevrange(self.keys.history(stream), "+", "-", count=count + count // 2 + 10)  # room for dupes
        blob, state, rows = await pipe.execute()
        value = decode_latest(blob)
        if value is None or text(state) != "live":
            return None
        recv = value[0]
        age = max(0, now_ms() - recv)
        if age > limits(stream).serve_ms:
            return None
        by_id: dict[int, dict[str, Any]] = {}
        for _eid, fields in rows:
            try:
                entry = decode_history(fields)
            except (ValueError, KeyError, TypeError):  # unreadable entry: breaks contiguity below
                continue
            p = entry.payload if isinstance(entry, DataEntry) else None
            if not isinstance(p, dict) or not isinstance(p.get(id_field), int):
                continue  # gap entries break contiguity below
            by_id.setdefault(p[id_field], p)
        ids = sorted(by_id)[-count:]
        if len(ids) < count or ids[-1] - ids[0] != count - 1:
            return None
        return [by_id[i] for i in ids], Fresh(stream, None, recv, age)


async def lookup(
    choice: SourceChoice, what: str, subscribe_hint: str, finder: Callable[[], Awaitable[T | None]]
) -> T | None:
    """Run ``finder()`` (an awaitable factory) per ``choice``: None for rest; for auto, None when the feed has
    nothing fresh or is unreachable; for stream, raise StreamUnavailable instead of returning None."""
    if choice == "rest":
        return None
    try:
        found = await finder()
    except (RedisError, OSError) as e:
        if choice == "stream":
            raise StreamUnavailable(f"the live feed store (Redis) is unreachable ({type(e).__name__}); use source='rest'") from e
        log.debug("stream-first lookup failed, using REST: %s", e)
        return None
    if found is None and choice == "stream":
        raise StreamUnavailable(
            f"the live feed holds no fresh {what}: subscribe first with subscribe_streams({subscribe_hint}) and "
            "retry in a second, or use source='auto' (falls back to REST) or 'rest'"
        )
    return found
