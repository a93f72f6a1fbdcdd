"""The price-range execution rule and block trades (Binance 2026): get_price_rules and get_block_trades
through the real MCP client, the referencePrice and blockTrade streams through the daemon; the simulator and a
real redis-server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from binance_mcp.runtime import Runtime
from binance_streamd.service import StreamDaemon
from tests.support.market_harness import call, call_error, client_for, replica
from tests.support.sim import BinanceSim, SimConfig
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def sim() -> AsyncIterator[BinanceSim]:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT", "BNBBTC"], rate=60.0, seed=3)) as s:
        yield s


@pytest.fixture
def settings(settings_factory, redis_server, sim: BinanceSim):  # type: ignore[no-untyped-def]
    return settings_factory(rest_base_url=sim.rest_url, ws_base_url=sim.ws_url, redis_url=redis_server.url,
                            toolsets=["spot", "streams", "trading"])


@pytest.fixture
async def rt(settings) -> AsyncIterator[Runtime]:  # type: ignore[no-untyped-def]
    async with replica(settings) as runtime:
        yield runtime


def requests(sim: BinanceSim, path: str) -> int:
    return sum(1 for p, _ in sim.rest.requests if p == path)


async def test_one_symbol_gives_its_rule_reference_price_and_execution_range(rt: Runtime, sim: BinanceSim) -> None:
    async with client_for(rt) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert {"get_price_rules", "get_block_trades"} <= names and "get_order_rate_limits" not in names  # no key
        out = await call(c, "get_price_rules", {"symbol": "btc/usdt"})
        ref = sim.market("BTCUSDT").reference_price(int(time.time() * 1000))
        assert out["source"] == "rest" and out["enforced"] is True
        assert out["rules"] == [{"symbol": "BTCUSDT", "price_range": {
            "bid_limit_mult_up": "1.0001", "bid_limit_mult_down": "0.9999", "ask_limit_mult_up": "1.0001",
            "ask_limit_mult_down": "0.9999"}}]
        got = out["reference"]
        assert got["calculation"] == "ARITHMETIC_MEAN" and got["bucket_count"] == 10 and not got["never_set"]
        assert abs(Decimal(got["price"]) - Decimal(ref or "0")) <= Decimal("5")  # the 5-min average moves
        r = Decimal(got["price"])
        assert out["execution_range"] == {
            "buy_min": str((r * Decimal("0.9999")).normalize()), "buy_max": str((r * Decimal("1.0001")).normalize()),
            "sell_min": str((r * Decimal("0.9999")).normalize()), "sell_max": str((r * Decimal("1.0001")).normalize())}


async def test_a_symbol_without_a_reference_price_is_not_enforced(rt: Runtime) -> None:
    async with client_for(rt) as c:
        out = await call(c, "get_price_rules", {"symbol": "BNBBTC"})
        assert out["rules"] == [{"symbol": "BNBBTC"}]  # no price_range: no rule
        assert out["reference"] == {"never_set": True}  # no price
        assert out["enforced"] is False and "execution_range" not in out
        assert out["hint"] == "not enforced: the symbol has no PRICE_RANGE rule"


async def test_many_symbols_give_the_rules_only_and_inputs_are_checked(rt: Runtime, sim: BinanceSim) -> None:
    async with client_for(rt) as c:
        out = await call(c, "get_price_rules", {"symbols": ["ETHUSDT", "BNBBTC"]})
        assert [x["symbol"] for x in out["rules"]] == ["ETHUSDT", "BNBBTC"] and "reference" not in out
        every = await call(c, "get_price_rules", {})
        assert {x["symbol"] for x in every["rules"]} == {"BTCUSDT", "ETHUSDT", "BNBBTC"}
        before = len(sim.rest.requests)
        msg = await call_error(c, "get_price_rules", {"symbol": "BTCUSDT", "symbol_status": "TRADING"})
        assert "at most one of symbol, symbols" in msg and len(sim.rest.requests) == before


async def test_block_trades_page_by_id(rt: Runtime, sim: BinanceSim) -> None:
    m = sim.market("ETHUSDT")
    await wait_until(lambda: len(m.blocks) >= 3, timeout=20, what="three block trades")
    first = m.blocks[0]["t"]
    async with client_for(rt) as c:
        out = await call(c, "get_block_trades", {"symbol": "ETHUSDT", "from_id": 0, "limit": 2})
        assert [t["id"] for t in out["trades"]] == [first, first + 1]
        b = m.blocks[0]
        assert out["trades"][0]["price"] == m.px(b["p"]) and out["trades"][0]["qty"] == m.qty(b["q"])
        assert out["next_from_id"] == first + 2
        more = await call(c, "get_block_trades", {"symbol": "ETHUSDT", "from_id": out["next_from_id"], "limit": 1})
        assert [t["id"] for t in more["trades"]] == [first + 2]
        msg = await call_error(c, "get_block_trades", {"symbol": "ETHUSDT"})
        assert "from_id" in msg


async def test_reference_price_and_block_trade_streams_reach_the_tools(rt: Runtime, sim: BinanceSim, settings) -> None:
    d = await StreamDaemon(settings.model_copy(update={
        "streams": ["btcusdt@referencePrice", "btcusdt@blockTrade"]})).start()
    try:
        async with client_for(rt) as c:
            async def latest(stream: str) -> dict | None:
                out = await call(c, "get_stream_latest", {"stream": stream})
                return out if out["data"] else None

            ref = await wait_until(lambda: latest("btcusdt@referencePrice"), timeout=15, what="a reference price")
            assert ref["decoded"] and ref["data"]["event_type"] == "referencePrice"
            assert Decimal(ref["data"]["reference_price"]) > 0 and isinstance(ref["data"]["valid_time"], int)
            block = await wait_until(lambda: latest("btcusdt@blockTrade"), timeout=20, what="a block trade")
            assert block["data"]["trade_id"] == sim.market("BTCUSDT").blocks[-1]["t"] or \
                block["data"]["trade_id"] in {b["t"] for b in sim.market("BTCUSDT").blocks}
            before = requests(sim, "referencePrice")
            out = await call(c, "get_price_rules", {"symbol": "BTCUSDT"})
            assert out["source"] == "ws" and out["stream"] == "btcusdt@referencePrice"
            assert requests(sim, "referencePrice") == before  # the stream answered, no REST weight
    finally:
        await d.stop()
