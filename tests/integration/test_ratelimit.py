"""The shared REST weight governor: budget, header sync, 429/418 sharing, fallback, on real Redis (Lua) and
fakeredis (no Lua)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import fakeredis
import pytest
import redis.asyncio as aioredis

from binance_common.errors import InvalidParameterError, IPBannedError, RateLimitedError
from binance_common.keys import Keys
from binance_common.ratelimit import (
    WINDOW_MS,
    LocalBudget,
    RedisGovernor,
    budget_of,
    retry_after_s,
    used_weight_header,
)


class Clock:
    """A settable clock (seconds), placed mid-minute by default so header sync is not in its grace second."""

    def __init__(self, t: float | None = None) -> None:
        base = (int(time.time()) // 60) * 60
        self.t = base + 30.0 if t is None else t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["lua", "nolua"])
async def store(request: pytest.FixtureRequest, redis_server) -> AsyncIterator[aioredis.Redis]:  # type: ignore[no-untyped-def]
    """Real redis-server (Lua path) and fakeredis without lupa (INCRBY-then-check path)."""
    if request.param == "lua":
        client = aioredis.Redis.from_url(redis_server.url)
    else:
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    try:
        yield client
    finally:
        await client.aclose()


def gov(store: aioredis.Redis, keys: Keys, settings_factory, clock: Clock, **kw: float) -> RedisGovernor:  # type: ignore[no-untyped-def]
    s = settings_factory(rest_max_weight_per_minute=100, rest_weight_headroom=0.5)
    return RedisGovernor(store, keys, s, max_wait_s=kw.get("max_wait_s", 0.0), clock=clock)


def test_pure_helpers(settings_factory) -> None:  # type: ignore[no-untyped-def]
    assert budget_of(settings_factory(rest_max_weight_per_minute=6000, rest_weight_headroom=0.9)) == 5400
    assert used_weight_header({"x-mbx-used-weight-1m": "17"}) == 17
    assert used_weight_header({"x-mbx-used-weight-1m": "x"}) is None
    assert used_weight_header({}) is None
    assert retry_after_s({"retry-after": "12"}, 60) == 12
    assert retry_after_s({"retry-after": "soon"}, 60) == 60
    assert retry_after_s({}, 30) == 30
    lb = LocalBudget()
    assert lb.reserve(0, 30, 50).code == 0
    assert lb.reserve(1, 30, 50).code == 3
    assert lb.reserve(WINDOW_MS, 30, 50).code == 0  # next minute


async def test_budget_is_held_back_before_the_limit(store, keys, settings_factory) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    g = gov(store, keys, settings_factory, clock)
    assert g.budget == 50
    await g.acquire(20)
    await g.acquire(20)
    with pytest.raises(RateLimitedError) as ei:
        await g.acquire(20)
    e = ei.value
    assert not isinstance(e, IPBannedError)
    assert e.until_ms == (int(clock.t * 1000) // WINDOW_MS + 1) * WINDOW_MS
    assert 29 <= e.retry_after_s <= 30.01
    assert "40/50" in str(e) and "next minute starts in" in str(e)
    await g.acquire(10)  # what is left still fits
    assert (await g.state())["used"] == 50
    clock.t += 60  # the next minute has its own budget
    await g.acquire(50)
    assert g.lua is (True if isinstance(store, aioredis.Redis) and not isinstance(store, fakeredis.FakeAsyncRedis) else False)


async def test_waits_for_the_next_minute_when_it_is_close(store, keys, settings_factory) -> None:  # type: ignore[no-untyped-def]
    now = time.time()
    to_boundary = 60 - (now % 60)
    delta = to_boundary - 0.15  # real clock shifted so the boundary is 150 ms away
    g = gov(store, keys, settings_factory, lambda: time.time() + delta, max_wait_s=1.0)  # type: ignore[arg-type]
    await g.acquire(50)
    t0 = time.perf_counter()
    await g.acquire(50)  # waits for the next minute instead of failing
    assert 0.05 < time.perf_counter() - t0 < 1.0


async def test_too_heavy_for_any_minute(store, keys, settings_factory) -> None:  # type: ignore[no-untyped-def]
    g = gov(store, keys, settings_factory, Clock())
    with pytest.raises(InvalidParameterError, match="more than the whole per-minute REST budget"):
        await g.acquire(51)


async def test_used_weight_header_raises_the_shared_counter(store, keys, settings_factory) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    a, b = gov(store, keys, settings_factory, clock), gov(store, keys, settings_factory, clock)
    await a.acquire(5)
    # Binance counted 45 for this IP (other software too): every process now sees 45
    await a.observe(200, {"x-mbx-used-weight-1m": "45"}, 5)
    assert (await b.state())["used"] == 45
    with pytest.raises(RateLimitedError):
        await b.acquire(10)
    await b.acquire(5)
    # a lower header never lowers the counter
    await a.observe(200, {"x-mbx-used-weight-1m": "3"}, 5)
    assert (await b.state())["used"] == 50


async def test_header_ignored_right_after_a_minute_boundary(store, keys, settings_factory) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    clock.t = (int(clock.t) // 60) * 60 + 0.2  # 200 ms into a minute: the header may count the last one
    g = gov(store, keys, settings_factory, clock)
    await g.observe(200, {"x-mbx-used-weight-1m": "49"}, 1)
    assert (await g.state())["used"] == 0


async def test_429_holds_every_process_for_retry_after(store, keys, settings_factory) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    a, b = gov(store, keys, settings_factory, clock), gov(store, keys, settings_factory, clock)
    await a.observe(429, {"retry-after": "7"}, 1)
    for g in (a, b):
        with pytest.raises(RateLimitedError) as ei:
            await g.acquire(1)
        assert not isinstance(ei.value, IPBannedError)
        assert ei.value.retry_after_s == pytest.approx(7, abs=0.01)
        assert "429" in str(ei.value)
    clock.t += 7.5
    await a.acquire(1)
    await b.acquire(1)


async def test_418_bans_every_process_until_it_ends(store, keys, settings_factory) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    a = gov(store, keys, settings_factory, clock)
    b = gov(store, keys, settings_factory, clock)  # another process: learns the ban from Redis only
    await a.observe(418, {"retry-after": "120"}, 1)
    with pytest.raises(IPBannedError) as ei:
        await b.acquire(1)
    assert ei.value.until_ms == int(clock.t * 1000) + 120_000
    assert "banned" in str(ei.value)
    # a shorter deadline seen later never shortens the ban
    await b.observe(418, {"retry-after": "5"}, 1)
    clock.t += 60
    c = gov(store, keys, settings_factory, clock)
    with pytest.raises(IPBannedError):
        await c.acquire(1)
    clock.t += 61
    await c.acquire(1)


async def test_concurrent_reservations_never_exceed_the_budget(store, keys, settings_factory) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    govs = [gov(store, keys, settings_factory, clock) for _ in range(3)]

    async def one(g: RedisGovernor) -> bool:
        try:
            await g.acquire(3)
            return True
        except RateLimitedError:
            return False

    results = await asyncio.gather(*(one(govs[i % 3]) for i in range(60)))
    admitted = sum(results)
    assert admitted * 3 <= 50
    assert admitted >= 1
    assert (await govs[0].state())["used"] <= 50


async def test_falls_back_to_a_local_budget_when_redis_is_down(keys, settings_factory) -> None:  # type: ignore[no-untyped-def]
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    try:
        clock = Clock()
        g = gov(dead, keys, settings_factory, clock)
        await g.acquire(30)
        with pytest.raises(RateLimitedError):
            await g.acquire(30)
        await g.observe(418, {"retry-after": "60"}, 1)  # remembered locally
        clock.t += 30
        with pytest.raises(IPBannedError):
            await g.acquire(1)
        assert (await g.state())["ban_until_ms"] > 0
    finally:
        await dead.aclose()


async def test_clock_offset_is_shared(store, keys, settings_factory) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    a, b = gov(store, keys, settings_factory, clock), gov(store, keys, settings_factory, clock)
    await a.record_clock_offset(-1234)
    assert a.clock_offset_ms == -1234
    assert await b.load_clock_offset() == -1234
    assert b.now_ms() == int(clock.t * 1000) - 1234
