"""Trade catch-ups under faults that overlap: a failing REST fill across a drop, a failed resume, Redis
failing under the writer. Every id once, in order, or an explicit gap entry; real redis-server, the simulator."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from binance_common.feedstore import GapEntry, decode_history, entry_last_id
from binance_common.keys import Keys
from binance_streamd.service import StreamDaemon
from tests.integration.test_continuity import settings_for
from tests.support.cutting_proxy import CuttingProxy
from tests.support.redis_server import RedisServer
from tests.support.sim import BinanceSim, SimConfig
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
AGG = "btcusdt@aggTrade"


async def entries(r: aioredis.Redis, keys: Keys, stream: str) -> list[Any]:
    return [decode_history(f) for _, f in await r.xrange(keys.history(stream))]


async def history_ids(r: aioredis.Redis, keys: Keys, stream: str) -> list[int | None]:
    field = "a" if stream.endswith("@aggTrade") else "t"
    return [entry_last_id(e, field) for e in await entries(r, keys, stream)]


async def holes(r: aioredis.Redis, keys: Keys, stream: str) -> list[str]:
    """Duplicates, ids out of order and holes no gap entry accounts for."""
    rows = await entries(r, keys, stream)
    field = "a" if stream.endswith("@aggTrade") else "t"
    ids = [entry_last_id(e, field) for e in rows]
    out: list[str] = []
    prev: int | None = None
    for e, x in zip(rows, ids, strict=True):
        if isinstance(e, GapEntry):
            prev = e.to_id
            continue
        assert x is not None
        if prev is not None and x <= prev:
            out.append(f"repeat or out of order {x} after {prev}")
        elif prev is not None and x > prev + 1:
            out.append(f"silent hole {prev + 1}..{x - 1}")
        prev = x if prev is None else max(prev, x)
    return out


async def has_id(r: aioredis.Redis, keys: Keys, stream: str, i: int) -> bool:
    return i in await history_ids(r, keys, stream)


async def test_a_failing_gap_fill_across_a_drop_still_catches_up_to_the_present(
        redis_server, redis_client, keys) -> None:
    """A live gap starts a bounded fill; its REST call is slow and fails while the connection drops and the
    quiet pair trades. The retry covers the drop too (not only the first gap's bound)."""
    async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=40.0)) as sim:
        d = await StreamDaemon(settings_for(sim, redis_server.url, keys.namespace, streams=[AGG])).start()
        m = sim.market("BTCUSDT")
        try:
            await wait_until(lambda: has_id(redis_client, keys, AGG, m.agg_id), timeout=15, what="live")
            st = d.states[AGG]
            sim.faults.rest_fault(status=500, count=1, path="aggTrades", delay=1.5)  # slow, then a 500
            sim.faults.drop_trades("BTCUSDT", 3)  # a live gap: a fill bounded at the gap
            await wait_until(lambda: st.fill_task is not None and not st.fill_task.done(), what="the gap fill")
            sim.faults.quiet("BTCUSDT")
            sim.faults.drop_connections()  # the drop asks for a catch-up to the present
            sim.faults.burst("BTCUSDT", 10)  # trades nobody receives, then none
            burst_last = m.agg_id
            await wait_until(lambda: has_id(redis_client, keys, AGG, burst_last), timeout=15,
                             what="the drop's trades caught up")
            assert await holes(redis_client, keys, AGG) == []
        finally:
            await d.stop()


async def test_a_restart_that_cannot_read_where_a_stream_stopped_waits_instead_of_skipping(
        redis_server, redis_client, keys) -> None:
    """The daemon restarts while Redis refuses the read of where the history ends (here: an ACL that denies
    XREVRANGE): the trade stream is not subscribed from scratch (which would skip the downtime's trades); it is
    subscribed on a later pass, resumed from Redis, and the downtime is caught up."""
    async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=40.0)) as sim:
        s = settings_for(sim, redis_server.url, keys.namespace, streams=[AGG, "btcusdt@bookTicker"])
        m = sim.market("BTCUSDT")
        d = await StreamDaemon(s).start()
        await wait_until(lambda: has_id(redis_client, keys, AGG, m.agg_id), timeout=15, what="live")
        await d.stop()
        down_from = m.agg_id
        await wait_until(lambda: m.agg_id > down_from + 40, what="trades while no daemon runs")
        await redis_client.delete(keys.latest("btcusdt@bookTicker"))
        await redis_client.execute_command("ACL", "SETUSER", "default", "-xrevrange")
        d2 = await StreamDaemon(s).start()
        try:
            await wait_until(lambda: redis_client.exists(keys.latest("btcusdt@bookTicker")), what="a pass ran")
            assert AGG not in d2.states  # not subscribed without its position
            await redis_client.execute_command("ACL", "SETUSER", "default", "+xrevrange")
            later = m.agg_id + 20
            await wait_until(lambda: has_id(redis_client, keys, AGG, later), timeout=20, what="resumed")
            assert await holes(redis_client, keys, AGG) == []
            assert down_from + 1 in await history_ids(redis_client, keys, AGG)
        finally:
            await redis_client.execute_command("ACL", "SETUSER", "default", "+xrevrange")
            await d2.stop()


