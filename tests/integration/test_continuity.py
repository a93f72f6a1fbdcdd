"""The no-loss promise, in-process: quiet symbols across drops, books after missed diffs, many books under the
REST budget, bad names flooding, Redis losing its data. Real redis-server, the project's simulator."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from binance_common.feedstore import BookState, GapEntry, decode_book, decode_history, entry_last_id
from binance_common.keys import Keys
from binance_common.settings import Settings
from binance_streamd.service import StreamDaemon
from tests.support.redis_server import RedisServer
from tests.support.sim import BinanceSim, SimConfig
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def settings_for(sim: BinanceSim, redis_url: str, namespace: str, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(rest_base_url=sim.rest_url, ws_base_url=sim.ws_url, redis_url=redis_url,
                                namespace=namespace, unsubscribe_grace_s=0.3, reconnect_max_delay_s=0.5,
                                heartbeat_ttl_s=3.0)
    base.update(kw)
    return Settings(**base)


async def history_ids(r: aioredis.Redis, keys: Keys, stream: str) -> list[int | None]:
    field = "a" if stream.endswith("@aggTrade") else "t"
    return [entry_last_id(decode_history(f), field) for _, f in await r.xrange(keys.history(stream))]


async def has_id(r: aioredis.Redis, keys: Keys, stream: str, last: int) -> bool:
    return last in await history_ids(r, keys, stream)


async def state_of(r: aioredis.Redis, keys: Keys, stream: str) -> str | None:
    v = await r.hget(keys.status(stream), "state")
    return v.decode() if v else None


async def test_a_burst_in_a_drop_on_a_quiet_symbol_is_recovered_without_a_later_trade(
        redis_server, redis_client, keys) -> None:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT"], rate=30.0)) as sim:
        s = settings_for(sim, redis_server.url, keys.namespace, streams=["btcusdt@trade", "btcusdt@aggTrade"])
        d = await StreamDaemon(s).start()
        try:
            m = sim.market("BTCUSDT")
            await wait_until(lambda: has_id(redis_client, keys, "btcusdt@trade", m.trade_id), what="trades flowing")
            first = (await history_ids(redis_client, keys, "btcusdt@trade"))[0]
            sim.faults.quiet("BTCUSDT")  # from here on only the burst below trades
            await wait_until(lambda: has_id(redis_client, keys, "btcusdt@trade", m.trade_id), what="caught up")
            sim.faults.drop_connections()
            made = sim.faults.burst("BTCUSDT", 40)  # while the daemon has no connection
            assert made >= 40
            last, last_agg = m.trade_id, m.agg_id
            await wait_until(lambda: has_id(redis_client, keys, "btcusdt@trade", last), timeout=10,
                             what="the burst recovered after the reconnect, no later trade")
            await wait_until(lambda: has_id(redis_client, keys, "btcusdt@aggTrade", last_agg), timeout=10)
            assert await history_ids(redis_client, keys, "btcusdt@trade") == list(range(first, last + 1))
            agg = await history_ids(redis_client, keys, "btcusdt@aggTrade")
            assert agg == list(range(agg[0], last_agg + 1))
            st = d.states["btcusdt@trade"]
            assert st.reconnects >= 1 and st.gaps_found >= 1 and st.gaps_filled >= 1 and st.gaps_unfilled == 0
            await wait_until(lambda: state_of(redis_client, keys, "btcusdt@trade"), what="status written")
            assert await state_of(redis_client, keys, "btcusdt@trade") == "live"
        finally:
            await d.stop()


async def test_the_first_trade_of_a_new_subscription_falling_in_a_drop_is_recovered(
        redis_server, redis_client, keys) -> None:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT"], rate=30.0)) as sim:
        sim.faults.quiet("ETHUSDT")  # it has never traded since the subscription
        s = settings_for(sim, redis_server.url, keys.namespace, streams=["ethusdt@trade", "ethusdt@aggTrade"])
        d = await StreamDaemon(s).start()
        try:
            for stream in ("ethusdt@trade", "ethusdt@aggTrade"):
                await wait_until(lambda stream=stream: _is_live(redis_client, keys, stream), what=stream)
            m = sim.market("ETHUSDT")
            before = m.trade_id
            sim.faults.drop_connections()
            sim.faults.burst("ETHUSDT", 5)
            await wait_until(lambda: has_id(redis_client, keys, "ethusdt@trade", m.trade_id), timeout=10,
                             what="first trades recovered by time since the acknowledgement")
            assert await history_ids(redis_client, keys, "ethusdt@trade") == list(range(before + 1, m.trade_id + 1))
            await wait_until(lambda: has_id(redis_client, keys, "ethusdt@aggTrade", m.agg_id), timeout=10)
        finally:
            await d.stop()


async def _is_live(r: aioredis.Redis, keys: Keys, stream: str) -> bool:
    return await state_of(r, keys, stream) == "live"


async def test_a_book_that_missed_diffs_in_a_drop_is_never_served_live_with_wrong_levels(
        redis_server, redis_client, keys) -> None:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=30.0)) as sim:
        s = settings_for(sim, redis_server.url, keys.namespace, order_book_symbols=["BTCUSDT"],
                         order_book_top_n=20)
        d = await StreamDaemon(s).start()
        try:
            async def book() -> Any:
                return decode_book(await redis_client.get(keys.book("BTCUSDT")))

            await wait_until(lambda: _live_book(redis_client, keys), what="book live")
            sim.faults.quiet("BTCUSDT")
            sim.faults.drop_connections()
            sim.faults.burst("BTCUSDT", 10)  # book changes nobody receives; then nothing more changes
            truth = sim.book("BTCUSDT", 20)
            served_wrong = 0
            states: list[str] = []
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                v = await book()
                assert v is not None
                states.append(v.state.value)
                if v.live and (v.bids, v.asks) != truth and "syncing" in states:
                    served_wrong += 1  # (before the daemon sees the drop, the old book is all anyone has)
                if v.live and (v.bids, v.asks) == truth and "syncing" in states:
                    break
                await _tick()
            assert served_wrong == 0, f"a live book with wrong levels was served {served_wrong} times"
            assert "syncing" in states and states[-1] == "live", states[-5:]
            assert d.books.status()["BTCUSDT"]["resyncs"] == 0  # type: ignore[union-attr]  # proved by snapshot
        finally:
            await d.stop()


async def _live_book(r: aioredis.Redis, keys: Keys) -> bool:
    v = decode_book(await r.get(keys.book("BTCUSDT")))
    return v is not None and v.live


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.02)  # polling interval of an observation loop bounded by its deadline


async def test_an_active_book_proves_continuity_after_a_drop_without_a_snapshot(
        redis_server, redis_client, keys) -> None:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=30.0)) as sim:
        s = settings_for(sim, redis_server.url, keys.namespace, order_book_symbols=["BTCUSDT"])
        d = await StreamDaemon(s).start()
        try:
            await wait_until(lambda: _live_book(redis_client, keys), what="book live")
            snapshots = d.books.status()["BTCUSDT"]["snapshots"]  # type: ignore[union-attr]
            sim.faults.drop_connections()  # nothing changes during the drop: the first diff proves it
            sim.faults.pause()
            await wait_until(lambda: d.books.status()["BTCUSDT"]["state"] == "verifying")  # type: ignore[union-attr]
            await wait_until(lambda: d.pool.slots[0].conn is not None and d.states["btcusdt@depth@100ms"].acked)  # type: ignore[union-attr]
            sim.faults.resume()
            await wait_until(lambda: d.books.status()["BTCUSDT"]["state"] == "live", timeout=10)  # type: ignore[union-attr]
            st = d.books.status()["BTCUSDT"]  # type: ignore[union-attr]
            assert st["proofs"] >= 1 and st["snapshots"] == snapshots, st
        finally:
            await d.stop()


async def test_many_books_after_every_connection_drops_stay_within_the_rest_budget(
        redis_server, redis_client, keys) -> None:
    symbols = [f"S{i:03d}USDT" for i in range(100)]
    cfg = SimConfig(symbols=symbols, rate=2.0, weight_limit=2000)
    async with BinanceSim(cfg) as sim:
        s = settings_for(sim, redis_server.url, keys.namespace, order_book_symbols=symbols, order_book_top_n=10,
                         order_book_snapshot_limit=100, rest_max_weight_per_minute=2000,
                         max_streams_per_connection=40)
        d = await StreamDaemon(s).start()
        try:
            await wait_until(lambda: _all_live(d, symbols), timeout=60, what="100 books live")
            sim.faults.drop_connections()
            t0 = time.monotonic()
            await wait_until(lambda: not _all_live(d, symbols), timeout=5, what="books suspended")
            await wait_until(lambda: _all_live(d, symbols), timeout=60, what="100 books live again")
            elapsed = time.monotonic() - t0
            sim.faults.pause()
            for sym in symbols:
                truth = sim.book(sym, 10)
                await wait_until(lambda sym=sym, truth=truth: _book_equals(redis_client, keys, sym, truth),
                                 timeout=10, what=f"{sym} equal to the simulator's book")
            assert sim.stats["rate_limited"] == 0 and sim.stats["bans"] == 0
            print(f"100 books live again {elapsed:.2f} s after every connection dropped")
        finally:
            await d.stop()


def _all_live(d: StreamDaemon, symbols: list[str]) -> bool:
    st = d.books.status() if d.books else {}
    return all(st.get(s, {}).get("state") == "live" for s in symbols)


async def _book_equals(r: aioredis.Redis, keys: Keys, sym: str, truth: tuple[list[Any], list[Any]]) -> bool:
    v = decode_book(await r.get(keys.book(sym)))
    return v is not None and v.state is BookState.LIVE and (v.bids, v.asks) == truth


async def test_a_flood_of_unknown_names_leaves_no_state_and_never_delays_a_good_stream(
        redis_server, redis_client, keys) -> None:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT"], rate=30.0)) as sim:
        s = settings_for(sim, redis_server.url, keys.namespace, streams=["btcusdt@trade"])
        d = await StreamDaemon(s).start()
        try:
            await wait_until(lambda: _is_live(redis_client, keys, "btcusdt@trade"))
            exp = int(time.time() * 1000) + 60_000
            bad = {keys.lease_member(f"nosuch{i}usdt@trade", "flood"): exp for i in range(200)}
            await redis_client.zadd(keys.leases, bad)
            await redis_client.publish(keys.control_channel, "reconcile")
            t0 = time.monotonic()
            await redis_client.zadd(keys.leases, {keys.lease_member("ethusdt@aggTrade", "good"): exp})
            await redis_client.publish(keys.control_channel, "reconcile")
            await wait_until(lambda: redis_client.exists(keys.latest("ethusdt@aggTrade")), timeout=5)
            assert time.monotonic() - t0 < 2.0, "the good stream waited behind the bad names"
            await wait_until(lambda: _is_live(redis_client, keys, "ethusdt@aggTrade"))
            await wait_until(lambda: _failed(redis_client, keys, "nosuch7usdt@trade"))
            await wait_until(lambda: len([n for n in d.states if n.startswith("nosuch")]) == 200)
            await redis_client.zrem(keys.leases, *bad)
            await redis_client.publish(keys.control_channel, "reconcile")
            await wait_until(lambda: not any(n.startswith("nosuch") for n in d.states), timeout=10,
                             what="unknown names forgotten after the grace")
            await wait_until(lambda: _no_status_like(redis_client, keys, "nosuch"), timeout=10)
            assert not any("nosuch" in msg for _, _, msg in sim.control_log)  # refused locally
            assert set(d.states) == {"btcusdt@trade", "ethusdt@aggTrade"}
            assert not d.reconciler.failed_at and not d.reconciler.unwanted_since  # type: ignore[union-attr]
            assert not [n for n in d.stats()["streams"] if n.startswith("nosuch")]
        finally:
            await d.stop()


async def _no_status_like(r: aioredis.Redis, keys: Keys, part: str) -> bool:
    return not [k async for k in r.scan_iter(match=keys.status_pattern) if part.encode() in k]


async def test_refused_names_are_sorted_out_on_the_probe_connection(redis_server, redis_client, keys) -> None:
    """Names the exchange refuses but exchangeInfo lists (a delisted symbol Binance still names): the batch
    is refused, bisected on the prober's own connection, and the good names of the batch go live."""
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT", "BNBBTC"], rate=30.0)) as sim:
        s = settings_for(sim, redis_server.url, keys.namespace)
        d = await StreamDaemon(s).start()
        try:
            sim.hub.known = {k: v for k, v in sim.hub.known.items() if k != "BNBBTC"}  # WS refuses, REST lists
            exp = int(time.time() * 1000) + 60_000
            names = ["btcusdt@trade", "bnbbtc@trade", "ethusdt@trade", "bnbbtc@aggTrade", "ethusdt@bookTicker"]
            await redis_client.zadd(keys.leases, {keys.lease_member(n, "x"): exp for n in names})
            await redis_client.publish(keys.control_channel, "reconcile")
            for n in ("btcusdt@trade", "ethusdt@trade", "ethusdt@bookTicker"):
                await wait_until(lambda n=n: _is_live(redis_client, keys, n), timeout=10, what=n)
            for n in ("bnbbtc@trade", "bnbbtc@aggTrade"):
                await wait_until(lambda n=n: _failed(redis_client, keys, n), timeout=10, what=n)
            assert d.pool.prober.probes >= 3  # type: ignore[union-attr]
            for conn_id in {cid for _, cid, _ in sim.control_log}:
                assert sim.control_messages_in_window(conn_id) <= 5
        finally:
            await d.stop()


