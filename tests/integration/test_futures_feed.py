"""USD-M futures streams in the daemon against the simulator's routed paths and a real redis-server: each
stream on its path (/public book data, /market the rest), keys apart from spot's, aggTrade ids exact through
drops (catch-up from /fapi/v1/aggTrades), books rebuilt exactly after injected pu gaps, and a stream on the
wrong path detected, reported and moved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

import binance_common.streams as streams_mod
from binance_common.keys import Keys
from binance_common.settings import Settings
from binance_common.streams import StreamKind
from binance_streamd.service import StreamDaemon
from tests.support.market_harness import call, client_for, replica
from tests.support.sim import BinanceSim, SimConfig
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def sim() -> AsyncIterator[BinanceSim]:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT"], rate=30.0)) as s:
        yield s


def settings(sim: BinanceSim, redis_url: str, keys: Keys, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(rest_base_url=sim.rest_url, ws_base_url=sim.ws_url, futures_rest_base_url=sim.rest_url,
                                futures_ws_base_url=sim.ws_url, redis_url=redis_url, namespace=keys.namespace,
                                reconnect_max_delay_s=0.5, unsubscribe_grace_s=0.3)
    return Settings(**(base | kw))


async def status(r: aioredis.Redis, keys: Keys, stream: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (await r.hgetall(keys.status(stream))).items()}


async def live(r: aioredis.Redis, keys: Keys, stream: str) -> bool:
    return (await status(r, keys, stream)).get("state") == "live"


async def agg_ids(r: aioredis.Redis, keys: Keys, stream: str) -> list[int]:
    return [orjson.loads(f[b"d"])["a"] for _, f in await r.xrange(keys.history(stream)) if b"d" in f]


async def test_futures_streams_go_to_their_paths_and_keep_their_own_keys(sim, redis_server, redis_client, keys):
    names = ["btcusdt@aggTrade", "um:btcusdt@aggTrade", "um:btcusdt@markPrice@1s", "um:btcusdt@bookTicker",
             "um:ethusdt@kline_1m"]
    d = await StreamDaemon(settings(sim, redis_server.url, keys, streams=names)).start()
    try:
        for n in names:
            await wait_until(lambda n=n: live(redis_client, keys, n), what=f"{n} live", timeout=15)
            await wait_until(lambda n=n: redis_client.exists(keys.latest(n)), what=f"latest {n}")
        spot = orjson.loads(await redis_client.get(keys.latest("btcusdt@aggTrade")))["d"]
        fut = orjson.loads(await redis_client.get(keys.latest("um:btcusdt@aggTrade")))["d"]
        assert "M" in spot and "M" not in fut and "nq" in fut  # each venue's own payload, under its own key
        mark = orjson.loads(await redis_client.get(keys.latest("um:btcusdt@markPrice@1s")))["d"]
        assert mark["e"] == "markPriceUpdate"
        routes = {c.route for c in sim.connections if c.streams}
        assert routes == {None, "public", "market"}
        by_route = {c.route: set(c.streams) for c in sim.connections if c.route}
        assert by_route["public"] == {"btcusdt@bookTicker"}
        assert by_route["market"] == {"btcusdt@aggTrade", "btcusdt@markPrice@1s", "ethusdt@kline_1m"}
        assert sim.stats["futures_wrong_path"] == 0
        # the front end answers from the futures stream (no fapi request)
        async with replica(settings(sim, redis_server.url, keys, toolsets="futures")) as rt, client_for(rt) as c:
            before = len(sim.futures_rest.requests)
            m = await call(c, "get_mark_price", {"symbol": "BTCUSDT", "source": "stream"})
            assert m["source"] == "ws" and m["stream"] == "um:btcusdt@markPrice@1s"
            assert len(sim.futures_rest.requests) == before
        # an agent subscribes a futures stream through the front end: leased, carried, read back decoded
        async with replica(settings(sim, redis_server.url, keys, toolsets="streams")) as rt, client_for(rt) as c:
            sub = await call(c, "subscribe_streams", {"streams": ["um:ethusdt@markPrice@1s"], "wait_s": 15})
            assert sub["live"] == 1 and sub["subscriptions"][0]["state"] == "live", sub
            await wait_until(lambda: redis_client.exists(keys.latest("um:ethusdt@markPrice@1s")), what="data")
            latest = await call(c, "get_stream_latest", {"stream": "um:ethusdt@markPrice@1s"})
            assert latest["data"]["event_type"] == "markPriceUpdate" and latest["data"]["funding_rate"] == "0.00010000"
    finally:
        await d.stop()


async def test_futures_aggtrade_ids_stay_exact_through_drops(sim, redis_server, redis_client, keys):
    name = "um:btcusdt@aggTrade"
    d = await StreamDaemon(settings(sim, redis_server.url, keys, streams=[name])).start()
    try:
        await wait_until(lambda: live(redis_client, keys, name), what="live", timeout=15)
        await wait_until(lambda: _count(redis_client, keys, name, 20), what="some aggTrades", timeout=15)
        for _ in range(3):
            sim.faults.drop_ws_api()  # (none here) and the market connections:
            for c in [c for c in sim.connections if c.route == "market"]:
                c.abort()
            sim.faults.burst("BTCUSDT", 30)  # trades while nothing is connected
            await wait_until(lambda: live(redis_client, keys, name), what="live again", timeout=15)
        sim.faults.pause()
        newest = sim.market("BTCUSDT").agg_id
        await wait_until(lambda: _last_is(redis_client, keys, name, newest), what="caught up", timeout=15)
        ids = await agg_ids(redis_client, keys, name)
        assert ids == list(range(ids[0], ids[-1] + 1))  # no id lost or repeated
        assert any(p == "/fapi/v1/aggTrades" for p, _ in sim.futures_rest.requests)
    finally:
        await d.stop()


async def _count(r, keys, name, n):  # type: ignore[no-untyped-def]
    return len(await agg_ids(r, keys, name)) >= n


async def _last_is(r, keys, name, last):  # type: ignore[no-untyped-def]
    ids = await agg_ids(r, keys, name)
    return bool(ids) and ids[-1] == last


async def test_a_futures_book_rebuilds_exactly_after_pu_gaps(sim, redis_server, redis_client, keys):
    name = "um:btcusdt@depth@100ms"
    d = await StreamDaemon(settings(sim, redis_server.url, keys, streams=[name], order_book_top_n=20)).start()
    try:
        assert d.books is not None
        books = d.books
        await wait_until(lambda: books.status().get("UM:BTCUSDT", {}).get("E") is not None, what="diffs applied",
                         timeout=15)
        await wait_until(lambda: _book_state(redis_client, keys, "live"), what="futures book live", timeout=15)
        assert await redis_client.get(keys.book("BTCUSDT")) is None  # spot's book key untouched
        for n in range(1, 4):
            sim.faults.drop_futures_depth("BTCUSDT", 2)
            await wait_until(lambda n=n: books.status()["UM:BTCUSDT"]["gaps"] >= n, what=f"gap {n} found by pu")
            await wait_until(lambda: books.status()["UM:BTCUSDT"]["state"] == "live", what="live again", timeout=15)
        assert books.status()["UM:BTCUSDT"]["gaps"] == 3 and books.status()["UM:BTCUSDT"]["snapshots"] >= 4
        sim.faults.pause()
        sim.futures_hub.flush_now()  # the changes of the window the pause cut short reach the daemon too
        bids, asks = sim.book("BTCUSDT", 20)
        await wait_until(lambda: _book_equals(redis_client, keys, bids, asks), what="book equal to Binance's",
                         timeout=15)
        async with replica(settings(sim, redis_server.url, keys, toolsets="streams,futures")) as rt, \
                client_for(rt) as c:
            view = await call(c, "get_live_order_book", {"symbol": "BTCUSDT", "venue": "um", "levels": 5})
            assert [[lv["price"], lv["quantity"]] for lv in view["bids"]] == bids[:5]
            fut = await call(c, "get_futures_order_book", {"symbol": "BTCUSDT", "limit": 10})
            assert fut["source"] == "ws" and fut["stream"] == "book:UM:BTCUSDT"
    finally:
        await d.stop()


async def _book_state(r, keys, state):  # type: ignore[no-untyped-def]
    raw = await r.get(keys.book("UM:BTCUSDT"))
    return raw is not None and orjson.loads(raw).get("state", "live") == state and (
        state != "live" or bool(orjson.loads(raw).get("bids")))


async def _book_equals(r, keys, bids, asks):  # type: ignore[no-untyped-def]
    raw = await r.get(keys.book("UM:BTCUSDT"))
    if raw is None:
        return False
    b = orjson.loads(raw)
    return b.get("bids") == bids and b.get("asks") == asks


async def test_a_stream_on_the_wrong_path_is_detected_reported_and_moved(sim, redis_server, redis_client, keys,
                                                                         monkeypatch):
    # a routing table that is wrong about markPrice (as if Binance had moved it): the daemon sends it to /public
    monkeypatch.setattr(streams_mod, "FUTURES_PUBLIC_KINDS",
                        streams_mod.FUTURES_PUBLIC_KINDS | {StreamKind.MARK_PRICE})
    name = "um:btcusdt@markPrice@1s"
    d = await StreamDaemon(settings(sim, redis_server.url, keys, streams=[name], futures_silence_s=2.0)).start()
    try:
        await wait_until(lambda: sim.stats["futures_wrong_path"] >= 1, what="subscribed on the wrong path")
        await wait_until(lambda: _reason_has(redis_client, keys, name, "moved to /market"), what="reported",
                         timeout=15)
        await wait_until(lambda: redis_client.exists(keys.latest(name)), what="data on the right path", timeout=15)
        assert await live(redis_client, keys, name)
        assert {c.route for c in sim.connections if name[3:] in c.streams and c.route} >= {"market"}
    finally:
        await d.stop()


async def _reason_has(r, keys, name, text):  # type: ignore[no-untyped-def]
    return text in (await status(r, keys, name)).get("reason", "")
