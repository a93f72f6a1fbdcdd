"""The daemon's user-data stream against the simulator's WebSocket API and a real redis-server: every event
recorded once through rotations, explicit gaps after drops and terminations followed by a REST reconcile
after which balances, orders and fills in Redis equal the simulator's, and the front end's account tools
reading it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

import binance_common.accountstore as store
from binance_common.keys import Keys
from binance_common.settings import Settings
from binance_common.signing import account_id
from binance_streamd import cli as streamd_cli
from binance_streamd.service import StreamDaemon
from tests.support.accounts import KeyPair, make_key, register
from tests.support.market_harness import call, client_for, replica
from tests.support.sim import BinanceSim, SimConfig
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def sim() -> AsyncIterator[BinanceSim]:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT", "BNBBTC"], rate=2.0)) as s:
        yield s


def settings(sim: BinanceSim, redis_url: str, keys: Keys, key: KeyPair, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(rest_base_url=sim.rest_url, ws_base_url=sim.ws_url, ws_api_url=sim.ws_api_url,
                                redis_url=redis_url, namespace=keys.namespace, reconnect_max_delay_s=0.5,
                                **key.settings())
    return Settings(**(base | kw))


class Account:
    """The daemon's copy of the account in Redis."""

    def __init__(self, r: aioredis.Redis, keys: Keys, key: KeyPair) -> None:
        self.r, self.keys, self.id = r, keys, account_id(key.api_key)

    async def entries(self) -> list[tuple[str, Any]]:
        return [store.decode_entry(f) for _, f in await self.r.xrange(self.keys.account(self.id, "events"))]

    async def events(self) -> list[dict[str, Any]]:
        return [d for k, d in await self.entries() if k == store.EVENT]

    async def status(self) -> dict[str, str]:
        raw = await self.r.hgetall(self.keys.account(self.id, "status"))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def live(self) -> bool:
        return (await self.status()).get("state") == "live"

    async def balances(self) -> dict[str, tuple[str, str]]:
        decoded = store.decode_balances(await self.r.get(self.keys.account(self.id, "balances")))
        assert decoded is not None
        return {a: v for a, v in decoded[0].items() if Decimal(v[0]) or Decimal(v[1])}

    async def orders(self) -> dict[str, dict[str, Any]]:
        raw = await self.r.hgetall(self.keys.account(self.id, "orders"))
        return {k.decode(): orjson.loads(v) for k, v in raw.items()}

    async def fills(self) -> dict[str, dict[str, Any]]:
        raw = await self.r.hgetall(self.keys.account(self.id, "fills"))
        return {k.decode(): orjson.loads(v) for k, v in raw.items()}


def sim_balances(sim: BinanceSim) -> dict[str, tuple[str, str]]:
    return {r["asset"]: (r["free"], r["locked"]) for r in sim.account.balance_rows(omit_zero=True)}


ORDER_FIELDS = ("symbol", "orderId", "status", "price", "origQty", "executedQty", "cummulativeQuoteQty", "side")


def sim_orders(sim: BinanceSim) -> dict[str, tuple[Any, ...]]:
    return {f"{o['symbol']}:{o['orderId']}": tuple(o[f] for f in ORDER_FIELDS) for o in sim.account.orders.values()}