async def _failed(r: aioredis.Redis, keys: Keys, stream: str) -> bool:
    return await state_of(r, keys, stream) == "failed"


async def test_redis_losing_its_data_unsubscribes_nothing(keys) -> None:
    from binance_mcp.feed.leases import LeaseKeeper

    rs = RedisServer().start()
    try:
        async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT"], rate=30.0)) as sim:
            s = settings_for(sim, rs.url, keys.namespace, streams=["btcusdt@trade"], unsubscribe_grace_s=6.0)
            d = await StreamDaemon(s).start()
            r = aioredis.Redis.from_url(rs.url)
            front = LeaseKeeper(keys, ttl_s=30.0, renew_pool=True)
            front_redis = aioredis.Redis.from_url(rs.url)
            await front.start(front_redis)
            try:
                await front.acquire("replica-1", ["ethusdt@aggTrade"])
                await front.acquire("http-pool", ["ethusdt@bookTicker"])
                for n in ("btcusdt@trade", "ethusdt@aggTrade", "ethusdt@bookTicker"):
                    await wait_until(lambda n=n: _is_live(r, keys, n), timeout=10, what=n)
                rs.restart()  # no persistence: every key is gone
                await r.aclose()
                r = aioredis.Redis.from_url(rs.url)  # the test's own client: a fresh connection
                for n in ("btcusdt@trade", "ethusdt@aggTrade", "ethusdt@bookTicker"):
                    await wait_until(lambda n=n: _is_live(r, keys, n), timeout=10, what=f"{n} live again")
                await wait_until(lambda: r.exists(keys.latest("ethusdt@bookTicker")), timeout=10)
                await wait_until(lambda: _zcard_is(r, keys.leases, 2), timeout=10, what="leases re-asserted")
                assert front.reassertions >= 1
                assert await r.smembers(keys.always_on) == {b"btcusdt@trade"}
                await wait_until(lambda: r.exists(keys.heartbeat), timeout=10)
                t_check = time.monotonic()
                while time.monotonic() - t_check < s.unsubscribe_grace_s + 1:  # past the grace period
                    await _tick()
                assert not any("UNSUBSCRIBE" in msg for _, _, msg in sim.control_log)
                assert set(d.states) == {"btcusdt@trade", "ethusdt@aggTrade", "ethusdt@bookTicker"}
                ids = await history_ids(r, keys, "btcusdt@trade")
                assert ids == list(range(ids[0], ids[0] + len(ids)))  # contiguous since the loss
            finally:
                await front.stop()
                await front_redis.aclose()
                await d.stop()
                await r.aclose()
    finally:
        rs.cleanup()


