"""Every market tool through the real MCP client, against the Binance simulator and a real redis-server:
exact answers, validation before any request, sizes and truncation, the shared exchangeInfo cache, and every
error class (unknown symbol with suggestions, bad parameters, geo block, 5xx, timeouts, 429, 418, the
governor holding back)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from mcp import Client

from binance_common.ratelimit import RedisGovernor
from binance_mcp.runtime import Runtime
from tests.support.market_harness import call, call_error, client_for, replica
from tests.support.sim import BinanceSim, SimConfig

pytestmark = pytest.mark.integration

SYMBOLS = [
    "BTCUSDT", "ETHUSDT", "BNBBTC", "ETHBTC", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "BTCFDUSD", "ETHFDUSD",
    "BTCUSDC", "SOLBTC",
]
DOC = (Path(__file__).resolve().parents[2] / "docs" / "tools-market.md").read_text()
MARKET_TOOLS = {
    "ping_binance", "get_server_time", "get_exchange_info", "search_symbols", "get_symbol_info", "get_order_book",
    "get_recent_trades", "get_historical_trades", "get_aggregate_trades", "get_average_price", "get_klines",
    "get_ui_klines", "get_price", "get_all_prices", "get_book_ticker", "get_all_book_tickers", "get_24hr_ticker",
    "get_all_24hr_tickers", "get_trading_day_ticker", "get_all_trading_day_tickers", "get_rolling_window_ticker",
    "get_all_rolling_window_tickers",
}


@pytest.fixture
async def sim() -> AsyncIterator[BinanceSim]:
    async with BinanceSim(SimConfig(symbols=SYMBOLS, rate=50.0, seed=1)) as s:
        yield s


@pytest.fixture
def settings(settings_factory, redis_server, sim: BinanceSim):  # type: ignore[no-untyped-def]
    return settings_factory(rest_base_url=sim.rest_url, redis_url=redis_server.url, rest_timeout_s=2.0)


@pytest.fixture
async def rt(settings) -> AsyncIterator[Runtime]:  # type: ignore[no-untyped-def]
    async with replica(settings) as runtime:
        yield runtime


def requests_to(sim: BinanceSim, path: str | None = None) -> int:
    return sum(1 for p, _ in sim.rest.requests if path is None or p == path)


async def wait_trades(sim: BinanceSim, symbol: str, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(sim.market(symbol).trades) < n:
        assert time.monotonic() < deadline, "the simulator produced no trades"
        await asyncio.sleep(0.05)


async def raw(sim: BinanceSim, path: str, **params: Any) -> Any:
    async with httpx.AsyncClient(base_url=sim.rest_url) as h:
        return orjson.loads((await h.get(f"/api/v3/{path}", params=params)).content)


# --- registration ------------------------------------------------------------------------------------------
async def test_every_market_tool_is_read_only_typed_and_described(rt: Runtime) -> None:
    async with client_for(rt) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    assert MARKET_TOOLS <= set(tools)
    for name in MARKET_TOOLS:
        t = tools[name]
        assert t.annotations is not None and t.annotations.read_only_hint is True, name
        assert t.annotations.destructive_hint is False
        assert t.output_schema and t.output_schema.get("type") == "object", name
        assert t.description and len(t.description) > 60, name
        for pname, p in t.input_schema.get("properties", {}).items():
            assert p.get("description") or "enum" in p or "$ref" in p, (name, pname)
            if pname == "limit":
                assert "maximum" in p and "default" in p, name
    assert tools["get_klines"].input_schema["properties"]["interval"]["enum"][-1] == "1M"
    assert all(f"| `{name}` |" in DOC for name in MARKET_TOOLS), "docs/tools-market.md lists every tool"


# --- general and symbols -----------------------------------------------------------------------------------
async def test_ping_and_server_time_store_the_clock_offset(rt: Runtime, sim: BinanceSim) -> None:
    sim.config.clock_offset_ms = 1500
    async with client_for(rt) as c:
        ping = await call(c, "ping_binance")
        assert ping["ok"] is True and ping["rest_base_url"] == sim.rest_url and ping["latency_ms"] >= 0
        t = await call(c, "get_server_time")
    assert 1300 < t["clock_offset_ms"] < 1700 and t["server_time_iso"].endswith("+00:00")
    assert int(await rt.r.get(rt.keys.rl_clock_offset) or 0) == t["clock_offset_ms"]


async def test_exchange_info_is_a_summary_cached_for_every_replica(settings, sim: BinanceSim, rt: Runtime) -> None:  # type: ignore[no-untyped-def]
    async with client_for(rt) as c:
        out = await call(c, "get_exchange_info", {"limit": 3})
        assert out["source"] == "rest" and out["symbol_count"] == len(SYMBOLS)
        assert out["by_status"] == {"TRADING": len(SYMBOLS)}
        assert out["top_quote_assets"]["USDT"] == 6 and next(iter(out["top_quote_assets"])) == "USDT"
        assert out["rate_limits"][0] == {"rate_limit_type": "REQUEST_WEIGHT", "interval": "MINUTE", "interval_num": 1, "limit": 6000}
        assert out["returned"] == 3 and out["total"] == len(SYMBOLS) and out["truncated"] is True
        assert "raise limit" in out["hint"]
        usdt = await call(c, "get_exchange_info", {"quote_asset": "usdt", "limit": 0})
        assert usdt["total"] == 6 and usdt["symbols"] == [] and usdt["source"] == "cache"
        none = await call(c, "get_exchange_info", {"status": "BREAK"})
        assert none["total"] == 0
        spot = await call(c, "get_exchange_info", {"permission": "spot", "base_asset": "eth", "status": "ANY"})
        assert [x["symbol"] for x in spot["symbols"]] == ["ETHBTC", "ETHFDUSD", "ETHUSDT"]
    assert requests_to(sim, "exchangeInfo") == 1
    ttl = await rt.r.pttl(rt.keys.cache("exchange_info"))
    assert 0 < ttl <= settings.exchange_info_ttl_s * 1000
    # another replica: served from the shared Redis copy, no REST call
    async with replica(settings) as other, client_for(other) as c2:
        info = await call(c2, "get_symbol_info", {"symbol": "ethbtc"})
        assert info["source"] == "cache" and info["symbol"] == "ETHBTC"
        fresh = await call(c2, "get_exchange_info", {"refresh": True, "limit": 0})
        assert fresh["source"] == "rest"
    assert requests_to(sim, "exchangeInfo") == 2


async def test_exchange_info_is_fetched_once_by_concurrent_replicas(settings, sim: BinanceSim) -> None:  # type: ignore[no-untyped-def]
    sim.faults.rest_fault(delay=0.3, path="exchangeInfo")  # a slow answer, so the callers overlap
    async with replica(settings) as a, replica(settings) as b, client_for(a) as ca, client_for(b) as cb:
        outs = await asyncio.gather(
            *(call(c, "get_symbol_info", {"symbol": sym}) for c in (ca, cb) for sym in ("BTCUSDT", "ETHBTC", "SOLBTC"))
        )
    assert {o["symbol"] for o in outs} == {"BTCUSDT", "ETHBTC", "SOLBTC"}
    assert requests_to(sim, "exchangeInfo") == 1  # one replica fetched under the lock, the other waited


async def test_exchange_info_cache_expires_and_survives_a_failed_refresh(settings_factory, redis_server, sim: BinanceSim) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory(rest_base_url=sim.rest_url, redis_url=redis_server.url, exchange_info_ttl_s=0.3)
    async with replica(settings) as rt, client_for(rt) as c:
        assert (await call(c, "get_symbol_info", {"symbol": "BTCUSDT"}))["source"] == "rest"
        await asyncio.sleep(0.4)
        assert (await call(c, "get_symbol_info", {"symbol": "BTCUSDT"}))["source"] == "rest"  # expired: fetched
        await asyncio.sleep(0.4)
        sim.faults.rest_fault(status=503, path="exchangeInfo")
        stale = await call(c, "get_symbol_info", {"symbol": "BTCUSDT"})  # refresh failed: last good copy
        assert stale["age_ms"] >= 400
    assert requests_to(sim, "exchangeInfo") == 3


async def test_search_and_symbol_info(rt: Runtime, sim: BinanceSim) -> None:
    async with client_for(rt) as c:
        s = await call(c, "search_symbols", {"query": "BTC"})
        names = [m["symbol"] for m in s["matches"]]
        assert names[:3] == ["BTCFDUSD", "BTCUSDC", "BTCUSDT"]  # symbol-prefix matches first
        assert set(names) == {"BTCFDUSD", "BTCUSDC", "BTCUSDT", "BNBBTC", "ETHBTC", "SOLBTC"}
        s = await call(c, "search_symbols", {"quote_asset": "BTC", "limit": 2})
        assert s["total"] == 3 and s["returned"] == 2 and s["truncated"] is True and "raise limit" in s["hint"]
        s = await call(c, "search_symbols", {"base_asset": "SOL"})
        assert [m["symbol"] for m in s["matches"]] == ["SOLBTC", "SOLUSDT"]
        s = await call(c, "search_symbols", {"query": "eth/usdt"})
        assert [m["symbol"] for m in s["matches"]] == ["ETHUSDT"]
        s = await call(c, "search_symbols", {"permission": "MARGIN", "status": "ANY"})
        assert s["total"] == 0
        s = await call(c, "search_symbols", {"query": "ZZZ"})
        assert s["total"] == 0 and "status='ANY'" in s["hint"]
        info = await call(c, "get_symbol_info", {"symbol": "btcusdt"})
        assert info == info | {
            "tick_size": "0.01000000", "step_size": "0.00001000", "min_notional": "5.00000000",
            "max_notional": "9000000.00000000", "min_price": "0.01000000", "min_qty": "0.00001000",
            "permissions": ["SPOT"], "status": "TRADING", "base_asset": "BTC", "quote_asset": "USDT",
        }
        assert {f["filterType"] for f in info["other_filters"]} == {"ICEBERG_PARTS", "MAX_NUM_ORDERS"}
        text = await call_error(c, "get_symbol_info", {"symbol": "USDTBTC"})
        assert "unknown symbol 'USDTBTC'" in text and "closest listed symbols: BTCUSDT" in text
        text = await call_error(c, "get_symbol_info", {"symbol": "SOLUSD"})
        assert "SOLUSDT" in text


async def test_unknown_symbol_on_rest_tools_suggests_real_ones(rt: Runtime, sim: BinanceSim) -> None:
    async with client_for(rt) as c:
        for tool in ("get_price", "get_order_book", "get_24hr_ticker", "get_klines", "get_average_price"):
            text = await call_error(c, tool, {"symbol": "ETHUSD", "source": "rest"} if tool != "get_klines" else {"symbol": "ETHUSD"})
            assert "unknown symbol 'ETHUSD'" in text and "ETHUSDT" in text, tool
        text = await call_error(c, "get_all_prices", {"symbols": ["BTCUSDT", "XRPUSD"]})
        assert "XRPUSD" in text and "XRPUSDT" in text


# --- prices, book, trades ---------------------------------------------------------------------------------
async def test_prices_exact(rt: Runtime, sim: BinanceSim) -> None:
    await wait_trades(sim, "BTCUSDT", 1)
    sim.hub.paused = True  # a still market, so REST twice gives the same answer
    try:
        async with client_for(rt) as c:
            p = await call(c, "get_price", {"symbol": "BTCUSDT"})
            assert p["source"] == "rest" and p["price"] == (await raw(sim, "ticker/price", symbol="BTCUSDT"))["price"]
            allp = await call(c, "get_all_prices", {})
            assert allp["total"] == len(SYMBOLS) and [x["symbol"] for x in allp["prices"]] == sorted(SYMBOLS)
            direct = {d["symbol"]: d["price"] for d in await raw(sim, "ticker/price")}
            assert all(direct[x["symbol"]] == x["price"] for x in allp["prices"])
            q = await call(c, "get_all_prices", {"quote_asset": "USDT", "limit": 2})
            assert q["total"] == 6 and [x["symbol"] for x in q["prices"]] == ["ADAUSDT", "BNBUSDT"]
            assert q["truncated"] is True and "raise limit (max 1000)" in q["hint"]
            some = await call(c, "get_all_prices", {"symbols": ["ethusdt", "BTCUSDT", "ETHUSDT"]})
            assert [x["symbol"] for x in some["prices"]] == ["BTCUSDT", "ETHUSDT"]
            bt = await call(c, "get_book_ticker", {"symbol": "ETHUSDT"})
            d = await raw(sim, "ticker/bookTicker", symbol="ETHUSDT")
            assert (bt["bid_price"], bt["bid_qty"], bt["ask_price"], bt["ask_qty"]) == (
                d["bidPrice"], d["bidQty"], d["askPrice"], d["askQty"])
            two = await call(c, "get_all_book_tickers", {"symbols": ["SOLBTC", "ADAUSDT"], "quote_asset": "BTC"})
            assert [x["symbol"] for x in two["tickers"]] == ["SOLBTC"]
            all_bt = await call(c, "get_all_book_tickers", {"sort_by": "spread_bps", "limit": 4})
            bps = [float(x["spread_bps"]) for x in all_bt["tickers"]]
            assert bps == sorted(bps) and all_bt["returned"] == 4 and all_bt["truncated"] is True
            avg = await call(c, "get_average_price", {"symbol": "BNBBTC"})
            assert avg["mins"] == 5 and avg["price"].count(".") == 1
    finally:
        sim.hub.paused = False


async def test_order_book(rt: Runtime, sim: BinanceSim) -> None:
    sim.hub.paused = True
    try:
        async with client_for(rt) as c:
            ob = await call(c, "get_order_book", {"symbol": "BTCUSDT"})
            assert len(ob["bids"]) == 20 and len(ob["asks"]) == 20  # default size
            d = await raw(sim, "depth", symbol="BTCUSDT", limit=20)
            assert [[lv["price"], lv["qty"]] for lv in ob["bids"]] == d["bids"]
            assert [[lv["price"], lv["qty"]] for lv in ob["asks"]] == d["asks"]
            assert ob["last_update_id"] == d["lastUpdateId"]
            bid, ask = float(ob["best_bid"]), float(ob["best_ask"])
            assert bid < ask and ob["spread"] == "0.02000000" and ob["depth_in_band"]["band_pct"] == "1"
            assert ob["depth_in_band"]["complete"] is False  # 1% of 30,000 reaches far past 20 levels of 0.01
            narrow = await call(c, "get_order_book", {"symbol": "BTCUSDT", "band_pct": 0.0001})  # 3 cents
            assert narrow["depth_in_band"]["complete"] is True
            big = await call(c, "get_order_book", {"symbol": "BTCUSDT", "limit": 150})
            assert len(big["bids"]) == 150
    finally:
        sim.hub.paused = False
    weights = [q.get("limit") for p, q in sim.rest.requests if p == "depth"]
    assert weights == ["20", "20", "20", "150"]


async def test_trades(rt: Runtime, sim: BinanceSim) -> None:
    await wait_trades(sim, "BTCUSDT", 12)
    async with client_for(rt) as c:
        tr = await call(c, "get_recent_trades", {"symbol": "BTCUSDT", "limit": 10})
        ids = [t["id"] for t in tr["trades"]]
        assert len(ids) == 10 and ids == list(range(ids[0], ids[0] + 10))
        assert tr["summary"]["count"] == 10 and "get_historical_trades" in tr["hint"]
        first = ids[0]
        h = await call(c, "get_historical_trades", {"symbol": "BTCUSDT", "from_id": first, "limit": 5})
        assert [t["id"] for t in h["trades"]] == list(range(first, first + 5)) and h["next_from_id"] == first + 5
        direct = await raw(sim, "historicalTrades", symbol="BTCUSDT", fromId=first, limit=5)
        assert [(t["price"], t["qty"], t["quote_qty"]) for t in h["trades"]] == [
            (d["price"], d["qty"], d["quoteQty"]) for d in direct]
        agg = await call(c, "get_aggregate_trades", {"symbol": "BTCUSDT", "limit": 3})
        assert len(agg["trades"]) == 3 and agg["next_from_id"] == agg["trades"][-1]["agg_id"] + 1
        a0 = agg["trades"][0]
        by_id = await call(c, "get_aggregate_trades", {"symbol": "BTCUSDT", "from_id": a0["agg_id"], "limit": 2})
        assert by_id["trades"][0] == a0 and by_id["hint"].startswith("more may follow")
        by_time = await call(c, "get_aggregate_trades", {
            "symbol": "BTCUSDT", "start_time": a0["time_ms"], "end_time": a0["time_ms"] + 60_000, "limit": 1})
        assert by_time["trades"][0]["time_ms"] >= a0["time_ms"]
        # Binance's own parameter errors come back clearly (the simulator enforces the 1 h window)
        text = await call_error(c, "get_aggregate_trades", {
            "symbol": "BTCUSDT", "start_time": "2024-01-01T00:00:00Z", "end_time": "2024-01-01T02:00:00Z"})
        assert "Bad parameter (Binance -1127)" in text


async def test_klines(rt: Runtime, sim: BinanceSim) -> None:
    sim.hub.paused = True  # the open candle must not change between the tool call and the direct one
    async with client_for(rt) as c:
        k = await call(c, "get_klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 5})
        assert k["count"] == 5 and len(k["columns"]) == 11 and all(len(r) == 11 for r in k["rows"])
        assert k["rows"][1][0] - k["rows"][0][0] == 60_000 and "end_time=" in k["hint"]
        start = k["rows"][0][0]
        page = await call(c, "get_klines", {"symbol": "BTCUSDT", "interval": "1m", "start_time": start, "limit": 5})
        assert page["rows"][0][0] == start and page["next_start_time_ms"] == page["rows"][-1][6] + 1
        assert "start_time=" in page["hint"]
        direct = await raw(sim, "klines", symbol="BTCUSDT", interval="1m", startTime=start, limit=5)
        assert page["rows"] == [row[:11] for row in direct]
        iso = await call(c, "get_klines", {"symbol": "BTCUSDT", "interval": "1d", "start_time": "2026-01-01",
                                           "end_time": "2026-01-03T00:00:00Z"})
        assert [r[0] for r in iso["rows"]] == [1767225600000, 1767312000000, 1767398400000]
        assert iso["summary"]["change"] and "hint" not in iso
        ui = await call(c, "get_ui_klines", {"symbol": "ETHBTC", "interval": "1d", "time_zone": "8", "limit": 2})
        assert ui["ui"] is True and ui["time_zone"] == "8" and (ui["rows"][0][0] + 8 * 3_600_000) % 86_400_000 == 0
    tz = [q.get("timeZone") for p, q in sim.rest.requests if p == "uiKlines"]
    assert tz == ["8"]


# --- tickers -----------------------------------------------------------------------------------------------
async def test_tickers(rt: Runtime, sim: BinanceSim) -> None:
    await wait_trades(sim, "BTCUSDT", 3)
    async with client_for(rt) as c:
        t = await call(c, "get_24hr_ticker", {"symbol": "BTCUSDT"})
        assert t["window"] == "24h" and t["ticker"]["bid_price"] and t["ticker"]["prev_close_price"]
        mini = await call(c, "get_24hr_ticker", {"symbol": "BTCUSDT", "type": "MINI"})
        assert "bid_price" not in mini["ticker"] and "price_change" not in mini["ticker"]
        ranked = await call(c, "get_all_24hr_tickers", {"limit": 3})
        vols = [float(x["quote_volume"]) for x in ranked["tickers"]]
        assert vols == sorted(vols, reverse=True) and ranked["total"] == len(SYMBOLS) and ranked["truncated"]
        assert ranked["sort_by"] == "quote_volume" and ranked["order"] == "desc"
        losers = await call(c, "get_all_24hr_tickers", {"quote_asset": "USDT", "sort_by": "price_change_percent",
                                                        "order": "asc", "type": "FULL", "limit": 10})
        assert losers["total"] == 6 and all(x["symbol"].endswith("USDT") for x in losers["tickers"])
        pcts = [float(x["price_change_percent"]) for x in losers["tickers"]]
        assert pcts == sorted(pcts)
        floor = await call(c, "get_all_24hr_tickers", {"min_quote_volume": 1e12})
        assert floor["total"] == 0 and floor["tickers"] == []
        listed = await call(c, "get_all_24hr_tickers", {"symbols": ["BTCUSDT", "ETHBTC"], "sort_by": "symbol", "order": "asc"})
        assert [x["symbol"] for x in listed["tickers"]] == ["BTCUSDT", "ETHBTC"]

        td = await call(c, "get_trading_day_ticker", {"symbol": "BNBBTC", "time_zone": "-5"})
        assert td["window"] == "trading_day" and td["ticker"]["symbol"] == "BNBBTC"
        tds = await call(c, "get_all_trading_day_tickers", {"quote_asset": "BTC", "sort_by": "symbol", "order": "asc"})
        assert [x["symbol"] for x in tds["tickers"]] == ["BNBBTC", "ETHBTC", "SOLBTC"]
        one = await call(c, "get_all_trading_day_tickers", {"symbols": ["SOLBTC"]})
        assert [x["symbol"] for x in one["tickers"]] == ["SOLBTC"]

        rw = await call(c, "get_rolling_window_ticker", {"symbol": "ETHUSDT", "window_size": "15m"})
        assert rw["window"] == "15m" and rw["source"] == "rest"
        rws = await call(c, "get_all_rolling_window_tickers", {"quote_asset": "FDUSD", "window_size": "7d", "limit": 1})
        assert rws["total"] == 2 and rws["returned"] == 1 and rws["truncated"] is True
    sent = [(p, q) for p, q in sim.rest.requests if p in ("ticker/tradingDay", "ticker")]
    assert sent[0][1]["timeZone"] == "-5" and sent[1][1]["symbols"] == '["BNBBTC","ETHBTC","SOLBTC"]'
    assert sent[2][1] == {"symbol": "SOLBTC", "type": "MINI"}
    assert sent[-1][1]["windowSize"] == "7d"


# --- validation and size limits ----------------------------------------------------------------------------
BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("get_order_book", {"symbol": "BTCUSDT", "limit": 0}, "greater than or equal to 1"),
    ("get_order_book", {"symbol": "BTCUSDT", "limit": 1001}, "less than or equal to 1000"),
    ("get_order_book", {"symbol": "BTCUSDT", "band_pct": 0}, "greater than 0"),
    ("get_order_book", {"symbol": "BTCUSDT", "source": "ws"}, "'auto', 'rest' or 'stream'"),
    ("get_order_book", {"symbol": "BTC USDT"}, "without separators"),
    ("get_recent_trades", {"symbol": "BTCUSDT", "limit": 1001}, "less than or equal to 1000"),
    ("get_recent_trades", {"symbol": "B" * 21}, "at most 20 characters"),
    ("get_historical_trades", {"symbol": "BTCUSDT", "from_id": -1}, "greater than or equal to 0"),
    ("get_aggregate_trades", {"symbol": "BTCUSDT", "from_id": 1, "start_time": 1700000000000}, "not both"),
    ("get_aggregate_trades", {"symbol": "BTCUSDT", "start_time": 1700000000001, "end_time": 1700000000000}, "after end_time"),
    ("get_aggregate_trades", {"symbol": "BTCUSDT", "start_time": 1700000000}, "looks like seconds"),
    ("get_klines", {"symbol": "BTCUSDT", "interval": "1H"}, "'1s', '1m', '3m'"),
    ("get_klines", {"symbol": "BTCUSDT", "limit": 1001}, "less than or equal to 1000"),
    ("get_klines", {"symbol": "BTCUSDT", "time_zone": "15"}, "-12:00 to +14:00"),
    ("get_klines", {"symbol": "BTCUSDT", "start_time": "yesterday"}, "ISO-8601"),
    ("get_ui_klines", {"symbol": "BTCUSDT", "interval": "2d"}, "'1d', '3d', '1w' or '1M'"),
    ("get_24hr_ticker", {"symbol": "BTCUSDT", "type": "FULLX"}, "'FULL' or 'MINI'"),
    ("get_all_24hr_tickers", {"sort_by": "hype"}, "'quote_volume'"),
    ("get_all_24hr_tickers", {"order": "up"}, "'desc' or 'asc'"),
    ("get_all_24hr_tickers", {"limit": 201}, "less than or equal to 200"),
    ("get_all_24hr_tickers", {"min_quote_volume": -1}, "greater than or equal to 0"),
    ("get_all_24hr_tickers", {"symbols": [f"S{i}USDT" for i in range(101)]}, "at most 100 items"),
    ("get_all_24hr_tickers", {"quote_asset": "US-DT"}, "asset code"),
    ("get_trading_day_ticker", {"symbol": "BTCUSDT", "time_zone": "UTC"}, "time_zone"),
    ("get_all_trading_day_tickers", {}, "needs explicit symbols"),
    ("get_all_trading_day_tickers", {"quote_asset": "XYZ"}, "no TRADING symbol is quoted in XYZ"),
    ("get_rolling_window_ticker", {"symbol": "BTCUSDT", "window_size": "1d2h"}, "1m-59m, 1h-23h or 1d-7d"),
    ("get_rolling_window_ticker", {"symbol": "BTCUSDT", "window_size": "60m"}, "window_size"),
    ("get_all_rolling_window_tickers", {"symbols": ["BTCUSDT"], "window_size": "8d"}, "window_size"),
    ("get_all_prices", {"limit": 0}, "greater than or equal to 1"),
    ("get_all_book_tickers", {"sort_by": "volume"}, "'symbol' or 'spread_bps'"),
    ("get_book_ticker", {"symbol": ""}, "at least 1 character"),
    ("get_price", {"symbol": "BTC/USDT!"}, "without separators"),
    ("get_average_price", {"symbol": "BTCUSDT", "source": "cache"}, "'auto', 'rest' or 'stream'"),
    ("search_symbols", {}, "at least one of"),
    ("search_symbols", {"query": "BTC", "limit": 0}, "greater than or equal to 1"),
    ("get_exchange_info", {"limit": 501}, "less than or equal to 500"),
    ("get_exchange_info", {"status": "OPEN"}, "'TRADING'"),
    ("get_symbol_info", {"symbol": "BTCUSDT" * 3}, "at most 20 characters"),
    ("get_exchange_info", {"base_asset": "B@D"}, "asset code"),
    ("get_exchange_info", {"permission": "P" * 33}, "at most 32 characters"),
    ("get_exchange_info", {"refresh": "maybe"}, "valid boolean"),
    ("search_symbols", {"query": "Q" * 31}, "at most 30 characters"),
    ("search_symbols", {"base_asset": "BT C"}, "asset code"),
    ("search_symbols", {"quote_asset": "U$DT"}, "asset code"),
    ("search_symbols", {"query": "BTC", "status": "LIVE"}, "'TRADING'"),
    ("search_symbols", {"permission": "P" * 33}, "at most 32 characters"),
    ("get_order_book", {"symbol": "BTCUSDT", "band_pct": 51}, "less than or equal to 50"),
    ("get_recent_trades", {"symbol": "BTCUSDT", "limit": 0}, "greater than or equal to 1"),
    ("get_recent_trades", {"symbol": "BTCUSDT", "source": "x"}, "'auto', 'rest' or 'stream'"),
    ("get_historical_trades", {"symbol": "BTCUSDT", "limit": 1001}, "less than or equal to 1000"),
    ("get_historical_trades", {"symbol": "BTC#USDT"}, "without separators"),
    ("get_aggregate_trades", {"symbol": "BTCUSDT", "limit": 0}, "greater than or equal to 1"),
    ("get_aggregate_trades", {"symbol": "BTCUSDT", "end_time": "nope"}, "ISO-8601"),
    ("get_aggregate_trades", {"symbol": "BTCUSDT", "source": "ws"}, "'auto', 'rest' or 'stream'"),
    ("get_klines", {"symbol": "BTCUSDT", "end_time": "2024-13-01"}, "ISO-8601"),
    ("get_klines", {"symbol": "BTCUSDT", "time_zone": "+05:60"}, "minutes must be below 60"),
    ("get_klines", {"symbol": "BTCUSDT", "start_time": "2024-01-02", "end_time": "2024-01-01"}, "after end_time"),
    ("get_ui_klines", {"symbol": "BTCUSDT", "limit": 0}, "greater than or equal to 1"),
    ("get_ui_klines", {"symbol": "BTCUSDT", "time_zone": "Europe/Paris"}, "time_zone"),
    ("get_price", {"symbol": "BTCUSDT", "source": "cache"}, "'auto', 'rest' or 'stream'"),
    ("get_all_prices", {"symbols": [f"S{i}USDT" for i in range(101)]}, "at most 100 items"),
    ("get_all_prices", {"quote_asset": "usd t"}, "asset code"),
    ("get_all_prices", {"symbols": ["BTC USDT"]}, "without separators"),
    ("get_book_ticker", {"symbol": "BTCUSDT", "source": "ws"}, "'auto', 'rest' or 'stream'"),
    ("get_all_book_tickers", {"limit": 501}, "less than or equal to 500"),
    ("get_all_book_tickers", {"quote_asset": "-"}, "asset code"),
    ("get_all_book_tickers", {"symbols": ["x" * 21]}, "at most 20 characters"),
    ("get_24hr_ticker", {"symbol": "BTCUSDT", "source": "x"}, "'auto', 'rest' or 'stream'"),
    ("get_trading_day_ticker", {"symbol": "BTCUSDT", "type": "mini"}, "'FULL' or 'MINI'"),
    ("get_all_trading_day_tickers", {"symbols": ["BTCUSDT"], "time_zone": "+15"}, "-12:00 to +14:00"),
    ("get_all_trading_day_tickers", {"symbols": ["BTCUSDT"], "sort_by": "x"}, "'quote_volume'"),
    ("get_all_trading_day_tickers", {"symbols": ["BTCUSDT"], "order": "x"}, "'desc' or 'asc'"),
    ("get_all_trading_day_tickers", {"symbols": ["BTCUSDT"], "limit": 201}, "less than or equal to 200"),
    ("get_all_trading_day_tickers", {"symbols": ["BTCUSDT"], "type": "x"}, "'FULL' or 'MINI'"),
    ("get_all_trading_day_tickers", {"symbols": [f"S{i}BTC" for i in range(101)]}, "at most 100 items"),
    ("get_rolling_window_ticker", {"symbol": "BTCUSDT", "type": "x"}, "'FULL' or 'MINI'"),
    ("get_rolling_window_ticker", {"symbol": "BTCUSDT", "source": "x"}, "'auto', 'rest' or 'stream'"),
    ("get_all_rolling_window_tickers", {}, "needs explicit symbols"),
    ("get_all_rolling_window_tickers", {"symbols": ["BTCUSDT"], "sort_by": "x"}, "'quote_volume'"),
    ("get_all_rolling_window_tickers", {"symbols": ["BTCUSDT"], "order": "x"}, "'desc' or 'asc'"),
    ("get_all_rolling_window_tickers", {"symbols": ["BTCUSDT"], "limit": 0}, "greater than or equal to 1"),
    ("get_all_rolling_window_tickers", {"symbols": ["BTCUSDT"], "type": "x"}, "'FULL' or 'MINI'"),
]


async def test_invalid_input_is_refused_before_any_request(rt: Runtime, sim: BinanceSim) -> None:
    async with client_for(rt) as c:
        await call(c, "get_exchange_info", {"limit": 0})  # symbol-directory lookups may use exchangeInfo
        before = requests_to(sim)
        for tool, args, expect in BAD_INPUTS:
            text = await call_error(c, tool, args)
            assert expect in text, (tool, args, text)
    assert requests_to(sim) == before  # nothing reached Binance


async def test_default_answers_are_small(rt: Runtime, sim: BinanceSim) -> None:
    """No answer floods an agent's context by default (compact JSON text, bounded lists)."""
    await wait_trades(sim, "BTCUSDT", 50)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("get_exchange_info", {}), ("search_symbols", {"query": "B"}), ("get_symbol_info", {"symbol": "BTCUSDT"}),
        ("get_order_book", {"symbol": "BTCUSDT"}), ("get_recent_trades", {"symbol": "BTCUSDT"}),
        ("get_historical_trades", {"symbol": "BTCUSDT"}), ("get_aggregate_trades", {"symbol": "BTCUSDT"}),
        ("get_klines", {"symbol": "BTCUSDT"}), ("get_ui_klines", {"symbol": "BTCUSDT"}),
        ("get_all_prices", {}), ("get_all_book_tickers", {}), ("get_all_24hr_tickers", {}),
        ("get_all_trading_day_tickers", {"quote_asset": "USDT"}),
        ("get_all_rolling_window_tickers", {"quote_asset": "USDT"}),
    ]
    async with client_for(rt) as c:
        for tool, args in calls:
            res = await c.call_tool(tool, args)
            assert not res.is_error, res.content
            text = res.content[0].text  # type: ignore[union-attr]
            assert len(text) < 25_000, (tool, len(text))
            assert "\n" not in text  # compact JSON


