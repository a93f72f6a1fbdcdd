"""Property-based fuzzing of the stream tools' arguments: no input crashes a tool or builds a bad Redis key.

Every call must come back either as a result with structured content, or as ``is_error`` carrying an
actionable message (``Error executing tool NAME: <why>``), never the bare crash text. Afterwards every key
and lease in the namespace must name a valid stream.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from binance_common.keys import Keys
from tests.support.fake_feed import FakeDaemon, Replica, assert_keyspace_clean, trade

NASTY = [
    "", " ", "*", "?", "[a]", "..", "../..", "\n", "\r\n", "a\r\nFLUSHALL\r\n", "btcusdt@trade*", "btcusdt@trade\n",
    " btcusdt@trade", "btcusdt@trade ", "btcusdt@@trade", "@trade", "btcusdt@", "BTCUSDT", "btc usdt", "btc\tusdt",
    "btcusdt@kline_1m@+99:99", "!ticker@arr", "!miniTicker@arr", "btcusdt@depth7", "é@trade", "\x00", "x" * 300,
    "btcusdt@trade", "ethusdt@kline_1m", "btcusdt@depth10@100ms", "0", "0-0", "1-1:1", "99999999999999999-0",
    "-1", "1e9", "NaN", "null", "{}", "[]",
]
texts = st.one_of(st.sampled_from(NASTY), st.text(max_size=70), st.from_regex(r"[a-z0-9]{1,12}@[a-zA-Z0-9_@+:]{1,20}"))
numbers = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    st.sampled_from([0, 1, 5, 10, 20, 100, 1000, 1001, -1, 0.0001]),
)
anything = st.one_of(texts, numbers, st.none(), st.booleans(), st.lists(texts, max_size=4))
short_wait = st.one_of(st.floats(min_value=0, max_value=0.2), st.sampled_from([-1, -0.001, 31, 10**6, "x"]))


def args_for(tool: str) -> st.SearchStrategy[dict[str, Any]]:
    common = {
        "subscribe_streams": {
            "streams": st.one_of(st.lists(texts, max_size=5), anything),
            "kind": st.one_of(st.sampled_from(["trade", "kline", "depth", "bogus", "allMiniTickers"]), anything),
            "symbols": st.one_of(st.lists(texts, max_size=3), anything),
            "interval": st.one_of(st.sampled_from(["1m", "7m", "1M"]), anything),
            "levels": st.one_of(st.sampled_from([5, 10, 20, 7]), anything),
            "update_speed_ms": st.one_of(st.sampled_from([100, 1000, 250]), anything),
            "window": st.one_of(st.sampled_from(["1h", "4h", "1d", "2h"]), anything),
            "wait_s": short_wait,
        },
        "unsubscribe_streams": {"streams": st.one_of(st.lists(texts, max_size=5), anything)},
        "get_stream_latest": {"stream": st.one_of(texts, anything), "raw": st.one_of(st.booleans(), anything)},
        "get_stream_history": {
            "stream": st.one_of(texts, st.just("btcusdt@trade"), anything),
            "count": st.one_of(numbers, anything),
            "since": st.one_of(texts, anything),
            "wait_s": short_wait,
            "raw": st.booleans(),
        },
        "get_live_order_book": {
            "symbol": st.one_of(texts, st.just("BTCUSDT"), anything),
            "levels": st.one_of(numbers, anything),
            "band_pct": st.one_of(numbers, anything),
        },
        "list_stream_subscriptions": {"mine_only": anything, "limit": st.one_of(numbers, anything)},
    }[tool]
    return st.fixed_dictionaries({}, optional=common)  # type: ignore[call-overload]


TOOLS = [
    "subscribe_streams", "unsubscribe_streams", "get_stream_latest", "get_stream_history", "get_live_order_book",
    "list_stream_subscriptions",
]


@pytest.mark.parametrize("tool", TOOLS)
async def test_fuzzed_arguments_never_crash(tool: str, redis_server, settings_factory, keys: Keys) -> None:
    r = aioredis.Redis.from_url(redis_server.url)
    settings_ = settings_factory(redis_url=redis_server.url, lease_ttl_s=5.0, history_maxlen=20)
    loop = asyncio.get_running_loop()
    failures: list[str] = []
    async with FakeDaemon(r, keys, history_maxlen=20) as daemon, Replica(settings_) as rep, Client(rep.mcp) as c:
        for i in range(3):
            await daemon.emit("btcusdt@trade", trade("BTCUSDT", i))
        await daemon.write_book("BTCUSDT", bids=[["100.0", "1"]], asks=[["100.5", "2"]])

        async def one(args: dict[str, Any]) -> None:
            res = await c.call_tool(tool, args)
            text = res.content[0].text if res.content else ""  # type: ignore[union-attr]
            if res.is_error:
                if not text.startswith(f"Error executing tool {tool}: ") or len(text) < len(tool) + 30:
                    failures.append(f"{args!r} -> {text!r}")
            elif res.structured_content is None:
                failures.append(f"{args!r} -> no structured content")

        @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(args=args_for(tool))
        def run(args: dict[str, Any]) -> None:
            asyncio.run_coroutine_threadsafe(one(args), loop).result(timeout=30)

        await asyncio.to_thread(run)
        assert not failures, failures[:5]

        # Nothing the fuzzer sent became a key: every key and lease names a valid stream or symbol.
        await assert_keyspace_clean(r, keys)
    await r.aclose()