async def _zcard_is(r: aioredis.Redis, key: str, n: int) -> bool:
    return await r.zcard(key) == n


async def test_gap_entries_are_shown_by_the_history_reader(redis_server, redis_client, keys) -> None:
    """ids REST does not have (here: skipped by the exchange) end up as explicit gap entries, counted."""
    async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=30.0)) as sim:
        s = settings_for(sim, redis_server.url, keys.namespace, streams=["btcusdt@aggTrade"])
        d = await StreamDaemon(s).start()
        try:
            m = sim.market("BTCUSDT")
            await wait_until(lambda: has_id(redis_client, keys, "btcusdt@aggTrade", m.agg_id))
            sim.faults.skip_ids("BTCUSDT", 7)
            target = m.agg_id + 5
            await wait_until(lambda: m.agg_id >= target)
            await wait_until(lambda: has_id(redis_client, keys, "btcusdt@aggTrade", target), timeout=10)
            rows = [decode_history(f) for _, f in await redis_client.xrange(keys.history("btcusdt@aggTrade"))]
            gap_rows = [e for e in rows if isinstance(e, GapEntry)]
            assert len(gap_rows) == 1 and gap_rows[0].to_id - (gap_rows[0].from_id or 0) + 1 == 7
            ids = [entry_last_id(e, "a") for e in rows]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)
            assert d.states["btcusdt@aggTrade"].gaps_unfilled == 1
            from binance_mcp.feed.reader import FeedReader

            h = await FeedReader(redis_client, keys, history_cap=10_000).history(
                "btcusdt@aggTrade", count=1000, since=None, wait_s=0)
            shown = [e for e in h.entries if e.source == "gap"]
            assert len(shown) == 1 and shown[0].gap is not None and shown[0].data is None
            assert "not served by REST" in shown[0].gap.reason
            assert orjson.loads(orjson.dumps(h.model_dump()))["entries"]  # serialisable
        finally:
            await d.stop()