# --- errors from Binance -----------------------------------------------------------------------------------
async def test_geo_block_5xx_and_timeout(rt: Runtime, sim: BinanceSim) -> None:
    async with client_for(rt) as c:
        sim.faults.rest_fault(status=451)
        text = await call_error(c, "get_price", {"symbol": "BTCUSDT"})
        assert "HTTP 451" in text and "BINANCE_MCP_REST_BASE_URL" in text and "BINANCE_MCP_PROXY" in text
        sim.faults.rest_fault(status=503)
        text = await call_error(c, "get_order_book", {"symbol": "BTCUSDT"})
        assert "HTTP 503" in text and "outcome is unknown" in text
        assert (await call(c, "get_price", {"symbol": "BTCUSDT"}))["source"] == "rest"  # recovers


async def test_timeouts_are_bounded(settings, sim: BinanceSim) -> None:  # type: ignore[no-untyped-def]
    async with replica(settings.model_copy(update={"rest_timeout_s": 0.5})) as rt, client_for(rt) as c:
        sim.faults.rest_fault(delay=1.0)
        t0 = time.monotonic()
        text = await call_error(c, "get_klines", {"symbol": "BTCUSDT"})
        assert time.monotonic() - t0 < 0.9
        assert "did not answer /api/v3/klines within 0.5 s" in text and "outcome is unknown" in text
        await asyncio.sleep(0.6)  # let the simulator finish the delayed answer before shutting down


