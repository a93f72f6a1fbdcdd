"""LeaseKeeper: acquire, renew, release, the stateless-HTTP pool, and lapse after a crash (fakeredis)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from binance_common.keys import Keys
from binance_common.timeutil import now_ms
from binance_mcp.feed.leases import (
    POOL_HOLDER,
    LeaseKeeper,
    holder_for,
    is_session_connection,
    session_holder,
)
from tests.support.fake_feed import wait_until


async def members(r, keys: Keys) -> dict[str, float]:
    return {m.decode(): s for m, s in await r.zrange(keys.leases, 0, -1, withscores=True)}


async def test_acquire_writes_members_and_asks_the_daemon_to_reconcile(fake_redis, keys: Keys) -> None:
    pubsub = fake_redis.pubsub()
    await pubsub.subscribe(keys.control_channel)
    await pubsub.get_message(timeout=1)  # subscribe confirmation
    k = LeaseKeeper(keys, ttl_s=30)
    await k.start(fake_redis)
    t0 = now_ms()
    expiry = await k.acquire("h1", ["btcusdt@trade", "ethusdt@trade", "btcusdt@trade"])
    assert t0 + 30_000 <= expiry <= now_ms() + 30_000
    assert await members(fake_redis, keys) == {"btcusdt@trade h1": expiry, "ethusdt@trade h1": expiry}
    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    assert msg is not None and msg["data"] == b"reconcile"
    assert k.held == {"h1": {"btcusdt@trade", "ethusdt@trade"}}
    await k.stop(release=False)
    await pubsub.aclose()


async def test_release_some_all_and_unknown(fake_redis, keys: Keys) -> None:
    k = LeaseKeeper(keys, ttl_s=30)
    await k.start(fake_redis)
    await k.acquire("h1", ["a@trade", "b@trade", "c@trade"])
    await k.acquire("h2", ["a@trade"])
    assert await k.release("h1", ["a@trade", "zzz@trade"]) == ["a@trade"]
    assert set(await members(fake_redis, keys)) == {"b@trade h1", "c@trade h1", "a@trade h2"}
    assert sorted(await k.release("h1")) == ["b@trade", "c@trade"]
    assert await k.release("h1") == []
    assert set(await members(fake_redis, keys)) == {"a@trade h2"}
    snap = await k.snapshot()
    assert list(snap) == ["a@trade"] and set(snap["a@trade"]) == {"h2"}
    assert await k.holds("h2", ["a@trade", "b@trade"]) == [True, False]
    await k.stop(release=True)
    assert await members(fake_redis, keys) == {}


async def test_renewal_extends_own_leases_and_recreates_lost_ones(fake_redis, keys: Keys) -> None:
    k = LeaseKeeper(keys, ttl_s=30)
    await k.start(fake_redis)
    e1 = await k.acquire("h1", ["a@trade"])
    await fake_redis.zadd(keys.leases, {"a@trade h1": e1 - 20_000})  # pretend time passed
    await k.renew_once()
    assert (await members(fake_redis, keys))["a@trade h1"] >= e1
    await fake_redis.delete(keys.leases)  # e.g. Redis restarted empty: a connected client's leases come back
    await k.renew_once()
    assert "a@trade h1" in await members(fake_redis, keys)
    await k.stop()


async def test_pool_leases_survive_a_replica_and_a_release_anywhere_sticks(fake_redis, keys: Keys) -> None:
    a = LeaseKeeper(keys, ttl_s=30, renew_pool=True)
    b = LeaseKeeper(keys, ttl_s=30, renew_pool=True)
    await a.start(fake_redis)
    await b.start(fake_redis)
    await a.acquire(POOL_HOLDER, ["x@trade", "y@trade"])
    await a.stop(release=True)  # replica A shuts down: pool leases stay for the others
    assert set(await members(fake_redis, keys)) == {f"x@trade {POOL_HOLDER}", f"y@trade {POOL_HOLDER}"}
    old = await members(fake_redis, keys)
    await fake_redis.zadd(keys.leases, {f"x@trade {POOL_HOLDER}": old[f"x@trade {POOL_HOLDER}"] - 10_000})
    await b.renew_once()  # B renews the pool, including what A took
    assert (await members(fake_redis, keys))[f"x@trade {POOL_HOLDER}"] >= old[f"x@trade {POOL_HOLDER}"]
    # B releases y (an unsubscribe that landed on B); a renewal on any replica must not bring it back
    assert await b.release(POOL_HOLDER, ["y@trade"]) == ["y@trade"]
    c = LeaseKeeper(keys, ttl_s=30, renew_pool=True)
    await c.start(fake_redis)
    await c.renew_once()
    await b.renew_once()
    assert set(await members(fake_redis, keys)) == {f"x@trade {POOL_HOLDER}"}
    # an expired pool lease (every replica was down) is not revived
    await fake_redis.zadd(keys.leases, {f"x@trade {POOL_HOLDER}": now_ms() - 1})
    await c.renew_once()
    assert (await members(fake_redis, keys))[f"x@trade {POOL_HOLDER}"] < now_ms()
    await b.stop()
    await c.stop()


async def test_leases_of_a_crashed_process_lapse(fake_redis, keys: Keys) -> None:
    k = LeaseKeeper(keys, ttl_s=1)
    await k.start(fake_redis)
    await k.acquire("crashy", ["a@trade"])
    await k.stop(release=False)  # like SIGKILL: nobody removes or renews the lease
    assert await k.snapshot() != {}
    await wait_until(lambda: _empty(k), timeout=5)


async def _empty(k: LeaseKeeper) -> bool:
    return await k.snapshot() == {}


async def test_renew_loop_runs_at_a_third_of_the_ttl(fake_redis, keys: Keys) -> None:
    k = LeaseKeeper(keys, ttl_s=1.5)
    assert k.interval_s == pytest.approx(0.5)
    await k.start(fake_redis)
    await k.acquire("h", ["a@trade"])
    await wait_until(lambda: k.renewals >= 3, timeout=5)
    assert await k.holds("h", ["a@trade"]) == [True]
    await k.stop()


class _Conn:
    def __init__(self, version: str = "2025-11-25", standalone: bool = True) -> None:
        self.protocol_version = version
        self.has_standalone_channel = standalone
        self.state: dict[str, str] = {}
        self.callbacks: list = []
        self.exit_stack = SimpleNamespace(push_async_callback=self.callbacks.append)


def _ctx(conn: _Conn | None):
    session = SimpleNamespace(_connection=conn)
    return SimpleNamespace(request_context=SimpleNamespace(session=session))


async def test_holder_scopes(fake_redis, keys: Keys) -> None:
    k = LeaseKeeper(keys, ttl_s=30)
    await k.start(fake_redis)
    # stdio and in-process: the process holds everything
    assert holder_for(_ctx(_Conn()), transport="stdio", base="rep1", keeper=k) == ("rep1", "process")
    # stateless HTTP (no standalone channel) and every 2026-07-28 request: the replica pool
    assert holder_for(_ctx(_Conn(standalone=False)), transport="http", base="rep1", keeper=k) == (POOL_HOLDER, "pool")
    assert holder_for(_ctx(_Conn("2026-07-28")), transport="http", base="rep1", keeper=k) == (POOL_HOLDER, "pool")
    assert holder_for(None, transport="http", base="rep1", keeper=k) == (POOL_HOLDER, "pool")
    # a stateful session / SSE connection: its own holder, released when the connection closes
    conn = _Conn()
    assert is_session_connection(conn)
    h, scope = holder_for(_ctx(conn), transport="http", base="rep1", keeper=k)
    assert scope == "session" and h.startswith("rep1~s")
    assert holder_for(_ctx(conn), transport="http", base="rep1", keeper=k) == (h, "session")  # stable
    assert session_holder(conn, "rep1", k) == h and len(conn.callbacks) == 1
    await k.acquire(h, ["a@trade"])
    await conn.callbacks[0]()  # the connection closes
    assert await members(fake_redis, keys) == {}
    await k.stop()
