"""The replica's latest-value cache against a real redis-server: a value the daemon announces replaces the
cached one at once, an unannounced one within 250 ms, nothing is cached while the updates channel is not
subscribed, and a cached answer's age is still the value's own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from binance_mcp.feed.base import LATEST_CACHE_S
from binance_mcp.runtime import Runtime
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
STREAM = "btcusdt@trade"


def value(t: int, recv_ms: int) -> bytes:
    return orjson.dumps({"r": recv_ms, "d": {"e": "trade", "E": recv_ms, "s": "BTCUSDT", "t": t, "p": "1.0",
                                             "q": "1.0", "T": recv_ms, "m": True, "M": True}})


@pytest.fixture
async def rt(settings_factory, redis_server) -> AsyncIterator[Runtime]:  # type: ignore[no-untyped-def]
    """A replica whose updates channel is subscribed (so its latest-value cache serves)."""
    runtime = Runtime(settings_factory(redis_url=redis_server.url), transport="memory")
    await runtime.start()
    try:
        await wait_until(lambda: runtime.bus.updates_epoch > 0, what="updates channel subscribed")
        yield runtime
    finally:
        await runtime.stop()


async def test_announced_values_replace_the_cache_at_once(rt: Runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    k = rt.keys
    await redis_client.hset(k.status(STREAM), mapping={"state": "live"})
    now = int(time.time() * 1000)
    await redis_client.set(k.latest(STREAM), value(1, now - 500))
    first = await rt.feed.latest(STREAM)
    assert first.data["trade_id"] == 1 and first.freshness.age_ms >= 500  # the value's own age
    reads = rt.feed._gen.get(STREAM, 0)
    await redis_client.set(k.latest(STREAM), value(2, now))
    await redis_client.publish(k.updates_channel, STREAM)  # as the daemon's writer announces it
    await wait_until(lambda: rt.feed._gen.get(STREAM, 0) > reads, what="the announcement received")
    assert (await rt.feed.latest(STREAM)).data["trade_id"] == 2
    # unannounced (an all-market array's fan-out, a status change): served within the cache's lifetime
    await redis_client.set(k.latest(STREAM), value(3, now))
    t0 = time.monotonic()
    await wait_until(lambda: _trade_id(rt, 3), what="the unannounced value", timeout=2)
    assert time.monotonic() - t0 <= LATEST_CACHE_S + 0.2
    # without the updates subscription nothing is served from the cache
    await rt.bus.stop()
    assert rt.bus.updates_epoch == 0
    await redis_client.set(k.latest(STREAM), value(4, now))
    assert (await rt.feed.latest(STREAM)).data["trade_id"] == 4


async def _trade_id(rt: Runtime, t: int) -> bool:
    return bool((await rt.feed.latest(STREAM)).data["trade_id"] == t)


async def _script_calls(redis_client) -> int:
    stats = await redis_client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))


async def test_callers_that_miss_together_share_one_read(rt: Runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    """20 callers after an announcement: one round trip between them; a caller that comes after a newer
    announcement than the read under way starts its own read and gets the newer value."""
    k = rt.keys
    await redis_client.hset(k.status(STREAM), mapping={"state": "live"})
    now = int(time.time() * 1000)
    await redis_client.set(k.latest(STREAM), value(1, now))
    assert (await rt.feed.latest(STREAM)).data["trade_id"] == 1  # the script is loaded, the cache filled
    rt.feed.invalidate([STREAM])
    before = await _script_calls(redis_client)
    answers = await asyncio.gather(*(rt.feed.latest(STREAM) for _ in range(20)))
    assert [a.data["trade_id"] for a in answers] == [1] * 20
    assert await _script_calls(redis_client) - before == 1
    # an announcement while a read is under way: the callers after it do not join the older read
    rt.feed.invalidate([STREAM])
    before = await _script_calls(redis_client)
    early = asyncio.ensure_future(rt.feed.latest(STREAM))
    await asyncio.sleep(0)  # one turn of the loop: early has started its read (no reply can be in yet)
    rt.feed.invalidate([STREAM])
    late = asyncio.ensure_future(rt.feed.latest(STREAM))
    await asyncio.gather(early, late)
    assert await _script_calls(redis_client) - before == 2