async def test_429_holds_back_every_call_until_retry_after(rt: Runtime, sim: BinanceSim) -> None:
    async with client_for(rt) as c:
        sim.faults.rest_fault(status=429, retry_after=1)
        text = await call_error(c, "get_price", {"symbol": "BTCUSDT"})
        assert "HTTP 429" in text and "can run again in 1 s" in text
        n = requests_to(sim)
        text = await call_error(c, "get_book_ticker", {"symbol": "ETHUSDT"})
        assert "was not sent" in text and "can run again in" in text
        assert requests_to(sim) == n  # held back locally: never walked into a 418
        await asyncio.sleep(1.1)
        assert (await call(c, "get_book_ticker", {"symbol": "ETHUSDT"}))["source"] == "rest"
    assert sim.stats["bans"] == 0


async def test_418_stops_every_replica(settings, rt: Runtime, sim: BinanceSim) -> None:  # type: ignore[no-untyped-def]
    async with client_for(rt) as c:
        sim.faults.rest_fault(status=418, retry_after=30)
        text = await call_error(c, "get_price", {"symbol": "BTCUSDT"})
        assert "banned this IP" in text and "can run again in 30 s" in text
    n = requests_to(sim)
    async with replica(settings) as other, client_for(other) as c2:
        text = await call_error(c2, "get_klines", {"symbol": "BTCUSDT"})
        assert "banned this IP (HTTP 418) for another" in text
        ban = int(await other.r.get(other.keys.rl_ban_until) or 0)
        assert ban > time.time() * 1000 + 25_000
    assert requests_to(sim) == n