def stored_orders(orders: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {k: tuple(o[f] for f in ORDER_FIELDS) for k, o in orders.items()}


def sim_fills(sim: BinanceSim) -> dict[str, tuple[Any, ...]]:
    return {f"{t['symbol']}:{t['id']}:{t['orderId']}": (t["orderId"], t["price"], t["qty"], t["commission"])
            for t in sim.account.fills}


def stored_fills(fills: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {k: (t["orderId"], t["price"], t["qty"], t["commission"]) for k, t in fills.items()}


async def test_events_reach_redis_once_through_rotations(sim, redis_server, redis_client, keys) -> None:
    key = make_key("Ed25519")
    register(sim, key)
    sim.config.connection_lifetime = 3.0  # Binance would close at 3 s; the daemon rotates at 1.5 s
    d = await StreamDaemon(settings(sim, redis_server.url, keys, key, connection_lifetime_s=1.5)).start()
    acct = Account(redis_client, keys, key)
    try:
        await wait_until(acct.live, what="user-data stream live")
        assert [k for k, _ in await acct.entries()] == [store.RECONCILED]  # the first start: no gap
        placed = []
        for i in range(60):  # about 6 s of activity across at least three rotations
            o = sim.account.place("BTCUSDT", "BUY", "20000.00", "0.001")
            placed.append(o["orderId"])
            if i % 3 == 0:
                sim.account.fill(o["orderId"])
            await wait_until(lambda n=len(sim.account.events): _count(acct, n), what="events recorded")
            await _tick()
        assert d.user_data is not None and d.user_data.stats["rotations"] >= 3
        assert await acct.events() == sim.account.events  # every event, once, in order
        assert [k for k, _ in await acct.entries()].count(store.GAP) == 0
        assert stored_orders(await acct.orders()) == sim_orders(sim)
        assert stored_fills(await acct.fills()) == sim_fills(sim)
        assert await acct.balances() == sim_balances(sim)
    finally:
        await d.stop()


async def _count(acct: Account, n: int) -> bool:
    return len(await acct.events()) >= n


async def _tick() -> None:
    await asyncio.sleep(0.1)  # pacing of the simulated activity, not synchronisation


@pytest.mark.parametrize("fault", ["drop", "terminate"])
async def test_after_a_drop_the_gap_is_marked_and_rest_reconciles_everything(sim, redis_server, redis_client,
                                                                             keys, fault) -> None:
    key = make_key("HMAC")
    register(sim, key)
    d = await StreamDaemon(settings(sim, redis_server.url, keys, key)).start()
    acct = Account(redis_client, keys, key)
    try:
        await wait_until(acct.live, what="user-data stream live")
        a = sim.account.place("BTCUSDT", "BUY", "20000.00", "0.01")
        b = sim.account.place("ETHUSDT", "SELL", "3000.00", "0.5")
        await wait_until(lambda: _count(acct, len(sim.account.events)), what="events before the fault")
        if fault == "drop":
            sim.faults.drop_ws_api()
        else:
            sim.faults.terminate_user_streams()
        # while nothing is subscribed: fills, a cancel, a deposit, a new order filled at once (Binance does not
        # replay any of it)
        sim.account.fill(a["orderId"], "0.004")
        sim.account.cancel(b["orderId"])
        sim.account.deposit("USDT", "250.5")
        c = sim.account.place("BNBBTC", "BUY", "0.0100", "1")
        sim.account.fill(c["orderId"])
        await wait_until(lambda: _reconciled(acct, 2), what="a second reconcile")
        kinds = [k for k, _ in await acct.entries()]
        gap_at = kinds.index(store.GAP)
        assert kinds[gap_at + 1] == store.RECONCILED and kinds.count(store.GAP) == 1
        gap = next(dd for k, dd in await acct.entries() if k == store.GAP)
        assert gap["from_ms"] <= gap["to_ms"] and gap["reason"] in ("connection lost", "eventStreamTerminated")
        await wait_until(acct.live, what="live again")
        assert stored_orders(await acct.orders()) == sim_orders(sim)
        assert stored_fills(await acct.fills()) == sim_fills(sim)
        assert await acct.balances() == sim_balances(sim)
        assert (await acct.status())["gaps"] == "1"
        # and it is live again: the next event arrives
        sim.account.fill(a["orderId"])
        await wait_until(lambda: _count_events_like(acct, sim.account.events[-1]), what="event after the gap")
        assert stored_orders(await acct.orders()) == sim_orders(sim)
    finally:
        await d.stop()


async def _reconciled(acct: Account, n: int) -> bool:
    return [k for k, _ in await acct.entries()].count(store.RECONCILED) >= n


async def _count_events_like(acct: Account, event: dict[str, Any]) -> bool:
    return event in await acct.events()


async def test_a_restarted_daemon_marks_the_gap_and_the_tools_read_the_stream(sim, redis_server, redis_client,
                                                                              keys, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    key = make_key("RSA")
    register(sim, key)
    s = settings(sim, redis_server.url, keys, key)
    acct = Account(redis_client, keys, key)
    d = await StreamDaemon(s).start()
    try:
        await wait_until(acct.live, what="live")
        o = sim.account.place("BTCUSDT", "BUY", "20000.00", "0.01")
        await wait_until(lambda: _count(acct, len(sim.account.events)), what="events")
    finally:
        await d.stop()
    sim.account.fill(o["orderId"])  # while no daemon runs
    d = await StreamDaemon(s).start()
    try:
        await wait_until(lambda: _reconciled(acct, 2), what="reconcile after the restart")
        await wait_until(acct.live, what="live")
        assert [k for k, _ in await acct.entries()].count(store.GAP) == 1
        assert stored_fills(await acct.fills()) == sim_fills(sim)
        async with replica(Settings(**(s.model_dump() | {"api_key": key.api_key,
                                                          "private_key": key.pem}))) as rt, client_for(rt) as c:
            bal = await call(c, "get_balances")
            assert bal["freshness"]["source"] == "stream" and bal["freshness"]["stream_state"] == "live"
            assert {b["asset"]: (b["free"], b["locked"]) for b in bal["balances"]} == sim_balances(sim)
            ev = await call(c, "get_account_events", {"limit": 500})
            kinds = [e["kind"] for e in ev["events"]]
            assert kinds.count("gap") == 1 and kinds[-1] in ("reconciled", "event")
            assert ev["gaps"] == 1 and ev["stream_state"] == "live"
            after = ev["next_after_id"]
            sim.account.deposit("BTC", "0.1")
            more = await call(c, "get_account_events", {"after_id": after, "wait_ms": 5000})
            assert [e["event_type"] for e in more["events"]][:1] == ["balanceUpdate"]
        shown = await asyncio.to_thread(CliRunner().invoke, streamd_cli.app, ["status"], env={
            "BINANCE_MCP_REDIS_URL": redis_server.url, "BINANCE_MCP_NAMESPACE": keys.namespace,
            "BINANCE_MCP_API_KEY": key.api_key, "BINANCE_MCP_PRIVATE_KEY": key.pem})
        assert f"account {account_id(key.api_key)}: user-data live" in shown.output, shown.output
        assert "gaps 1" in shown.output
        dump = repr(await _dump(redis_client)) + caplog.text + shown.output
        for secret in key.secret_material():
            assert secret not in dump
    finally:
        await d.stop()


async def _dump(r: aioredis.Redis) -> list[Any]:
    out: list[Any] = []
    async for k in r.scan_iter(count=1000):
        t = (await r.type(k)).decode()
        out.append(k)
        if t == "string":
            out.append(await r.get(k))
        elif t == "hash":
            out.append(await r.hgetall(k))
        elif t == "stream":
            out.append(await r.xrange(k))
    return out


async def test_no_event_is_lost_when_binance_shuts_connections_down_while_events_flow(sim, redis_server,
                                                                                      redis_client, keys) -> None:
    """serverShutdown, then the close half a second later: the daemon subscribes anew before the old connection
    ends, while an event is published every 20 ms; every event is recorded once and no gap is needed."""
    key = make_key("Ed25519")
    register(sim, key)
    sim.config.connection_lifetime = 1.2
    sim.config.shutdown_before_close = True
    d = await StreamDaemon(settings(sim, redis_server.url, keys, key)).start()
    acct = Account(redis_client, keys, key)
    try:
        await wait_until(acct.live, what="live")
        deadline = asyncio.get_running_loop().time() + 5.0
        while asyncio.get_running_loop().time() < deadline:
            sim.account.deposit("USDT", "1")
            await asyncio.sleep(0.02)  # the pace of the simulated account, not synchronisation
        await wait_until(lambda: _count(acct, len(sim.account.events)), what="every event recorded")
        assert d.user_data is not None and d.user_data.stats["rotations"] >= 3
        assert await acct.events() == sim.account.events
        assert [k for k, _ in await acct.entries()].count(store.GAP) == 0
        assert await acct.balances() == sim_balances(sim)
    finally:
        await d.stop()


async def test_a_slow_redis_loses_no_event(sim, redis_server, redis_client, keys) -> None:
    key = make_key("HMAC")
    register(sim, key)
    d = await StreamDaemon(settings(sim, redis_server.url, keys, key)).start()
    acct = Account(redis_client, keys, key)
    try:
        await wait_until(acct.live, what="live")
        await redis_client.execute_command("CLIENT", "PAUSE", 1500, "WRITE")
        for _ in range(30):
            sim.account.deposit("BTC", "0.001")
        await wait_until(lambda: _count(acct, len(sim.account.events)), what="every event recorded", timeout=15)
        assert await acct.events() == sim.account.events
        assert await acct.balances() == sim_balances(sim)
    finally:
        await d.stop()


async def test_a_reconcile_goes_on_past_refusals_and_keeps_self_trades(sim, redis_server, redis_client,
                                                                       keys) -> None:
    key = make_key("HMAC")
    register(sim, key)
    d = await StreamDaemon(settings(sim, redis_server.url, keys, key, account_symbols=["NOSUCHPAIR"])).start()
    acct = Account(redis_client, keys, key)
    try:
        await wait_until(acct.live, what="live")
        buy = sim.account.place("BTCUSDT", "BUY", "20000.00", "0.01")
        sell = sim.account.place("BTCUSDT", "SELL", "20000.00", "0.01")
        await wait_until(lambda: _count(acct, len(sim.account.events)), what="orders recorded")
        sim.faults.drop_ws_api()
        t = sim.account.fill(buy["orderId"])  # a self-trade: one trade id, both orders
        sim.account.fill(sell["orderId"], trade_id=t["id"])
        await wait_until(lambda: _reconciled(acct, 2), what="reconcile after the drop")
        await wait_until(acct.live, what="live again")
        rec = [dd for k, dd in await acct.entries() if k == store.RECONCILED][-1]
        assert [f["what"] for f in rec["failed"]] == ["orders of NOSUCHPAIR", "fills of NOSUCHPAIR"]
        assert len(await acct.fills()) == 2 and stored_fills(await acct.fills()) == sim_fills(sim)
        assert stored_orders(await acct.orders()) == sim_orders(sim)
    finally:
        await d.stop()


async def test_embedded_mode_keeps_the_user_data_stream_too() -> None:
    """One install command, no Redis: the in-process feed also keeps the account's user-data stream."""
    from mcp import Client

    from binance_mcp.cli import compose
    from binance_mcp.runtime import Runtime
    from binance_mcp.server import build_server

    async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=2.0)) as sim:
        key = make_key("Ed25519")
        register(sim, key)
        s = Settings(rest_base_url=sim.rest_url, ws_base_url=sim.ws_url, ws_api_url=sim.ws_api_url,
                     futures_rest_base_url=sim.rest_url, futures_ws_base_url=sim.ws_url, namespace="embacct",
                     **key.settings())
        rt = compose(s, Runtime(s, transport="memory"))
        await rt.start()
        try:
            async with Client(build_server(rt)) as c:
                async def streamed() -> Any:
                    r = await c.call_tool("get_balances", {"source": "stream"})
                    return None if r.is_error else r.structured_content

                bal = await wait_until(streamed, timeout=15, what="streamed balances in embedded mode")
                assert bal["freshness"]["stream_state"] == "live"
                sim.account.deposit("USDT", "5")

                async def deposit_seen() -> bool:
                    r = await c.call_tool("get_account_events", {"limit": 10})
                    return any(e.get("event_type") == "balanceUpdate" for e in r.structured_content["events"])

                await wait_until(deposit_seen, what="the deposit event")
        finally:
            await rt.stop()
