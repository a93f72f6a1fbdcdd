"""Series answers fit an agent's context: klines, trades and stream history are cut to the byte budget
(answer_budget_bytes), say so (truncated, omitted) and continue exactly where they stopped; compact=true
carries the same values as columns and rows."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from mcp import Client

from binance_common.keys import Keys
from tests.support.market_harness import call, client_for, replica, seed_history
from tests.support.sim import BinanceSim, SimConfig
from tests.support.waiting import wait_until

BUDGET = 20_000


@pytest.fixture
async def sim() -> AsyncIterator[BinanceSim]:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=400.0, seed=3)) as s:
        yield s


@pytest.fixture
def settings(settings_factory, redis_server, sim: BinanceSim):  # type: ignore[no-untyped-def]
    return settings_factory(rest_base_url=sim.rest_url, redis_url=redis_server.url, rest_timeout_s=2.0)


async def text_of(c: Client, name: str, args: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    res = await c.call_tool(name, args)
    assert not res.is_error, res.content[0].text  # type: ignore[union-attr]
    text = res.content[0].text  # type: ignore[union-attr]
    return len(text.encode()), orjson.loads(text)


async def test_klines_are_cut_to_the_budget_and_continue_exactly(settings, sim: BinanceSim) -> None:  # type: ignore[no-untyped-def]
    sim.hub.paused = True  # candles without trades carry the current price: keep it still
    start = 1_767_225_600_000  # 2026-01-01: closed candles, the same on every call
    args = {"symbol": "BTCUSDT", "interval": "1m", "start_time": start, "limit": 1000}
    async with replica(settings.model_copy(update={"answer_budget_bytes": 0})) as unlimited, client_for(unlimited) as c:
        whole = await call(c, "get_klines", args)
    assert whole["count"] == 1000 and whole["truncated"] is False and whole["omitted"] == 0
    async with replica(settings) as rt, client_for(rt) as c:
        pages: list[list[Any]] = []
        cursor = start
        while len(pages) < 1000:
            size, page = await text_of(c, "get_klines", {**args, "start_time": cursor, "limit": 1000 - len(pages)})
            assert size <= BUDGET, size
            assert page["count"] == len(page["rows"]) >= 1
            pages += page["rows"]
            if len(pages) < 1000:
                assert page["truncated"] is True and page["omitted"] == 1000 - len(pages)
                assert page["next_start_time_ms"] == page["rows"][-1][6] + 1
                assert f"start_time={page['next_start_time_ms']}" in page["hint"]
                cursor = page["next_start_time_ms"]
            else:
                assert page["truncated"] is False and page["omitted"] == 0
        assert pages == whole["rows"]  # every candle once, in order, none lost at a cut
        # Without start_time the newest candles are kept, with the way to older ones
        size, newest = await text_of(c, "get_klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1000})
        assert size <= BUDGET and newest["truncated"] is True
        assert newest["omitted"] == 1000 - newest["count"] and "next_start_time_ms" not in newest
        assert f"end_time={newest['rows'][0][0] - 1}" in newest["hint"]
        assert newest["rows"][-1][0] >= int(time.time() * 1000) - 120_000  # the open candle is in


async def test_trades_compact_and_cut(settings, sim: BinanceSim) -> None:  # type: ignore[no-untyped-def]
    await wait_until(lambda: len(sim.market("BTCUSDT").trades) >= 400, timeout=20, what="400 simulated trades")
    sim.hub.paused = True  # the same trades for every call below
    async with replica(settings) as rt, client_for(rt) as c:
        first = sim.market("BTCUSDT").trades[0]["t"]
        objects = await call(c, "get_historical_trades", {"symbol": "BTCUSDT", "from_id": first, "limit": 300})
        compact = await call(c, "get_historical_trades", {"symbol": "BTCUSDT", "from_id": first, "limit": 300,
                                                           "compact": True})
        assert compact["trades"] == [] and compact["columns"][0] == "id"
        n = len(compact["rows"])
        assert n > len(objects["trades"])  # the compact form fits more trades in the same budget
        cols = compact["columns"]
        as_objects = [{k: v for k, v in zip(cols, row, strict=True) if v is not None} for row in compact["rows"]]
        assert as_objects[: len(objects["trades"])] == objects["trades"]
        # a cut page continues exactly at next_from_id
        assert objects["truncated"] is True and objects["next_from_id"] == objects["trades"][-1]["id"] + 1
        nxt = await call(c, "get_historical_trades", {"symbol": "BTCUSDT", "from_id": objects["next_from_id"], "limit": 5})
        assert nxt["trades"][0]["id"] == objects["trades"][-1]["id"] + 1
        assert objects["summary"]["count"] == len(objects["trades"])
        # recent trades keep the newest
        fetched = min(1000, len(sim.market("BTCUSDT").trades))
        recent = await call(c, "get_recent_trades", {"symbol": "BTCUSDT", "limit": 1000, "source": "rest"})
        direct = await call(c, "get_recent_trades", {"symbol": "BTCUSDT", "limit": 5, "source": "rest"})
        assert recent["truncated"] is True and recent["trades"][-1] == direct["trades"][-1]
        assert recent["omitted"] + len(recent["trades"]) == fetched
        assert [x["id"] for x in recent["trades"]] == list(range(recent["trades"][0]["id"], direct["trades"][-1]["id"] + 1))


async def test_stream_history_pages_through_the_budget(settings) -> None:  # type: ignore[no-untyped-def]
    keys = Keys(settings.namespace)
    stream = "btcusdt@trade"
    payloads = [{"e": "trade", "E": 1_700_000_000_000 + i, "s": "BTCUSDT", "t": i, "p": "50000.01", "q": "0.001",
                 "T": 1_700_000_000_000 + i, "m": bool(i % 2), "M": True} for i in range(1, 601)]
    async with replica(settings) as rt, client_for(rt) as c:
        await seed_history(rt.r, keys, stream, payloads)
        ids: list[int] = []
        since = "0"
        while True:
            size, page = await text_of(c, "get_stream_history", {"stream": stream, "since": since, "count": 1000})
            assert size <= BUDGET
            if not page["entries"]:
                break
            ids += [e["data"]["trade_id"] for e in page["entries"]]
            since = page["next_cursor"]
            if not page["truncated"]:
                break
            assert page["omitted"] > 0
        assert ids == list(range(1, 601))  # every entry once, in order, across the cuts
        size, last = await text_of(c, "get_stream_history", {"stream": stream, "count": 1000, "compact": True})
        assert size <= BUDGET and last["truncated"] is True and last["entries"] == []
        cols = last["columns"]
        assert cols[:4] == ["cursor", "received_ms", "source", "gap"]
        assert last["rows"][-1][0] == last["next_cursor"]  # the newest entries are kept
        assert len(last["rows"]) + last["omitted"] == 600
