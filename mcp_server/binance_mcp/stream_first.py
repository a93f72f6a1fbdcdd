"""Stream-first answers: serve a market-data tool from the live feed in Redis when it holds fresh data.

The daemon writes ``latest:<stream>`` (``{"r": recv ms, "d": payload}``), ``hist:<stream>`` (fields ``d``,
``r``) and ``book:<SYMBOL>`` (see ``binance_common.keys``). A tool asks for a candidate stream (or the book);
when the value is younger than its freshness threshold it answers from it with ``source="ws"`` and the age,
costing no REST weight. Otherwise (or with ``source="rest"``) it calls Binance.

Trades are served from a stream's history only when the subscription is live, the newest entry is recent, and
the last ``limit`` entries have contiguous trade ids (no gap the daemon has not filled), so a stream answer is
exactly what REST would have said.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from binance_common.feedstore import decode_book
from binance_common.keys import Keys
from binance_common.timeutil import now_ms

log = logging.getLogger(__name__)

SourceChoice = Literal["auto", "rest", "stream"]
T = TypeVar("T")

# Freshness thresholds, ms: a stream value older than this is not used for an answer.
FRESH_TICKER_MS = 5_000  # bookTicker, ticker, miniTicker, rolling tickers, avgPrice (pushed at least every 1 s)
FRESH_DEPTH_MS = 5_000  # partial depth (pushed every 100/1000 ms) and the local order book
FRESH_TRADES_MS = 60_000  # trade/aggTrade: event-driven, a live stream of a quiet pair may be silent a while


class StreamUnavailable(ValueError):
    """``source="stream"`` was asked for and the feed holds no fresh data; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Fresh:
    """A fresh value from the feed."""

    stream: str  # the stream name, or "book:<SYMBOL>"
    payload: Any
    received_ms: int
    age_ms: int


def _decode(blob: bytes | str | None) -> dict[str, Any] | None:
    if blob is None:
        return None
    try:
        v = orjson.loads(blob)
    except orjson.JSONDecodeError:
        return None
    return v if isinstance(v, dict) else None


async def fresh_latest(r: aioredis.Redis, keys: Keys, streams: list[str], max_age_ms: int) -> Fresh | None:
    """The freshest ``latest:<stream>`` among ``streams`` that is at most ``max_age_ms`` old."""
    if not streams:
        return None
    pipe = r.pipeline(transaction=False)
    for s in streams:
        pipe.get(keys.latest(s))
    blobs = await pipe.execute()
    now = now_ms()
    best: Fresh | None = None
    for s, blob in zip(streams, blobs, strict=True):
        env = _decode(blob)
        if env is None or "d" not in env:
            continue
        try:
            recv = int(env.get("r") or 0)
        except (TypeError, ValueError):
            continue
        age = max(0, now - recv)
        if age <= max_age_ms and (best is None or age < best.age_ms):
            best = Fresh(s, env["d"], recv, age)
    return best


async def fresh_book(r: aioredis.Redis, keys: Keys, symbol: str, max_age_ms: int) -> Fresh | None:
    """The daemon's local order book of ``symbol`` when it is live (continuity proven; never while it is
    resyncing) and updated within ``max_age_ms``."""
    blob = await r.get(keys.book(symbol))
    value = decode_book(blob)
    if value is None or not value.live or value.last_update_id is None:
        return None
    asof = value.asof if isinstance(value.asof, int) else 0
    age = max(0, now_ms() - asof)
    if age > max_age_ms:
        return None
    return Fresh(f"book:{symbol.upper()}", _decode(blob), asof, age)


async def fresh_history(
    r: aioredis.Redis, keys: Keys, stream: str, *, count: int, id_field: str, max_age_ms: int
) -> tuple[list[dict[str, Any]], Fresh] | None:
    """The last ``count`` payloads of a live stream's history (oldest first), when they are complete.

    Complete means: the daemon reports the stream live, its newest value is at most ``max_age_ms`` old, and
    after ordering by ``id_field`` (``t`` for trades, ``a`` for aggTrades) the ids are contiguous.
    """
    pipe = r.pipeline(transaction=False)
    pipe.get(keys.latest(stream))
    pipe.hget(keys.status(stream), "state")
    pipe.xrevrange(keys.history(stream), "+", "-", count=count + count // 2 + 10)  # room for backfilled dupes
    blob, state, rows = await pipe.execute()
    env = _decode(blob)
    st = state.decode() if isinstance(state, bytes) else state
    if env is None or st != "live":
        return None
    recv = int(env.get("r") or 0)
    age = max(0, now_ms() - recv)
    if age > max_age_ms:
        return None
    by_id: dict[int, dict[str, Any]] = {}
    for _eid, fields in rows:
        f = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
        p = _decode(f.get("d"))
        if p is None or not isinstance(p.get(id_field), int):
            continue
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