async def test_governor_holds_back_before_the_limit(settings, sim: BinanceSim) -> None:  # type: ignore[no-untyped-def]
    s = settings.model_copy(update={"rest_max_weight_per_minute": 100, "rest_weight_headroom": 0.5})
    base = (int(time.time()) // 60) * 60 + 20  # a fixed clock mid-minute: no boundary during the test
    async with replica(s) as rt:
        assert isinstance(rt.governor, RedisGovernor)
        rt.governor.clock = lambda: base + (time.monotonic() % 1)
        rt.governor.max_wait_s = 0
        async with client_for(rt) as c:
            await call(c, "get_recent_trades", {"symbol": "BTCUSDT", "limit": 5})  # 25
            await call(c, "get_recent_trades", {"symbol": "BTCUSDT", "limit": 5})  # 50 = budget
            n = requests_to(sim)
            text = await call_error(c, "get_recent_trades", {"symbol": "BTCUSDT", "limit": 5})
            assert "held back to avoid a 429" in text and "50/50" in text and "can run again in" in text
            assert requests_to(sim) == n
            # stream answers still work: they cost no REST weight
            await rt.r.set(rt.keys.latest("btcusdt@bookTicker"), orjson.dumps({"r": int(time.time() * 1000), "d": {
                "u": 1, "s": "BTCUSDT", "b": "1.0", "B": "1", "a": "1.1", "A": "1"}}))
            assert (await call(c, "get_book_ticker", {"symbol": "BTCUSDT"}))["source"] == "ws"
    assert sim.stats["rate_limited"] == 0


async def test_replica_over_streamable_http(settings, sim: BinanceSim) -> None:  # type: ignore[no-untyped-def]
    """The same tools through the HTTP app and a real Streamable HTTP client."""
    import uvicorn

    from binance_mcp.http.app import bind_socket, create_app

    app = create_app(settings)
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", ws="none"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with Client(f"http://127.0.0.1:{port}/mcp") as c:
            out = await call(c, "get_symbol_info", {"symbol": "BNBBTC"})
            assert out["tick_size"] == "0.01000000"
            assert (await call(c, "get_price", {"symbol": "BNBBTC"}))["source"] == "rest"
    finally:
        server.should_exit = True
        await task


async def test_embedded_mode_on_fakeredis_without_lua(settings_factory, sim: BinanceSim) -> None:  # type: ignore[no-untyped-def]
    """No Redis URL: the same tools over in-memory fakeredis (no Lua), governor and cache included."""
    import fakeredis

    settings = settings_factory(rest_base_url=sim.rest_url, rest_max_weight_per_minute=100, rest_weight_headroom=0.5)
    rt = Runtime(settings, transport="memory", redis=fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()))
    await rt.start()
    assert isinstance(rt.governor, RedisGovernor)
    base = (int(time.time()) // 60) * 60 + 20  # a fixed clock mid-minute: no boundary during the test
    rt.governor.clock = lambda: base + (time.monotonic() % 1)
    rt.governor.max_wait_s = 0
    try:
        async with client_for(rt) as c:
            assert (await call(c, "get_symbol_info", {"symbol": "BTCUSDT"}))["source"] == "rest"  # weight 20
            assert (await call(c, "get_symbol_info", {"symbol": "BTCUSDT"}))["source"] == "cache"
            await call(c, "get_recent_trades", {"symbol": "BTCUSDT", "limit": 1})  # 25: total 45 of 50
            await call(c, "get_trading_day_ticker", {"symbol": "BTCUSDT"})  # 4: total 49
            text = await call_error(c, "get_price", {"symbol": "BTCUSDT", "source": "rest"})  # 2 more: over
            assert "held back to avoid a 429" in text and "49/50" in text
        assert rt.governor.lua is False
    finally:
        await rt.stop()


async def test_symbols_as_people_type_them(rt: Runtime, sim: BinanceSim) -> None:
    """BTC/USDT, btc-usdt, BTC_USDT and btcusdt all mean BTCUSDT when exchangeInfo lists it."""
    sim.faults.pause()
    async with client_for(rt) as c:
        prices = {await _price(c, s) for s in ("BTC/USDT", "btc-usdt", "BTC_USDT", "btcusdt")}
        assert len(prices) == 1
        assert {q.get("symbol") for p, q in sim.rest.requests if p == "ticker/price"} == {"BTCUSDT"}
        text = await call_error(c, "get_price", {"symbol": "NOSUCH-PAIR"})
        assert "NOSUCH-PAIR" in text or "NOSUCHPAIR" in text


async def _price(c: Client, symbol: str) -> str:
    out = await call(c, "get_price", {"symbol": symbol, "source": "rest"})
    assert out["symbol"] == "BTCUSDT"
    return str(out["price"])
