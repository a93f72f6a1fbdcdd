"""``binance-streamd run`` as a child process with an API key (from files, as deployed) and a futures stream:
``kill -9`` while the account trades and the futures market moves, restart, and Redis holds every event,
balance, order and fill, and every futures aggregate trade id, exactly once. Nothing secret reaches the
process's output."""

from __future__ import annotations

import signal
from decimal import Decimal

import orjson
import pytest

import binance_common.accountstore as store
from binance_common.feedstore import decode_history, entry_last_id
from binance_common.keys import Keys
from binance_common.signing import account_id
from tests.e2e.test_continuity_processes import daemon_process, env_for
from tests.support.accounts import make_key, register
from tests.support.sim import BinanceSim, SimConfig
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
FUT = "um:btcusdt@aggTrade"


async def test_kill_9_loses_nothing_of_the_account_or_the_futures_stream(redis_server, redis_client, keys: Keys,
                                                                          tmp_path) -> None:
    key = make_key("Ed25519")
    (tmp_path / "key.pem").write_text(key.pem or "")
    (tmp_path / "api").write_text(key.api_key)
    acct = account_id(key.api_key)
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT"], rate=20.0)) as sim:
        register(sim, key)
        env = env_for(sim, redis_server.url, keys.namespace, BINANCE_MCP_STREAMS=FUT,
                      BINANCE_MCP_FUTURES_REST_BASE_URL=sim.rest_url, BINANCE_MCP_FUTURES_WS_BASE_URL=sim.ws_url,
                      BINANCE_MCP_WS_API_URL=sim.ws_api_url, BINANCE_MCP_API_KEY_FILE=str(tmp_path / "api"),
                      BINANCE_MCP_PRIVATE_KEY_FILE=str(tmp_path / "key.pem"))
        status_key = keys.account(acct, "status")
        o = None
        async with daemon_process(env) as proc:
            await wait_until(lambda: _state(redis_client, status_key, b"live"), timeout=20, what="user data live")
            await wait_until(lambda: redis_client.exists(keys.latest(FUT)), timeout=20, what="futures data")
            o = sim.account.place("BTCUSDT", "BUY", "20000.00", "0.02")
            await wait_until(lambda: _events(redis_client, keys, acct, 2), what="events before the kill")
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
        # while no daemon runs: fills, a deposit, futures trades
        sim.account.fill(o["orderId"], "0.01")
        sim.account.deposit("USDT", "42")
        sim.faults.burst("BTCUSDT", 40)
        async with daemon_process(env) as proc:
            await wait_until(lambda: _reconciles(redis_client, keys, acct, 2), timeout=20, what="reconcile")
            await wait_until(lambda: _state(redis_client, status_key, b"live"), timeout=20, what="live again")
            sim.account.fill(o["orderId"])  # and live events flow again
            await wait_until(lambda: _events(redis_client, keys, acct, 4), what="a live event after the restart")
            sim.faults.pause()
            newest = sim.market("BTCUSDT").agg_id
            await wait_until(lambda: _last_agg(redis_client, keys, newest), timeout=20, what="futures caught up")
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
            stderr += (await proc.stderr.read()).decode() if proc.stderr else ""
        ids = [entry_last_id(decode_history(f), "a") for _, f in await redis_client.xrange(keys.history(FUT))]
        assert ids == list(range(ids[0], ids[-1] + 1))  # every futures id once, across the kill
        kinds = [store.decode_entry(f)[0] for _, f in await redis_client.xrange(keys.account(acct, "events"))]
        assert kinds.count(store.GAP) == 1  # the restart is an explicit gap, followed by a reconcile
        assert kinds[kinds.index(store.GAP) + 1] == store.RECONCILED
        fills = {k.decode(): orjson.loads(v) for k, v in (await redis_client.hgetall(keys.account(acct, "fills"))).items()}
        assert sorted((t["id"], t["qty"]) for t in fills.values()) == sorted((t["id"], t["qty"]) for t in sim.account.fills)
        orders = {k.decode(): orjson.loads(v) for k, v in (await redis_client.hgetall(keys.account(acct, "orders"))).items()}
        assert orders[f"BTCUSDT:{o['orderId']}"]["status"] == "FILLED"
        bal = store.decode_balances(await redis_client.get(keys.account(acct, "balances")))
        assert bal is not None
        want = {r["asset"]: (r["free"], r["locked"]) for r in sim.account.balance_rows(omit_zero=True)}
        assert {a: v for a, v in bal[0].items() if Decimal(v[0]) or Decimal(v[1])} == want
        for secret in key.secret_material():
            assert secret not in stderr


async def _state(r, key, state):  # type: ignore[no-untyped-def]
    return await r.hget(key, "state") == state


async def _events(r, keys, acct, n):  # type: ignore[no-untyped-def]
    entries = await r.xrange(keys.account(acct, "events"))
    return sum(1 for _, f in entries if store.decode_entry(f)[0] == store.EVENT) >= n


async def _reconciles(r, keys, acct, n):  # type: ignore[no-untyped-def]
    entries = await r.xrange(keys.account(acct, "events"))
    return sum(1 for _, f in entries if store.decode_entry(f)[0] == store.RECONCILED) >= n


async def _last_agg(r, keys, last):  # type: ignore[no-untyped-def]
    entries = await r.xrange(keys.history(FUT))
    return bool(entries) and entry_last_id(decode_history(entries[-1][1]), "a") == last



