"""Account tools through the real MCP client, signed with each key type, answered by the simulator, which
checks signatures, timestamps and permissions as Binance does."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from binance_common.signing import account_id
from binance_mcp import tools
from tests.support.accounts import KEY_TYPES, make_key, register
from tests.support.market_harness import call, call_error, client_for, replica
from tests.support.sim.server import BinanceSim, SimConfig

pytestmark = pytest.mark.integration


@pytest.fixture
async def sim() -> AsyncIterator[BinanceSim]:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT", "BNBBTC"], rate=5)) as s:
        yield s


def _activity(sim: BinanceSim) -> dict[str, Any]:
    acct = sim.account
    a = acct.place("BTCUSDT", "BUY", "20000.00", "0.01000000")
    b = acct.place("BTCUSDT", "SELL", "90000.00", "0.50000000")
    c = acct.place("ETHUSDT", "BUY", "1000.00", "1.00000000")
    acct.fill(a["orderId"], "0.004")
    acct.fill(a["orderId"])
    acct.cancel(c["orderId"])
    return {"filled": a, "open": b, "canceled": c}


async def _every_tool(c: Any, sim: BinanceSim, orders: dict[str, Any]) -> dict[str, Any]:
    out = {}
    out["account"] = await call(c, "get_account")
    out["balances"] = await call(c, "get_balances", {"source": "rest"})
    out["fees_one"] = await call(c, "get_trading_fees", {"symbol": "BTCUSDT"})
    out["fees_all"] = await call(c, "get_trading_fees")
    out["limits"] = await call(c, "get_order_rate_limits")
    out["open"] = await call(c, "get_open_orders")
    out["order"] = await call(c, "get_order", {"symbol": "BTCUSDT", "order_id": orders["filled"]["orderId"]})
    out["orders"] = await call(c, "get_orders", {"symbol": "BTCUSDT"})
    out["fills"] = await call(c, "get_my_trades", {"symbol": "BTCUSDT"})
    out["prevented"] = await call(c, "get_prevented_matches", {"symbol": "BTCUSDT", "order_id": 1})
    out["events"] = await call(c, "get_account_events")
    return out


@pytest.mark.parametrize("key_type", KEY_TYPES)
async def test_every_account_tool_answers_with_each_key_type(sim, settings_factory, redis_server, key_type, caplog):
    caplog.set_level(logging.DEBUG)
    key = make_key(key_type, passphrase="correct horse" if key_type == "RSA" else None)
    register(sim, key)
    orders = _activity(sim)
    s = settings_factory(redis_url=redis_server.url, rest_base_url=sim.rest_url, toolsets="all", **key.settings())
    async with replica(s) as rt, client_for(rt) as c:
        listed = {t.name for t in (await c.list_tools()).tools}
        assert {spec.name for spec in tools.ACCOUNT} <= listed
        out = await _every_tool(c, sim, orders)
        text = repr(out) + caplog.text + repr(await _redis_dump(rt))
    acct = out["account"]
    assert acct["can_trade"] is True and acct["permissions"] == ["SPOT"]
    assert acct["commission_rates"]["maker"] == "0.00100000"
    want = {r["asset"]: (r["free"], r["locked"]) for r in sim.account.balance_rows(omit_zero=True)}
    assert {b["asset"]: (b["free"], b["locked"]) for b in acct["balances"]} == want
    assert {b["asset"]: (b["free"], b["locked"]) for b in out["balances"]["balances"]} == want
    assert out["balances"]["freshness"]["source"] == "rest"
    assert out["fees_one"]["fees"][0]["bnb_discount"]["discount"] == "0.75000000"
    assert {f["symbol"] for f in out["fees_all"]["fees"]} == {"BTCUSDT", "ETHUSDT", "BNBBTC"}
    assert [lim["interval"] for lim in out["limits"]["limits"]] == ["SECOND", "DAY"]
    assert [o["order_id"] for o in out["open"]["orders"]] == [orders["open"]["orderId"]]
    assert out["order"]["order"]["status"] == "FILLED"
    assert out["order"]["order"]["executed_qty"] == "0.01000000"
    assert out["order"]["order"]["cumulative_quote_qty"] == "200.00000000"
    assert [o["status"] for o in out["orders"]["orders"]] == ["FILLED", "NEW"]
    assert [(f["qty"], f["price"]) for f in out["fills"]["fills"]] == [("0.00400000", "20000.00000000"),
                                                                       ("0.00600000", "20000.00000000")]
    assert out["prevented"]["matches"] == []
    assert out["events"]["events"] == [] and out["events"]["stream_state"] is None
    for secret in key.secret_material():
        assert secret not in text


async def _redis_dump(rt: Any) -> list[Any]:
    out = []
    async for k in rt.r.scan_iter(count=1000):
        t = (await rt.r.type(k)).decode()
        if t == "string":
            out.append((k, await rt.r.get(k)))
        elif t == "hash":
            out.append((k, await rt.r.hgetall(k)))
        elif t == "stream":
            out.append((k, await rt.r.xrange(k)))
        elif t == "zset":
            out.append((k, await rt.r.zrange(k, 0, -1)))
        elif t == "set":
            out.append((k, await rt.r.smembers(k)))
    return out


@pytest.mark.parametrize("key_type", KEY_TYPES)
async def test_a_wrong_secret_names_the_key_type(sim, settings_factory, redis_server, key_type):
    right, wrong = make_key(key_type), make_key(key_type)
    register(sim, right)
    s = settings_factory(redis_url=redis_server.url, rest_base_url=sim.rest_url,
                         **(wrong.settings() | {"api_key": right.api_key}))
    async with replica(s) as rt, client_for(rt) as c:
        err = await call_error(c, "get_account")
    assert "-1022" in err and f"an {key_type} key" in err, err


async def test_a_skewed_clock_is_measured_again_once_then_the_call_succeeds(sim, settings_factory, redis_server):
    key = make_key("Ed25519")
    register(sim, key)
    s = settings_factory(redis_url=redis_server.url, rest_base_url=sim.rest_url, **key.settings())
    async with replica(s) as rt, client_for(rt) as c:
        sim.config.clock_offset_ms = -30_000  # Binance's clock is 30 s behind: our timestamps are "ahead"
        assert rt.signed is not None
        before = len(sim.account_rest.requests)
        await call(c, "get_account")
        assert rt.signed.resyncs == 1
        assert abs(rt.api.clock_offset_ms + 30_000) < 2_000
        assert len(sim.account_rest.requests) == before + 1  # the refused attempt never reached the handler
        assert int(await rt.r.get(rt.keys.rl_clock_offset)) == rt.api.clock_offset_ms  # shared with every process
        await call(c, "get_account")
        assert rt.signed.resyncs == 1  # the stored offset holds


async def test_key_refusals_say_what_to_fix(sim, settings_factory, redis_server):
    key = make_key("HMAC")
    register(sim, key, permissions={"USER_STREAM"})  # no Reading permission
    s = settings_factory(redis_url=redis_server.url, rest_base_url=sim.rest_url, **key.settings())
    async with replica(s) as rt, client_for(rt) as c:
        err = await call_error(c, "get_open_orders")
        assert "-2015" in err and "USER_DATA permission" in err and "IP" in err
        sim.account.keys[key.api_key].permissions.add("USER_DATA")
        sim.account.keys[key.api_key].allowed_ips = {"10.9.9.9"}
        err = await call_error(c, "get_open_orders")
        assert "-2015" in err and "allowed list" in err
        del sim.account.keys[key.api_key]
        err = await call_error(c, "get_account")
        assert "-2015" in err


async def test_without_a_key_no_account_tool_is_listed(sim, settings_factory, redis_server):
    s = settings_factory(redis_url=redis_server.url, rest_base_url=sim.rest_url)
    async with replica(s) as rt, client_for(rt) as c:
        listed = {t.name for t in (await c.list_tools()).tools}
    assert not listed & {spec.name for spec in tools.ACCOUNT}
    assert len(listed) == len(tools.ALL)


async def test_bad_input_is_refused_before_any_request(sim, settings_factory, redis_server):
    key = make_key("HMAC")
    register(sim, key)
    s = settings_factory(redis_url=redis_server.url, rest_base_url=sim.rest_url, toolsets="all", **key.settings())
    async with replica(s) as rt, client_for(rt) as c:
        before = len(sim.rest.requests)
        assert "order_id or client_order_id" in await call_error(c, "get_order", {"symbol": "BTCUSDT"})
        assert "24 hours" in await call_error(c, "get_my_trades", {"symbol": "BTCUSDT", "start_time": "2024-01-01",
                                                                  "end_time": "2024-01-03"})
        assert "not both" in await call_error(c, "get_my_trades", {"symbol": "BTCUSDT", "from_id": 1,
                                                                  "start_time": "2024-01-01"})
        assert "exactly one" in await call_error(c, "get_prevented_matches", {"symbol": "BTCUSDT"})
        await call_error(c, "get_order", {"symbol": "BTCUSDT", "client_order_id": "bad id with spaces"})
        await call_error(c, "get_account_events", {"after_id": "not-an-id"})
        assert len(sim.rest.requests) == before
        err = await call_error(c, "get_order", {"symbol": "BTCUSDX", "order_id": 1})
        assert "BTCUSDT" in err  # the closest real symbol
        assert rt.signed is not None and rt.signed.account == account_id(key.api_key)


def test_the_key_material_never_shows_in_settings_or_repr():
    key = make_key("Ed25519", passphrase="pp-secret")
    from binance_common.settings import Settings
    from binance_common.signing import signer_from_settings

    s = Settings(**key.settings())
    shown = repr(s) + repr(s.redacted()) + repr(signer_from_settings(s))
    for secret in [*key.secret_material(), key.api_key]:
        assert secret not in shown

