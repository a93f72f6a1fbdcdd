"""Every tool and prompt, 10,000+ generated arguments (stream names, symbols, numbers, wrong types), against
the simulator and a real redis-server: no call crashes, every refusal says what is allowed, and afterwards no
key, lease or history in Redis names anything outside the grammar."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
import redis.asyncio as aioredis
from mcp import Client
from mcp.shared.exceptions import MCPError

from binance_common.keys import Keys
from tests.support.accounts import make_key, register
from tests.support.fake_feed import FakeDaemon, Replica, assert_keyspace_clean, trade
from tests.support.sim import BinanceSim, SimConfig

pytestmark = pytest.mark.integration

CALLS = 10_500
SEED = 20261201
NAMES = ["btcusdt@trade", "btcusdt@aggTrade", "ethusdt@kline_1m", "btcusdt@depth10@100ms", "!miniTicker@arr",
         "btcusdt\n@trade", "btcusdt@trade\n", "..@trade", "-@trade", "btcusdt@depth５", "btcusdt@depth²",
         "btcusdt@kline_1m@+08:00\n", "BTCUSDT@trade", "btcusdt@", "@trade", "btcusdt@trade*", "a\r\nFLUSHALL",
         "btcusdt@kline_1m@", "btcusdt@depth05", "x" * 300, "", " ", "!ticker@arr", "é@trade", "\x00"]
SYMBOLS = ["BTCUSDT", "btcusdt", "BTC/USDT", "btc-usdt", "BTC_USDT", "ETHUSDT", "NOSUCH", "..", "-", "_", "ＢＴＣ",
           "btcusdtı", "BTC USDT", "", " ", "x" * 40, "BTC\nUSDT", "*", "BTC*", "0", "1e9"]
NUMBERS: list[Any] = [0, 1, -1, 5, 20, 100, 1000, 1001, 2**31, 2**63, 2**64, -(2**64), 10**30, 0.5, -0.5, 1e308,
                      float("inf"), float("-inf"), "10", "abc", "１２３", "1e5", "", None, True, [], {}]
TIMES: list[Any] = [0, 1, 10**12, 1_700_000_000_000, 2**64, 10**16, -1, "2024-01-01", "2024-01-01T12:00:00Z",
                    "9999-12-31", "0001-01-01", "1969-12-31", "yesterday", "１７００", None, 1.5]
OTHER: list[Any] = ["auto", "rest", "stream", "bogus", "1m", "1M", "7m", "1h", "FULL", "MINI", "USDT", "TRADING",
                    "8", "+05:45", "-13:00", "１", None, True, 3, [], {"a": 1}, "x" * 100]
SMALL_WAITS: list[Any] = [0, 0.01, -1, 31, 10**6, "x", None]


def value_for(prop: str, schema: dict[str, Any], rng: random.Random) -> Any:
    p = prop.lower()
    if rng.random() < 0.1:
        return rng.choice(NUMBERS + NAMES + OTHER)  # the wrong kind on purpose
    if "wait" in p:
        return rng.choice(SMALL_WAITS)
    if "stream" in p:
        pick = rng.choice(NAMES)
        return [pick, rng.choice(NAMES)] if schema.get("type") == "array" or rng.random() < 0.2 else pick
    if "symbol" in p:
        pick = rng.choice(SYMBOLS)
        return [pick, rng.choice(SYMBOLS)] if schema.get("type") == "array" or rng.random() < 0.2 else pick
    if "time" in p and "zone" not in p:
        return rng.choice(TIMES)
    if p == "after_id":
        return rng.choice(["0-0", "1-1", "99999999999999999999-0", "1", "-", "+", "0-0\n", None, 5])
    if p == "client_order_id":
        return rng.choice(["sim1001", "x" * 37, "a b", "../", "", "ok-1", 7])
    if p == "assets":
        return rng.choice([["BTC"], ["btc", "USDT"], ["x" * 30], [""], "BTC", ["ＢＴＣ"], None])
    if p in ("limit", "levels", "count", "from_id", "band_pct", "min_quote_volume", "top", "offset") or \
            p.endswith("_id") or \
            schema.get("type") in ("integer", "number"):
        return rng.choice(NUMBERS)
    return rng.choice(OTHER)


def args_for(tool: Any, rng: random.Random) -> dict[str, Any]:
    props: dict[str, Any] = (tool.input_schema or {}).get("properties", {})
    return {k: value_for(k, v, rng) for k, v in props.items() if rng.random() < 0.8}


BAD_TEXT = re.compile(r"invalid literal for int|Traceback|object has no attribute|unhashable|KeyError|IndexError")


async def test_ten_thousand_generated_calls(redis_server, settings_factory, keys: Keys) -> None:
    rng = random.Random(SEED)
    failures: list[str] = []
    r = aioredis.Redis.from_url(redis_server.url)
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT"], rate=0, weight_limit=10**9)) as sim:
        key = make_key("Ed25519")  # the account tools too
        register(sim, key)
        o = sim.account.place("BTCUSDT", "BUY", "20000.00", "0.01")
        sim.account.fill(o["orderId"], "0.005")
        s = settings_factory(redis_url=redis_server.url, rest_base_url=sim.rest_url, ws_base_url=sim.ws_url,
                             lease_ttl_s=5.0, history_maxlen=20, rest_max_weight_per_minute=10**8, toolsets="all",
                             dynamic_toolsets=True, **key.settings())
        async with FakeDaemon(r, keys, history_maxlen=20) as daemon, Replica(s) as rep, Client(rep.mcp) as c:
            await daemon.emit("btcusdt@trade", trade("BTCUSDT", 1))
            tools = (await c.list_tools()).tools
            prompts = (await c.list_prompts()).prompts
            assert len(tools) >= 40 and len(prompts) >= 2
            refusals = 0
            for i in range(CALLS):
                tool = tools[i % len(tools)]
                args = args_for(tool, rng)
                res = await c.call_tool(tool.name, args)
                text = res.content[0].text if res.content else ""  # type: ignore[union-attr]
                if res.is_error:
                    refusals += 1
                    if not text.startswith(f"Error executing tool {tool.name}: ") or BAD_TEXT.search(text) \
                            or len(text) < len(tool.name) + 40:
                        failures.append(f"{tool.name}({args!r}) -> {text[:300]!r}")
                elif res.structured_content is None:
                    failures.append(f"{tool.name}({args!r}) -> no structured content")
            for i in range(300):
                prompt = prompts[i % len(prompts)]
                args = {a.name: str(rng.choice(SYMBOLS + OTHER)) for a in prompt.arguments or []}
                try:
                    await c.get_prompt(prompt.name, args)
                except MCPError as e:
                    if e.code != -32602 or "invalid argument" not in e.error.message or BAD_TEXT.search(e.error.message):
                        failures.append(f"prompt {prompt.name}({args!r}) -> {e.error.code} {e.error.message!r}")
        assert not failures, "\n".join(failures[:10])
        assert 0.2 * CALLS < refusals < CALLS  # the inputs were hostile, and some still went through

        await assert_keyspace_clean(r, keys)
    await r.aclose()
