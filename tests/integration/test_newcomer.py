"""What a newcomer runs into first: all-market array streams, a truthful `binance-streamd status`, reasons
that say why a stream is not live, the systemd unit for this install, and a stdio server that says it is
waiting."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import orjson
import pytest
import redis

from binance_common.keys import Keys
from binance_common.settings import Settings
from binance_streamd.service import StreamDaemon
from tests.support.fake_feed import Replica
from tests.support.redis_server import free_port
from tests.support.sim import BinanceSim, SimConfig
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def _settings(sim: BinanceSim, url: str, ns: str, **kw: object) -> Settings:
    return Settings(rest_base_url=sim.rest_url, ws_base_url=sim.ws_url, redis_url=url, namespace=ns,  # type: ignore[arg-type]
                    unsubscribe_grace_s=0.3, **kw)


async def test_all_market_arrays_go_live_and_cover_every_symbol(redis_server, redis_client, keys) -> None:
    from mcp import Client

    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT", "BNBBTC"], rate=20.0)) as sim:
        s = _settings(sim, redis_server.url, keys.namespace, streams=["!miniTicker@arr", "!ticker_1h@arr"])
        d = await StreamDaemon(s).start()
        try:
            for name in ("!miniTicker@arr", "!ticker_1h@arr"):
                await wait_until(lambda name=name: _live_with_data(redis_client, keys, name), timeout=15, what=name)
            await wait_until(lambda: redis_client.exists(keys.latest("bnbbtc@miniTicker")), timeout=10)
            env = orjson.loads(await redis_client.get(keys.latest("ethusdt@ticker_1h")))
            assert env["d"]["s"] == "ETHUSDT" and env["d"]["e"] == "1hTicker"
            assert not await redis_client.exists(keys.history("bnbbtc@miniTicker"))  # latest only
            assert d.malformed == 0
            async with Replica(_settings(sim, redis_server.url, keys.namespace)) as rep, Client(rep.mcp) as c:
                out = (await c.call_tool("get_price", {"symbol": "BNBBTC"})).structured_content
                assert out["source"] == "ws" and out["price"]  # no own stream: the array answered, no REST
                rest_before = sim.stats["rest_requests"]
                out = (await c.call_tool("get_price", {"symbol": "ETHUSDT"})).structured_content
                assert out["source"] == "ws" and sim.stats["rest_requests"] == rest_before
        finally:
            await d.stop()


async def _live_with_data(r, keys: Keys, stream: str) -> bool:
    return await _state(r, keys, stream) == "live" and bool(await r.exists(keys.latest(stream)))


async def _state(r, keys: Keys, stream: str) -> str | None:
    v = await r.hget(keys.status(stream), "state")
    return v.decode() if v else None


async def test_offline_the_reason_says_why(redis_server, redis_client, keys) -> None:
    s = Settings(rest_base_url="http://127.0.0.1:9", ws_base_url=f"ws://127.0.0.1:{free_port()}",  # type: ignore[arg-type]
                 redis_url=redis_server.url, namespace=keys.namespace, streams=["btcusdt@trade"],
                 reconnect_max_delay_s=0.5)
    d = await StreamDaemon(s).start()
    try:
        async def reason() -> str | None:
            raw = await redis_client.hget(keys.status("btcusdt@trade"), "reason")
            return raw.decode() if raw and b"cannot connect" in raw else None

        text = await wait_until(reason, timeout=15, what="the connection error in the status")
        assert "ws://127.0.0.1:" in text and ("Connect" in text or "refused" in text.lower())
        assert await _state(redis_client, keys, "btcusdt@trade") == "pending"
    finally:
        await d.stop()


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "binance_streamd", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_status_marks_leftovers_and_says_who_leads(redis_server, namespace) -> None:
    env = {"BINANCE_MCP_REDIS_URL": redis_server.url, "BINANCE_MCP_NAMESPACE": namespace}
    k = Keys(namespace)
    c = redis.Redis.from_url(redis_server.url)
    now = int(time.time() * 1000)
    c.set(k.heartbeat, orjson.dumps({"pid": 42, "host": "h", "started": now, "ts": now}), px=10_000)
    c.set(k.leader, "3:h:42:abc", px=10_000)
    c.set(k.daemon_stats, orjson.dumps({"streams": {"btcusdt@trade": {}}, "connections": [], "writer": {}}))
    c.hset(k.status("btcusdt@trade"), mapping={"state": "live", "rate": "3.5"})
    c.hset(k.status("ethusdt@trade"), mapping={"state": "live", "rate": "9.9"})  # an earlier run's
    out = _cli(["status"], env)
    assert out.returncode == 0, out.stderr
    assert "leader: pid 42 on h (term 3)" in out.stdout
    lines = {ln.split()[0]: ln for ln in out.stdout.splitlines() if "@trade" in ln}
    assert " live " in lines["btcusdt@trade"] and "(leftover)" in lines["ethusdt@trade"]


def test_status_with_redis_unreachable_is_one_line(namespace) -> None:
    out = _cli(["status"], {"BINANCE_MCP_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "unreachable" in lines[0]


def test_systemd_unit_for_this_install() -> None:
    out = _cli(["systemd-unit", "--user", "binance"], {})
    assert out.returncode == 0
    exec_line = next(ln for ln in out.stdout.splitlines() if ln.startswith("ExecStart="))
    exe = exec_line.split("=", 1)[1].split()[0]
    assert os.path.isabs(exe) and os.access(exe, os.X_OK) and exec_line.endswith(" run --log-format json")
    assert "User=binance" in out.stdout and "DynamicUser" not in out.stdout and "Type=notify" in out.stdout


def test_stdio_says_it_is_waiting_and_help_says_why() -> None:
    exe = os.path.join(os.path.dirname(sys.executable), "binance-mcp")
    out = subprocess.run([exe], input="", capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if not k.startswith("BINANCE_MCP_")})
    first = out.stderr.splitlines()[0]
    assert first.startswith("binance-mcp: serving MCP over stdio") and "waiting for a client" in first
    assert out.stdout == ""  # stdout belongs to the protocol
    helptext = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "With no command it serves MCP over stdio" in " ".join(helptext.split())
