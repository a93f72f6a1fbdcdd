"""binance-streamd against the simulator and a real redis-server: subscriptions, leases, faults, no loss."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from binance_common.keys import Keys
from binance_common.settings import Settings
from binance_streamd.service import StreamDaemon
from tests.support.redis_server import RedisServer
from tests.support.sim import BinanceSim, SimConfig
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def sim() -> AsyncIterator[BinanceSim]:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT", "BNBBTC"], rate=40.0)) as s:
        yield s


def make_settings(sim: BinanceSim, redis_url: str, namespace: str, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(rest_base_url=sim.rest_url, ws_base_url=sim.ws_url, redis_url=redis_url,
                                namespace=namespace, unsubscribe_grace_s=0.3, reconnect_max_delay_s=1.0)
    base.update(kw)
    return Settings(**base)


async def trade_ids(r: aioredis.Redis, keys: Keys, stream: str) -> list[int]:
    entries = await r.xrange(keys.history(stream))
    return [orjson.loads(f[b"d"])["t"] for _, f in entries]


async def status(r: aioredis.Redis, keys: Keys, stream: str) -> dict[str, str]:
    raw = await r.hgetall(keys.status(stream))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def test_always_on_streams_reach_redis_and_stop_is_graceful(sim, redis_server, redis_client, keys) -> None:
    s = make_settings(sim, redis_server.url, keys.namespace, streams=["btcusdt@trade", "ethusdt@bookTicker"])
    d = await StreamDaemon(s).start()
    try:
        assert d.writer.strategy == "script"  # one server-side call per batch on a real Redis
        await wait_until(lambda: redis_client.exists(keys.latest("btcusdt@trade")), what="latest trade")
        await wait_until(lambda: redis_client.exists(keys.latest("ethusdt@bookTicker")), what="latest bookTicker")
        env = orjson.loads(await redis_client.get(keys.latest("btcusdt@trade")))
        assert env["d"]["e"] == "trade" and isinstance(env["r"], int)
        await wait_until(lambda: _state(redis_client, keys, "btcusdt@trade", "live"), what="live status")
        await wait_until(lambda: redis_client.exists(keys.heartbeat), what="heartbeat")
        assert await redis_client.smembers(keys.always_on) == {b"btcusdt@trade", b"ethusdt@bookTicker"}
        await wait_until(lambda: status(redis_client, keys, "btcusdt@trade"), what="status")
    finally:
        await d.stop()
    assert not await redis_client.exists(keys.heartbeat)
    assert (await status(redis_client, keys, "btcusdt@trade"))["state"] == "live"


async def test_leases_subscribe_fail_and_lapse(sim, redis_server, redis_client, keys) -> None:
    s = make_settings(sim, redis_server.url, keys.namespace)
    d = await StreamDaemon(s).start()
    try:
        import time

        exp = int(time.time() * 1000) + 3000
        await redis_client.zadd(keys.leases, {keys.lease_member("ethusdt@aggTrade", "a"): exp,
                                              keys.lease_member("ethusdt@aggTrade", "b"): exp,
                                              keys.lease_member("nosuch@trade", "a"): exp,
                                              keys.lease_member("ETHUSDT@trade", "a"): exp})
        await redis_client.publish(keys.control_channel, "reconcile")
        await wait_until(lambda: redis_client.exists(keys.latest("ethusdt@aggTrade")), what="leased stream data")
        st_nosuch = await wait_until(lambda: _state(redis_client, keys, "nosuch@trade", "failed"), what="failed")
        assert "nosuch@trade" in st_nosuch["reason"]
        st = await wait_until(lambda: _state(redis_client, keys, "ETHUSDT@trade", "failed"), what="bad name")
        assert "lowercase" in st["reason"]
        # one subscription at the exchange although two holders lease it
        subs = sim.faults.subscriptions()
        assert sum(v.count("ethusdt@aggTrade") for v in subs.values()) == 1
        assert "not listed in exchangeInfo" in st_nosuch["reason"]  # refused locally: no control message
        assert not any("nosuch@trade" in m for _, _, m in sim.control_log)
        # leases lapse -> unsubscribed and forgotten after the grace period, failed streams too
        for gone in ("ethusdt@aggTrade", "nosuch@trade", "ETHUSDT@trade"):
            await wait_until(lambda gone=gone: _no_status(redis_client, keys, gone), timeout=10,
                             what=f"{gone} forgotten after lease expiry")
        assert d.states == {} and d.reconciler.failed_at == {}  # type: ignore[union-attr]
        await wait_until(lambda: all("ethusdt@aggTrade" not in v for v in sim.faults.subscriptions().values()))
        for conn_id in {cid for _, cid, _ in sim.control_log}:
            assert sim.control_messages_in_window(conn_id) <= 5
    finally:
        await d.stop()


async def _no_status(r: aioredis.Redis, keys: Keys, stream: str) -> bool:
    return not await r.exists(keys.status(stream))


async def _state(r: aioredis.Redis, keys: Keys, stream: str, want: str) -> dict[str, str] | None:
    st = await status(r, keys, stream)
    return st if st.get("state") == want else None


async def test_streams_spread_over_connections(sim, redis_server, redis_client, keys) -> None:
    streams = [f"{s}@{k}" for s in ("btcusdt", "ethusdt", "bnbbtc") for k in ("trade", "bookTicker")]
    s = make_settings(sim, redis_server.url, keys.namespace, streams=streams, max_streams_per_connection=2)
    d = await StreamDaemon(s).start()
    try:
        await wait_until(lambda: len(sim.faults.subscriptions()) == 3 and
                         all(len(v) == 2 for v in sim.faults.subscriptions().values()), what="3 connections x 2")
        for st in streams:
            await wait_until(lambda st=st: redis_client.exists(keys.latest(st)), what=st)
    finally:
        await d.stop()


async def test_no_trade_lost_or_duplicated_through_drops_rotations_shutdowns_and_gaps(
        redis_server, redis_client, keys) -> None:
    """Drops every ~1 s, forced rotations (2 s lifetime), serverShutdown, malformed frames and lost trades, for
    a bounded 8 s: the Redis Stream holds every trade id exactly once, in order."""
    cfg = SimConfig(symbols=["BTCUSDT", "ETHUSDT"], rate=60.0)
    async with BinanceSim(cfg) as sim:
        s = make_settings(sim, redis_server.url, keys.namespace, streams=["btcusdt@trade", "ethusdt@aggTrade"],
                          connection_lifetime_s=2.0)
        d = await StreamDaemon(s).start()
        try:
            await wait_until(lambda: redis_client.exists(keys.latest("btcusdt@trade")))
            first = (await trade_ids(redis_client, keys, "btcusdt@trade"))[0]
            for i in range(8):
                await asyncio.sleep(1.0)  # pacing of the fault schedule, not synchronisation
                if i % 3 == 0:
                    sim.faults.drop_connections()
                elif i % 3 == 1:
                    sim.faults.malformed("invalid_json")
                    sim.faults.malformed("wrong_types", stream="btcusdt@trade")
                    sim.faults.drop_trades("BTCUSDT", 4)
                else:
                    await sim.faults.server_shutdown()
            sim.faults.pause()
            m = sim.market("BTCUSDT")
            last = m.trade_id
            await wait_until(lambda: _has_id(redis_client, keys, last), timeout=20, what=f"trade {last} in Redis")
            await d.writer.flush()
            ids = await trade_ids(redis_client, keys, "btcusdt@trade")
            assert ids == list(range(first, last + 1)), "every trade id exactly once, in order"
            st = await status(redis_client, keys, "btcusdt@trade")
            await wait_until(lambda: d.states["btcusdt@trade"].gaps_found >= 1)
            assert d.states["btcusdt@trade"].gaps_filled == d.states["btcusdt@trade"].gaps_found
            assert d.malformed >= 2
            assert sum(slot.rotations for slot in d.pool.slots) >= 1  # type: ignore[union-attr]
            agg = await redis_client.xrange(keys.history("ethusdt@aggTrade"))
            aids = [orjson.loads(f[b"d"])["a"] for _, f in agg]
            assert aids == list(range(aids[0], aids[0] + len(aids)))
            backfilled = [f for _, f in await redis_client.xrange(keys.history("btcusdt@trade")) if f.get(b"b")]
            assert backfilled, "backfilled entries are marked"
            assert int(st.get("reconnects", "0")) >= 1
        finally:
            await d.stop()


async def _has_id(r: aioredis.Redis, keys: Keys, trade_id: int) -> bool:
    raw = await r.get(keys.latest("btcusdt@trade"))
    ids = await trade_ids(r, keys, "btcusdt@trade")
    return bool(raw) and trade_id in ids


async def test_watchdog_reconnects_a_stalled_connection(sim, redis_server, redis_client, keys) -> None:
    s = make_settings(sim, redis_server.url, keys.namespace, streams=["btcusdt@bookTicker"], stale_after_s=1.0)
    d = await StreamDaemon(s).start()
    try:
        await wait_until(lambda: redis_client.exists(keys.latest("btcusdt@bookTicker")))
        opened = sim.stats["connections_opened"]
        sim.faults.stall(3.0)
        await wait_until(lambda: sim.stats["connections_opened"] > opened, timeout=10, what="watchdog reconnect")
    finally:
        await d.stop()


async def test_a_calm_pair_keeps_its_connection_and_loses_nothing(sim, redis_server, redis_client, keys) -> None:
    """Trades and a diff book of a pair that stops trading: Binance still lists both streams when asked, so the
    connection stays (no reconnect, no catch-up, no book resync every ``stale_after_s``); when the pair trades
    again every id follows the last one."""
    streams = ["bnbbtc@trade", "bnbbtc@depth@100ms"]
    s = make_settings(sim, redis_server.url, keys.namespace, streams=streams, stale_after_s=0.5)
    d = await StreamDaemon(s).start()
    try:
        await wait_until(lambda: trade_ids(redis_client, keys, "bnbbtc@trade"), what="first trades")
        await wait_until(lambda: redis_client.exists(keys.book("BNBBTC")), what="the local book")
        sim.faults.quiet("BNBBTC")
        opened, rest_calls = sim.stats["connections_opened"], sim.stats.get("rest_requests", 0)
        slots = d.pool.slots  # type: ignore[union-attr]
        await wait_until(lambda: sum(x.calm_checks for x in slots) >= 4, timeout=15, what="four calm checks")
        assert sim.stats["connections_opened"] == opened
        assert sim.stats.get("rest_requests", 0) == rest_calls  # no catch-up, no snapshot
        last = max(await trade_ids(redis_client, keys, "bnbbtc@trade"))
        sim.faults.unquiet("BNBBTC")
        sim.faults.burst("BNBBTC", 5)
        await wait_until(lambda: _newer(redis_client, keys, last + 5), what="trades after the calm")
        ids = await trade_ids(redis_client, keys, "bnbbtc@trade")
        assert ids == list(range(ids[0], ids[-1] + 1))
        assert (await status(redis_client, keys, "bnbbtc@trade")).get("gaps_found", "0") == "0"
    finally:
        await d.stop()


async def test_a_silent_timer_stream_still_means_a_dead_connection(sim, redis_server, redis_client, keys) -> None:
    """A kline stream is pushed on a timer, trades or not: a connection carrying one is replaced when silent,
    whatever LIST_SUBSCRIPTIONS would say (this simulator sends klines only on trades, like a stalled feed)."""
    s = make_settings(sim, redis_server.url, keys.namespace, streams=["bnbbtc@trade", "bnbbtc@kline_1m"],
                      stale_after_s=0.5)
    d = await StreamDaemon(s).start()
    try:
        await wait_until(lambda: redis_client.exists(keys.latest("bnbbtc@kline_1m")), what="a kline")
        sim.faults.quiet("BNBBTC")
        opened = sim.stats["connections_opened"]
        await wait_until(lambda: sim.stats["connections_opened"] > opened, timeout=10, what="watchdog reconnect")
        assert sum(x.calm_checks for x in d.pool.slots) == 0  # type: ignore[union-attr]
    finally:
        await d.stop()


async def test_a_stream_binance_stops_serving_is_resubscribed(sim, redis_server, redis_client, keys) -> None:
    """Binance drops a subscription without a word: the silent connection is asked, the answer lacks the
    stream, so the connection is replaced and the stream flows again."""
    s = make_settings(sim, redis_server.url, keys.namespace, streams=["bnbbtc@trade"], stale_after_s=0.5)
    d = await StreamDaemon(s).start()
    try:
        await wait_until(lambda: trade_ids(redis_client, keys, "bnbbtc@trade"), what="first trades")
        opened = sim.stats["connections_opened"]
        assert sim.faults.forget_subscriptions("bnbbtc@trade") == 1
        await wait_until(lambda: sim.stats["connections_opened"] > opened, timeout=10, what="a new connection")
        last = max(await trade_ids(redis_client, keys, "bnbbtc@trade"))
        await wait_until(lambda: _newer(redis_client, keys, last + 3), what="trades on the new connection")
        ids = await trade_ids(redis_client, keys, "bnbbtc@trade")
        assert ids == list(range(ids[0], ids[-1] + 1))  # what was missed meanwhile was caught up
    finally:
        await d.stop()


async def _newer(r: aioredis.Redis, keys: Keys, trade_id: int) -> bool:
    ids = await trade_ids(r, keys, "bnbbtc@trade")
    return bool(ids) and ids[-1] >= trade_id


async def test_no_hot_loop_when_the_server_closes_right_after_open(redis_server, keys) -> None:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=10.0, connection_lifetime=0.05)) as sim:
        s = make_settings(sim, redis_server.url, keys.namespace, streams=["btcusdt@trade"],
                          reconnect_max_delay_s=2.0)
        d = await StreamDaemon(s).start()
        try:
            await wait_until(lambda: sim.stats["connections_opened"] >= 3, timeout=10)
            await asyncio.sleep(3.0)  # observe the reconnect rate over a fixed span
            assert sim.stats["connections_opened"] <= 12, sim.stats["connections_opened"]
        finally:
            await d.stop()


async def test_redis_restart_mid_stream_loses_nothing(keys, tmp_path) -> None:
    rs = RedisServer(extra_args=["--appendonly", "yes", "--appendfsync", "always"], dir=str(tmp_path)).start()
    try:
        async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=60.0)) as sim:
            s = make_settings(sim, rs.url, keys.namespace, streams=["btcusdt@trade"])
            d = await StreamDaemon(s).start()
            r = aioredis.Redis.from_url(rs.url)
            try:
                await wait_until(lambda: r.exists(keys.latest("btcusdt@trade")))
                first = (await trade_ids(r, keys, "btcusdt@trade"))[0]
                rs.stop()
                await wait_until(lambda: not d.writer.redis_ok and len(d.writer.pending) > 20, timeout=10,
                                 what="writer buffering while Redis is down")
                rs.start()
                await r.aclose()
                r = aioredis.Redis.from_url(rs.url)  # the test's own client: a fresh connection
                await wait_until(lambda: d.writer.redis_ok and not d.writer.pending, timeout=15)
                sim.faults.pause()
                last = sim.market("BTCUSDT").trade_id
                await wait_until(lambda: _has_id(r, keys, last), timeout=15)
                assert await trade_ids(r, keys, "btcusdt@trade") == list(range(first, last + 1))
                assert d.writer.dropped == 0 and d.writer.errors >= 1
            finally:
                await d.stop()
                await r.aclose()
    finally:
        rs.cleanup()


def test_cli_check_and_status(redis_server, namespace) -> None:
    env = {**os.environ, "BINANCE_MCP_REDIS_URL": redis_server.url, "BINANCE_MCP_NAMESPACE": namespace}
    exe = [sys.executable, "-m", "binance_streamd"]
    r = subprocess.run([*exe, "check"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "no heartbeat" in r.stderr
    import redis

    c = redis.Redis.from_url(redis_server.url)
    k = Keys(namespace)
    c.set(k.heartbeat, orjson.dumps({"pid": 1, "host": "h", "started": 0, "ts": 0}), px=5000)
    c.hset(k.status("btcusdt@trade"), mapping={"state": "live", "rate": "12.5", "gaps_found": "1"})
    r = subprocess.run([*exe, "check"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    r = subprocess.run([*exe, "status"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "btcusdt@trade" in r.stdout and "live" in r.stdout and "12.5" in r.stdout


async def test_replayed_recording_builds_the_four_books_exactly(redis_server, redis_client, keys,
                                                                 recording_path) -> None:
    from tests.support.recordings import reconstruct_from_recording

    expected = reconstruct_from_recording(recording_path)
    async with BinanceSim(SimConfig(symbols=[], rate=0, replay=recording_path, replay_delay=0.5)) as sim:
        s = make_settings(sim, redis_server.url, keys.namespace, order_book_symbols=sorted(expected),
                          order_book_top_n=5000, stale_after_s=600)
        d = await StreamDaemon(s).start()
        try:
            await sim.replay_done(30)
            for sym, (bids, asks) in expected.items():
                async def equal(sym: str = sym, bids: dict = bids, asks: dict = asks) -> bool:
                    raw = await redis_client.get(keys.book(sym))
                    if not raw:
                        return False
                    book = orjson.loads(raw)
                    return ({p: q for p, q in book["bids"]} == bids and {p: q for p, q in book["asks"]} == asks)
                await wait_until(equal, timeout=15, what=f"book {sym} equal to the reconstruction")
        finally:
            await d.stop()


async def test_sigterm_stops_the_process_gracefully(sim, redis_server, redis_client, keys) -> None:
    import signal

    env = {**os.environ, "BINANCE_MCP_REDIS_URL": redis_server.url, "BINANCE_MCP_NAMESPACE": keys.namespace,
           "BINANCE_MCP_WS_BASE_URL": sim.ws_url, "BINANCE_MCP_REST_BASE_URL": sim.rest_url,
           "BINANCE_MCP_STREAMS": "btcusdt@trade"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "binance_streamd", "run", env=env,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        await wait_until(lambda: redis_client.exists(keys.heartbeat), timeout=20, what="heartbeat")
        await wait_until(lambda: redis_client.exists(keys.latest("btcusdt@trade")), timeout=20)
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 15)
        assert rc == 0
        assert not await redis_client.exists(keys.heartbeat)
        err = (await proc.stderr.read()).decode()  # type: ignore[union-attr]
        assert "binance-streamd started" in err and "Traceback" not in err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_prometheus_metrics_endpoint(sim, redis_server, redis_client, keys) -> None:
    import httpx

    from binance_streamd.metrics import serve_metrics
    from tests.support.redis_server import free_port

    s = make_settings(sim, redis_server.url, keys.namespace, streams=["btcusdt@trade"])
    d = await StreamDaemon(s).start()
    port = free_port()
    server = await serve_metrics(d, port)
    try:
        await wait_until(lambda: "btcusdt@trade" in d.states and d.states["btcusdt@trade"].msgs > 0)
        async with httpx.AsyncClient() as c:
            text = (await c.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'binance_streamd_messages_total{stream="btcusdt@trade"}' in text
        assert "binance_streamd_connections 1" in text and "binance_streamd_dropped_total 0" in text
    finally:
        server.close()
        await d.stop()


async def test_a_leased_depth_stream_gets_a_local_book(sim, redis_server, redis_client, keys) -> None:
    import time

    s = make_settings(sim, redis_server.url, keys.namespace)
    d = await StreamDaemon(s).start()
    try:
        await redis_client.zadd(keys.leases, {keys.lease_member("ethusdt@depth@100ms", "a"): int(time.time() * 1000) + 60_000})
        await redis_client.publish(keys.control_channel, "reconcile")
        raw = await wait_until(lambda: redis_client.get(keys.book("ETHUSDT")), timeout=15, what="leased book")
        book = orjson.loads(raw)
        assert book["symbol"] == "ETHUSDT" and book["bids"] and book["asks"]
        assert float(book["bids"][0][0]) < float(book["asks"][0][0])
        await redis_client.zrem(keys.leases, keys.lease_member("ethusdt@depth@100ms", "a"))
        await redis_client.publish(keys.control_channel, "reconcile")
        await wait_until(lambda: "ETHUSDT" not in d.books.symbols, timeout=10)  # type: ignore[union-attr]
    finally:
        await d.stop()