async def test_trades_the_full_buffer_threw_away_while_redis_was_down_are_caught_up(keys) -> None:
    """Redis dies (its data as of the moment of death is kept) and stays down while 600 messages a second
    arrive: the writer's buffer (1,000) overflows. The trade streams are taken back to the first message thrown
    away and caught up from REST once Redis is back: no hole, no repeat."""
    trade = "btcusdt@trade"
    with RedisServer() as rs:
        async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=300.0)) as sim:
            s = settings_for(sim, rs.url, keys.namespace, streams=[trade, AGG], redis_buffer_max=1000)
            d = await StreamDaemon(s).start()
            r = aioredis.Redis.from_url(rs.url)
            m = sim.market("BTCUSDT")
            try:
                await wait_until(lambda: has_id(r, keys, trade, m.trade_id), timeout=15, what="live")
                await r.execute_command("CLIENT", "PAUSE", "20000", "WRITE")  # nothing more lands ...
                await r.save()  # ... so what is saved is everything Redis took
                assert rs.proc is not None
                rs.proc.kill()
                rs.proc.wait()
                await wait_until(lambda: d.writer.dropped > 500, timeout=30, what="the buffer overflowing")
                rs.start()  # same port and directory: the saved data comes back
                await r.aclose()
                r = aioredis.Redis.from_url(rs.url)
                later = m.trade_id + 50
                await wait_until(lambda: has_id(r, keys, trade, later), timeout=30, what="writing again")
                await wait_until(lambda: has_id(r, keys, AGG, m.agg_id), timeout=30, what="aggTrades too")
                assert d.states[trade].taken_back >= 1
                assert await holes(r, keys, trade) == []
                assert await holes(r, keys, AGG) == []
            finally:
                await d.stop()
                await r.aclose()


async def test_a_batch_whose_reply_is_lost_is_written_once(redis_server, redis_client, keys) -> None:
    """Redis runs a batch of the writer, then the connection is cut before the reply comes back: the writer
    sends the batch again on a new connection, and the mark makes Redis skip it (no entry twice)."""
    proxy = CuttingProxy(redis_server.port)
    url = await proxy.start()
    async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=40.0)) as sim:
        d = await StreamDaemon(settings_for(sim, url, keys.namespace, streams=[AGG])).start()
        m = sim.market("BTCUSDT")
        try:
            await wait_until(lambda: has_id(redis_client, keys, AGG, m.agg_id), timeout=15, what="live")
            proxy.cut_on = keys.history(AGG).encode()  # the next batch that writes this history
            await wait_until(lambda: proxy.cuts == 1, timeout=10, what="a reply lost")
            later = m.agg_id + 30
            await wait_until(lambda: has_id(redis_client, keys, AGG, later), timeout=15, what="writing again")
            assert await holes(redis_client, keys, AGG) == []
            assert d.writer.reconnects >= 1
        finally:
            await d.stop()
            await proxy.close()


async def test_a_redis_that_comes_back_from_an_older_snapshot_is_caught_up(keys) -> None:
    """Redis is saved, takes 30 more trades, then crashes and comes back from the older snapshot (as after an
    RDB restart or a failover to a lagging replica): the writer sees Redis no longer holds batches it had
    confirmed, and every trade stream is caught up from where its history now ends: no hole, no repeat."""
    with RedisServer() as rs:
        async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=40.0)) as sim:
            d = await StreamDaemon(settings_for(sim, rs.url, keys.namespace, streams=[AGG])).start()
            r = aioredis.Redis.from_url(rs.url)
            m = sim.market("BTCUSDT")
            try:
                await wait_until(lambda: has_id(r, keys, AGG, m.agg_id), timeout=15, what="live")
                await r.save()  # the snapshot Redis will come back from
                target = m.agg_id + 30
                await wait_until(lambda: has_id(r, keys, AGG, target), timeout=15, what="written after the save")
                assert rs.proc is not None
                rs.proc.kill()
                rs.proc.wait()
                rs.start()  # same directory: the older snapshot comes back
                await r.aclose()
                r = aioredis.Redis.from_url(rs.url)
                assert not await has_id(r, keys, AGG, target)  # the trades after the save are gone from Redis
                later = m.agg_id + 30
                await wait_until(lambda: has_id(r, keys, AGG, later), timeout=20, what="writing again")
                await wait_until(lambda: has_id(r, keys, AGG, target), timeout=20, what="the lost span caught up")
                assert d.writer.rewinds >= 1
                assert await holes(r, keys, AGG) == []
            finally:
                await d.stop()
                await r.aclose()


async def test_the_old_connection_dying_while_a_rotation_subscribes_is_caught_up(
        redis_server, redis_client, keys) -> None:
    """A rotation's new connection subscribes; before Binance takes the subscription, the old connection dies
    and the calm pair trades: those trades reach neither connection, so the stream is caught up from the new
    connection's acknowledgement (without waiting for a later trade)."""
    async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=40.0)) as sim:
        d = await StreamDaemon(settings_for(sim, redis_server.url, keys.namespace, streams=[AGG])).start()
        m = sim.market("BTCUSDT")
        try:
            await wait_until(lambda: has_id(redis_client, keys, AGG, m.agg_id), timeout=15, what="live")
            sim.faults.quiet("BTCUSDT")
            old = d.pool.slots[0].conn  # type: ignore[union-attr]
            assert old is not None

            def die_and_trade(conn: Any) -> None:
                for c in list(sim.connections):
                    if c is not conn:
                        c.abort()
                sim.faults.burst("BTCUSDT", 5)  # nobody is subscribed right now

            sim.faults.before_subscribe = die_and_trade
            slot = d.pool.slots[0]  # type: ignore[union-attr]
            slot.rotate = True
            slot.wake.set()
            await wait_until(lambda: sim.faults.before_subscribe is None, what="the rotation's subscription")
            burst_last = m.agg_id
            await wait_until(lambda: has_id(redis_client, keys, AGG, burst_last), timeout=15,
                             what="the trades made in between caught up")
            assert await holes(redis_client, keys, AGG) == []
        finally:
            await d.stop()
