"""USD-M futures tools through the real MCP client against the simulator's fapi endpoints: every tool, exact
values, the separate weight budget, sizes within the answer budget, refusals that say what is allowed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from binance_mcp import tools
from tests.support.market_harness import call, call_error, client_for, replica
from tests.support.sim import BinanceSim, SimConfig
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def sim() -> AsyncIterator[BinanceSim]:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT", "BNBBTC"], rate=40)) as s:
        await wait_until(lambda: len(s.market("BTCUSDT").trades) > 20, what="some futures trades")
        yield s


async def test_every_futures_tool_answers_with_exact_values(sim, settings_factory, redis_server, keys) -> None:
    s = settings_factory(redis_url=redis_server.url, rest_base_url=sim.rest_url, futures_rest_base_url=sim.rest_url,
                         toolsets="futures")
    async with replica(s) as rt, client_for(rt) as c:
        listed = {t.name for t in (await c.list_tools()).tools}
        assert listed == {spec.name for spec in tools.TOOLSETS["futures"]}
        info = await call(c, "get_futures_exchange_info", {"query": "BTC"})
        assert [x["symbol"] for x in info["symbols"]] == ["BTCUSDT"] and info["symbol_count"] == 2
        assert info["symbols"][0]["contract_type"] == "PERPETUAL" and info["rate_limits"][0]["limit"] == 2400
        book = await call(c, "get_futures_order_book", {"symbol": "BTCUSDT", "limit": 5})
        assert book["source"] == "rest" and len(book["bids"]) == 5 and book["bids"][0]["price"] > book["bids"][1]["price"]
        trades = await call(c, "get_futures_recent_trades", {"symbol": "BTCUSDT", "limit": 10})
        assert len(trades["trades"]) == 10 and trades["summary"]["count"] == 10
        aggs = await call(c, "get_futures_aggregate_trades", {"symbol": "BTCUSDT", "limit": 5})
        first = aggs["trades"][0]["agg_id"]
        page = await call(c, "get_futures_aggregate_trades", {"symbol": "BTCUSDT", "from_id": first, "limit": 3})
        assert [t["agg_id"] for t in page["trades"]] == [first, first + 1, first + 2]
        for price_type in ("trade", "mark", "index", "premium"):
            k = await call(c, "get_futures_klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 3,
                                                     "price_type": price_type})
            assert k["count"] == 3 and k["price_type"] == price_type
        cont = await call(c, "get_futures_klines", {"symbol": "BTCUSDT", "interval": "1h", "limit": 2,
                                                    "contract_type": "PERPETUAL"})
        assert cont["contract_type"] == "PERPETUAL"
        mark = await call(c, "get_mark_price", {"symbol": "BTCUSDT"})
        m = sim.market("BTCUSDT")
        assert mark["prices"][0]["last_funding_rate"] == "0.00010000" and mark["source"] == "rest"
        assert mark["prices"][0]["mark_price"]
        assert len((await call(c, "get_mark_price"))["prices"]) == 2
        funding = await call(c, "get_funding_rate_history", {"symbol": "BTCUSDT", "limit": 3})
        assert funding["columns"] == ["funding_time_ms", "funding_rate", "mark_price"] and len(funding["rows"]) == 3
        assert funding["rows"][1][0] - funding["rows"][0][0] == 8 * 3_600_000
        sim.faults.pause()  # the book stands still: the simulator's open interest is exactly known
        oi = await call(c, "get_open_interest", {"symbol": "BTCUSDT"})
        assert oi["open_interest"] == m.qty(sum(m.bids.values()))
        sim.faults.resume()
        oih = await call(c, "get_open_interest_history", {"symbol": "BTCUSDT", "period": "5m", "limit": 4})
        assert len(oih["rows"]) == 4 and oih["period"] == "5m"
        for kind in ("global_accounts", "top_accounts", "top_positions"):
            ratio = await call(c, "get_long_short_ratio", {"symbol": "BTCUSDT", "kind": kind, "limit": 2})
            assert ratio["rows"][0][1] == "1.2500" and isinstance(ratio["rows"][0][0], int)
        taker = await call(c, "get_taker_buy_sell_volume", {"symbol": "BTCUSDT", "limit": 2})
        assert taker["rows"][0][2:] == ["105.000", "100.000"]
        tick = await call(c, "get_futures_24hr_ticker")
        assert {t["symbol"] for t in tick["tickers"]} == {"BTCUSDT", "ETHUSDT"}
        bt = await call(c, "get_futures_book_ticker", {"symbol": "ETHUSDT"})
        assert bt["tickers"][0]["symbol"] == "ETHUSDT"
        assert len((await call(c, "get_futures_price"))["prices"]) == 2
        # the futures budget is its own: spot's weight key never moved, fapi's did
        assert await rt.r.get(rt.keys.rl_weight(_minute())) is None
        assert int(await rt.r.get(rt.keys.scoped("fapi:").rl_weight(_minute())) or 0) > 0


def _minute() -> int:
    import time

    return int(time.time() * 1000) // 60_000


async def test_futures_refusals_say_what_is_allowed(sim, settings_factory, redis_server) -> None:
    s = settings_factory(redis_url=redis_server.url, rest_base_url=sim.rest_url, futures_rest_base_url=sim.rest_url,
                         toolsets="futures")
    async with replica(s) as rt, client_for(rt) as c:
        before = len(sim.futures_rest.requests)
        assert "one hour" in await call_error(c, "get_futures_aggregate_trades", {
            "symbol": "BTCUSDT", "start_time": "2024-01-01T00:00:00Z", "end_time": "2024-01-01T02:00:00Z"})
        assert "30 days" in await call_error(c, "get_open_interest_history", {"symbol": "BTCUSDT",
                                                                               "start_time": "2020-01-01"})
        assert "price_type=trade" in await call_error(c, "get_futures_klines", {
            "symbol": "BTCUSDT", "price_type": "mark", "contract_type": "PERPETUAL"})
        await call_error(c, "get_futures_order_book", {"symbol": "BTCUSDT", "limit": 7})
        await call_error(c, "get_futures_klines", {"symbol": "BTCUSDT", "interval": "1s"})
        await call_error(c, "get_futures_price", {"symbol": "BTC USDT"})
        assert len(sim.futures_rest.requests) == before
        assert "-1121" in await call_error(c, "get_futures_order_book", {"symbol": "NOSUCHUSDT"})


async def test_long_futures_series_fit_the_answer_budget(sim, settings_factory, redis_server) -> None:
    s = settings_factory(redis_url=redis_server.url, rest_base_url=sim.rest_url, futures_rest_base_url=sim.rest_url,
                         toolsets="futures", answer_budget_bytes=4000)
    async with replica(s) as rt, client_for(rt) as c:
        res = await c.call_tool("get_futures_klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1500})
        assert len(res.content[0].text) <= 4000  # type: ignore[union-attr]
        k = res.structured_content
        assert k is not None and k["truncated"] and k["omitted"] + k["count"] == 1500 and "end_time=" in k["hint"]
        f = await call(c, "get_funding_rate_history", {"symbol": "BTCUSDT", "limit": 1000})
        assert f["truncated"] and f["returned"] < 1000


async def test_the_futures_statistics_limit_is_kept_apart(sim, settings_factory, redis_server, monkeypatch) -> None:
    """/futures/data/* has its own request-count limit (1000 / 5 min): counted apart, shared through Redis,
    held back before Binance would refuse; other futures calls go on."""
    import binance_mcp.runtime as runtime_mod

    monkeypatch.setattr(runtime_mod, "FUTURES_LIMITS", (("/futures/data/", "fdata:", 3),))  # budget 2 a minute
    s = settings_factory(redis_url=redis_server.url, rest_base_url=sim.rest_url, futures_rest_base_url=sim.rest_url,
                         toolsets="futures")
    async with replica(s) as rt, client_for(rt) as c:
        sent = []
        for _ in range(2):
            sent.append(await call(c, "get_long_short_ratio", {"symbol": "BTCUSDT", "limit": 1}))
        before = len(sim.futures_rest.requests)
        err = await call_error(c, "get_taker_buy_sell_volume", {"symbol": "BTCUSDT"})
        assert "held back" in err and len(sim.futures_rest.requests) == before
        assert (await call(c, "get_mark_price", {"symbol": "BTCUSDT", "source": "rest"}))["prices"]
