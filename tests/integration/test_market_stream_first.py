"""Stream-first answers: fresh feed data in Redis answers without REST (source ws, age); stale or missing data
falls back to REST; source='rest' and source='stream' force either side."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from binance_common.keys import Keys
from binance_mcp.runtime import Runtime
from tests.support.market_harness import (
    Counting,
    call,
    call_error,
    client_for,
    replica,
    seed_book,
    seed_history,
    seed_latest,
)

REST_ANSWERS: dict[str, Any] = {
    "/api/v3/ticker/bookTicker": {
        "symbol": "BTCUSDT", "bidPrice": "1.00", "bidQty": "1", "askPrice": "2.00", "askQty": "1"
    },
    "/api/v3/ticker/price": {"symbol": "BTCUSDT", "price": "9.99"},
    "/api/v3/ticker/24hr": {
        "symbol": "BTCUSDT", "openPrice": "1", "highPrice": "2", "lowPrice": "1", "lastPrice": "2", "volume": "3",
        "quoteVolume": "4", "openTime": 1, "closeTime": 2, "firstId": 1, "lastId": 2, "count": 2,
    },
    "/api/v3/ticker": {
        "symbol": "BTCUSDT", "openPrice": "1", "highPrice": "2", "lowPrice": "1", "lastPrice": "2", "volume": "3",
        "quoteVolume": "4", "openTime": 1, "closeTime": 2, "firstId": 1, "lastId": 2, "count": 2,
    },
    "/api/v3/depth": {"lastUpdateId": 5, "bids": [["1.0", "1"]], "asks": [["2.0", "1"]]},
    "/api/v3/trades": [
        {"id": 1, "price": "1.0", "qty": "1", "quoteQty": "1.0", "time": 1, "isBuyerMaker": True, "isBestMatch": True}
    ],
    "/api/v3/aggTrades": [{"a": 1, "p": "1.0", "q": "1", "f": 1, "l": 1, "T": 1, "m": True, "M": True}],
    "/api/v3/avgPrice": {"mins": 5, "price": "1.5", "closeTime": 1},
}


@pytest.fixture
async def r(redis_server) -> AsyncIterator[aioredis.Redis]:  # type: ignore[no-untyped-def]
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def fake() -> Counting:
    return Counting(REST_ANSWERS)


@pytest.fixture
async def rt(settings_factory, redis_server, fake: Counting) -> AsyncIterator[Runtime]:  # type: ignore[no-untyped-def]
    async with replica(settings_factory(redis_url=redis_server.url, order_book_top_n=50), fake) as runtime:
        yield runtime


BOOK_TICKER = {"u": 400900217, "s": "BTCUSDT", "b": "25.35190000", "B": "31.21000000", "a": "25.36520000", "A": "40.66000000"}


async def test_book_ticker_from_fresh_stream(rt: Runtime, r: aioredis.Redis, keys: Keys, fake: Counting) -> None:
    await seed_latest(r, keys, "btcusdt@bookTicker", BOOK_TICKER, age_ms=300)
    async with client_for(rt) as c:
        out = await call(c, "get_book_ticker", {"symbol": "btcusdt"})
        assert out["source"] == "ws" and out["stream"] == "btcusdt@bookTicker"
        assert 300 <= out["age_ms"] < 3000
        assert (out["bid_price"], out["ask_qty"]) == ("25.35190000", "40.66000000")
        assert out["spread"] == "0.01330000"
        assert fake.calls == []  # no REST weight spent
        forced = await call(c, "get_book_ticker", {"symbol": "BTCUSDT", "source": "rest"})
        assert forced["source"] == "rest" and forced["bid_price"] == "1.00" and forced["age_ms"] == 0
        assert fake.paths() == ["/api/v3/ticker/bookTicker"]


async def test_stale_stream_falls_back_to_rest(rt: Runtime, r: aioredis.Redis, keys: Keys, fake: Counting) -> None:
    await seed_latest(r, keys, "btcusdt@bookTicker", BOOK_TICKER, age_ms=6000)  # threshold 5 s
    async with client_for(rt) as c:
        out = await call(c, "get_book_ticker", {"symbol": "BTCUSDT"})
        assert out["source"] == "rest" and out["bid_price"] == "1.00"
        text = await call_error(c, "get_book_ticker", {"symbol": "BTCUSDT", "source": "stream"})
        assert "no fresh" in text and "subscribe_streams(streams=['btcusdt@bookTicker'])" in text
        text = await call_error(c, "get_book_ticker", {"symbol": "ETHUSDT", "source": "stream"})
        assert "ethusdt@bookTicker" in text
    assert fake.paths() == ["/api/v3/ticker/bookTicker"]


async def test_price_and_tickers_from_streams(rt: Runtime, r: aioredis.Redis, keys: Keys, fake: Counting) -> None:
    ticker = {
        "e": "24hrTicker", "E": 1, "s": "BTCUSDT", "p": "0.0015", "P": "250.00", "w": "0.0018", "x": "0.0009",
        "c": "0.00250000", "Q": "10", "b": "0.0024", "B": "10", "a": "0.0026", "A": "100", "o": "0.0010",
        "h": "0.0025", "l": "0.0010", "v": "10000", "q": "18", "O": 0, "C": 86400000, "F": 0, "L": 18150, "n": 18151,
    }
    await seed_latest(r, keys, "btcusdt@ticker", ticker, age_ms=100)
    rolling = {k: v for k, v in ticker.items() if k not in ("x", "Q", "b", "B", "a", "A")} | {"e": "4hTicker"}
    await seed_latest(r, keys, "btcusdt@ticker_4h", rolling, age_ms=100)
    await seed_latest(r, keys, "btcusdt@trade", {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 1, "p": "0.00260000",
                                                 "q": "1", "T": 1, "m": True, "M": True}, age_ms=10)
    await seed_latest(r, keys, "btcusdt@avgPrice", {"e": "avgPrice", "E": 1, "s": "BTCUSDT", "i": "5m",
                                                    "w": "0.00240000", "T": 5}, age_ms=10)
    async with client_for(rt) as c:
        price = await call(c, "get_price", {"symbol": "BTCUSDT"})
        assert price["source"] == "ws" and price["stream"] == "btcusdt@trade" and price["price"] == "0.00260000"
        t = await call(c, "get_24hr_ticker", {"symbol": "BTCUSDT"})
        assert t["source"] == "ws" and t["ticker"]["last_price"] == "0.00250000" and t["ticker"]["bid_price"] == "0.0024"
        mini = await call(c, "get_24hr_ticker", {"symbol": "BTCUSDT", "type": "MINI"})
        assert "bid_price" not in mini["ticker"] and mini["ticker"]["trade_count"] == 18151
        w = await call(c, "get_rolling_window_ticker", {"symbol": "BTCUSDT", "window_size": "4h"})
        assert w["source"] == "ws" and w["window"] == "4h" and w["ticker"]["price_change_percent"] == "250.00"
        w2 = await call(c, "get_rolling_window_ticker", {"symbol": "BTCUSDT", "window_size": "2h"})
        assert w2["source"] == "rest"  # no stream exists for 2h windows
        text = await call_error(c, "get_rolling_window_ticker", {"symbol": "BTCUSDT", "window_size": "2h", "source": "stream"})
        assert "1h, 4h, 1d" in text
        avg = await call(c, "get_average_price", {"symbol": "BTCUSDT"})
        assert avg == avg | {"source": "ws", "mins": 5, "price": "0.00240000", "close_time_ms": 5}
    assert fake.paths() == ["/api/v3/ticker"]


async def test_order_book_from_local_book_and_partial_depth(
    rt: Runtime, r: aioredis.Redis, keys: Keys, fake: Counting
) -> None:
    bids = [[f"{100 - i}.00", "1.5"] for i in range(50)]
    asks = [[f"{101 + i}.00", "2"] for i in range(50)]
    await seed_book(r, keys, "BTCUSDT", bids, asks, age_ms=200)
    await seed_latest(r, keys, "ethusdt@depth10@100ms", {"lastUpdateId": 9, "bids": [["5.0", "1"]] * 10,
                                                         "asks": [["6.0", "1"]] * 10}, age_ms=100)
    async with client_for(rt) as c:
        out = await call(c, "get_order_book", {"symbol": "BTCUSDT", "limit": 5, "band_pct": 2})
        assert out["source"] == "ws" and out["stream"] == "book:BTCUSDT" and out["last_update_id"] == 777
        assert [b["price"] for b in out["bids"]] == ["100.00", "99.00", "98.00", "97.00", "96.00"]
        assert out["best_ask"] == "101.00" and out["spread"] == "1.00" and out["mid"] == "100.5"
        assert out["depth_in_band"]["bid_qty"] == "3"  # 100 and 99 (98 < 98.49, the band floor)
        eth = await call(c, "get_order_book", {"symbol": "ETHUSDT", "limit": 10})
        assert eth["source"] == "ws" and eth["stream"] == "ethusdt@depth10@100ms"
        eth20 = await call(c, "get_order_book", {"symbol": "ETHUSDT", "limit": 20})
        assert eth20["source"] == "rest"  # the partial stream holds only 10 levels
        big = await call(c, "get_order_book", {"symbol": "BTCUSDT", "limit": 100})
        assert big["source"] == "rest"  # the local book keeps 50 levels
    assert fake.paths() == ["/api/v3/depth", "/api/v3/depth"]


def _trade(i: int) -> dict[str, Any]:
    return {"e": "trade", "E": i, "s": "BTCUSDT", "t": i, "p": f"1.{i:04d}", "q": "2", "T": i, "m": i % 2 == 0, "M": True}


def _agg(i: int) -> dict[str, Any]:
    return {"e": "aggTrade", "E": i, "s": "BTCUSDT", "a": i, "p": "1.5", "q": "1", "f": i, "l": i, "T": i, "m": False, "M": True}


async def test_trades_from_complete_live_history(rt: Runtime, r: aioredis.Redis, keys: Keys, fake: Counting) -> None:
    # a backfilled entry arrives out of order; ids 1..30 are all present
    payloads = [_trade(i) for i in range(1, 31) if i != 20] + [_trade(20)]
    await seed_history(r, keys, "btcusdt@trade", payloads)
    await seed_history(r, keys, "btcusdt@aggTrade", [_agg(i) for i in range(100, 120)])
    async with client_for(rt) as c:
        out = await call(c, "get_recent_trades", {"symbol": "BTCUSDT", "limit": 15})
        assert out["source"] == "ws" and [t["id"] for t in out["trades"]] == list(range(16, 31))
        assert out["trades"][0]["quote_qty"] == "2.0032"  # 1.0016 x 2, exact
        assert out["summary"]["count"] == 15 and out["summary"]["volume"] == "30"
        agg = await call(c, "get_aggregate_trades", {"symbol": "BTCUSDT", "limit": 20})
        assert agg["source"] == "ws" and agg["trades"][-1]["agg_id"] == 119 and agg["next_from_id"] == 120
        # more than the stream holds -> REST
        more = await call(c, "get_recent_trades", {"symbol": "BTCUSDT", "limit": 31})
        assert more["source"] == "rest"
        # a selection by time is always REST; source=stream refuses it
        assert (await call(c, "get_aggregate_trades", {"symbol": "BTCUSDT", "from_id": 5}))["source"] == "rest"
        text = await call_error(c, "get_aggregate_trades", {"symbol": "BTCUSDT", "from_id": 5, "source": "stream"})
        assert "most recent" in text
    assert fake.paths() == ["/api/v3/trades", "/api/v3/aggTrades"]


async def test_trades_with_a_gap_or_not_live_use_rest(rt: Runtime, r: aioredis.Redis, keys: Keys, fake: Counting) -> None:
    await seed_history(r, keys, "btcusdt@trade", [_trade(i) for i in range(1, 31) if i != 25])  # gap at 25
    await seed_history(r, keys, "ethusdt@trade", [_trade(i) for i in range(1, 31)], state="failed")
    async with client_for(rt) as c:
        assert (await call(c, "get_recent_trades", {"symbol": "BTCUSDT", "limit": 10}))["source"] == "rest"
        assert (await call(c, "get_recent_trades", {"symbol": "BTCUSDT", "limit": 5}))["source"] == "ws"  # 26..30
        assert (await call(c, "get_recent_trades", {"symbol": "ETHUSDT", "limit": 5}))["source"] == "rest"


async def test_feed_store_down_falls_back_to_rest(settings_factory, redis_server, fake: Counting) -> None:  # type: ignore[no-untyped-def]
    """auto: Redis unreachable is not an error for a REST-capable tool; stream: it is."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    async with replica(settings_factory(redis_url=redis_server.url), fake) as rt:
        live = rt.r
        rt.redis = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
        try:
            async with client_for(rt) as c:
                out = await call(c, "get_book_ticker", {"symbol": "BTCUSDT"})
                assert out["source"] == "rest"
                text = await call_error(c, "get_book_ticker", {"symbol": "BTCUSDT", "source": "stream"})
                assert "unreachable" in text
        finally:
            await rt.r.aclose()
            rt.redis = live
