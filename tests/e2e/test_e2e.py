"""End to end: the real ``binance-mcp`` console script over stdio and Streamable HTTP, a real redis-server,
and a daemon (the fake daemon of tests/fake_feed.py here; test_e2e_feed.py uses binance-streamd itself).

* one stdio process and one HTTP process share one daemon: both subscribe, the daemon holds one upstream
  subscription, and it unsubscribes once both leases lapse (both front ends SIGKILLed);
* killing and restarting the HTTP front end loses nothing (its pool lease outlives it);
* a client on one process is notified of updates whichever process took the subscribe, on both eras.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator

import httpx
import httpx2
import pytest
import redis.asyncio as aioredis
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.subscriptions import ResourceUpdated
from mcp_types import ResourceUpdatedNotification

from tests.support.e2e import EXE, HttpFrontEnd, mcp_env, pid_of, stdio_params
from tests.support.fake_feed import FakeDaemon, trade, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")]


@pytest.fixture
def front_ends() -> Iterator[list[HttpFrontEnd]]:
    started: list[HttpFrontEnd] = []
    yield started
    for fe in started:
        fe.stop()


@pytest.fixture
async def r(redis_server) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def test_stdio_and_http_share_one_daemon_and_it_unsubscribes_when_both_lapse(
    redis_server, r, keys, namespace, front_ends
) -> None:
    env = mcp_env(redis_server.url, namespace)
    async with FakeDaemon(r, keys) as daemon:
        http = await HttpFrontEnd(env).start()
        front_ends.append(http)
        stdio_pid = 0
        with contextlib.suppress(Exception):  # the stdio server is SIGKILLed inside the block
            async with Client(stdio_params(env)) as stdio_client, Client(f"{http.url}/mcp") as http_client:
                a = await stdio_client.call_tool("subscribe_streams", {"streams": ["btcusdt@trade"], "wait_s": 10})
                b = await http_client.call_tool("subscribe_streams", {"streams": ["btcusdt@trade"], "wait_s": 10})
                assert a.structured_content["live"] == 1 and b.structured_content["live"] == 1
                assert a.structured_content["scope"] == "process" and b.structured_content["scope"] == "pool"
                assert daemon.upstream_subscribes["btcusdt@trade"] == 1  # two agents, one subscription
                await daemon.emit("btcusdt@trade", trade("BTCUSDT", 1, price="3.14000000"))
                for c in (stdio_client, http_client):
                    res = await c.call_tool("get_stream_latest", {"stream": "btcusdt@trade"})
                    assert res.structured_content["data"]["price"] == "3.14000000"
                listed = await http_client.call_tool("list_stream_subscriptions", {})
                assert listed.structured_content["subscriptions"][0]["holders"] == 2
                stdio_pid = pid_of(a.structured_content["holder"])
                os.kill(stdio_pid, signal.SIGKILL)
                http.kill(signal.SIGKILL)
        assert stdio_pid
        # Nobody renews either lease now: both lapse after the TTL (2 s) and the daemon unsubscribes.
        await wait_until(lambda: "btcusdt@trade" not in daemon.active, timeout=20)
        assert daemon.upstream_subscribes["btcusdt@trade"] == 1
        assert daemon.upstream_unsubscribes["btcusdt@trade"] == 1


async def test_killing_and_restarting_a_front_end_loses_nothing(redis_server, r, keys, namespace, front_ends) -> None:
    # a restart within the lease TTL keeps the pool's subscription (the TTL must outlast a process start)
    env = mcp_env(redis_server.url, namespace, BINANCE_MCP_LEASE_TTL_S="20")
    async with FakeDaemon(r, keys) as daemon:
        first = await HttpFrontEnd(env).start()
        front_ends.append(first)
        async with Client(f"{first.url}/mcp") as c:
            await c.call_tool("subscribe_streams", {"streams": ["ethusdt@trade"], "wait_s": 10})
            await daemon.emit("ethusdt@trade", trade("ETHUSDT", 1))
            h = await c.call_tool("get_stream_history", {"stream": "ethusdt@trade"})
            cursor = h.structured_content["next_cursor"]
        first.kill(signal.SIGKILL)
        # While the front end is down the feed keeps writing.
        await daemon.emit("ethusdt@trade", trade("ETHUSDT", 2))
        await daemon.emit("ethusdt@trade", trade("ETHUSDT", 3))
        second = await HttpFrontEnd(env).start()
        front_ends.append(second)
        async with Client(f"{second.url}/mcp") as c:
            h = await c.call_tool("get_stream_history", {"stream": "ethusdt@trade", "since": cursor})
            assert [e["data"]["trade_id"] for e in h.structured_content["entries"]] == [2, 3]
            assert h.structured_content["missed"] == 0
            listed = await c.call_tool("list_stream_subscriptions", {"mine_only": True})
            assert [s["stream"] for s in listed.structured_content["subscriptions"]] == ["ethusdt@trade"]
        # the restarted replica renews the pool lease: the subscription never lapsed
        await asyncio.sleep(0)  # (no timing assumption: the check below is on the daemon's counters)
        await daemon.reconcile()
        assert "ethusdt@trade" in daemon.active and daemon.upstream_subscribes["ethusdt@trade"] == 1


async def test_notifications_reach_a_client_whichever_process_took_the_subscribe(
    redis_server, r, keys, namespace, front_ends
) -> None:
    env = mcp_env(redis_server.url, namespace)
    got: list[str] = []

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            got.append(message.params.uri)

    async with FakeDaemon(r, keys) as daemon:
        http = await HttpFrontEnd(env).start()
        front_ends.append(http)
        async with Client(stdio_params(env)) as stdio_client:
            # the subscribe goes to the stdio process; the listener is on the HTTP replica (2026-07-28)
            await stdio_client.call_tool("subscribe_streams", {"streams": ["bnbusdt@bookTicker"], "wait_s": 10})
            uri = "binance://stream/bnbusdt@bookTicker"
            async with Client(f"{http.url}/mcp") as http_client, http_client.listen(resource_subscriptions=[uri]) as sub:
                await daemon.emit("bnbusdt@bookTicker", {"u": 1, "s": "BNBUSDT", "b": "1.0", "B": "2", "a": "1.1", "A": "3"})
                assert await asyncio.wait_for(sub.__anext__(), 15) == ResourceUpdated(uri)
        # legacy era: resources/subscribe on a stdio process; the HTTP replica took the tool subscribe
        async with Client(f"{http.url}/mcp") as http_client:
            await http_client.call_tool("subscribe_streams", {"streams": ["xrpusdt@trade"], "wait_s": 10})
        async with Client(stdio_params(env), mode="legacy", message_handler=on_message) as legacy:
            await legacy.subscribe_resource("binance://stream/xrpusdt@trade")
            await daemon.emit("xrpusdt@trade", trade("XRPUSDT", 1))
            await wait_until(lambda: got, timeout=15)
            assert got == ["binance://stream/xrpusdt@trade"]
        # 2026-07-28 listen on a stdio process; the subscribe was taken by the HTTP replica
        async with Client(stdio_params(env)) as stdio_client:
            uri = "binance://stream/xrpusdt@trade"
            async with stdio_client.listen(resource_subscriptions=[uri]) as sub:
                await daemon.emit("xrpusdt@trade", trade("XRPUSDT", 2))
                assert await asyncio.wait_for(sub.__anext__(), 15) == ResourceUpdated(uri)


def test_cli_refuses_a_public_bind_without_a_token(namespace) -> None:
    env = {**os.environ, **mcp_env("redis://127.0.0.1:9/0", namespace)}
    env.pop("BINANCE_MCP_AUTH_TOKEN", None)
    proc = subprocess.run([EXE, "http", "--host", "0.0.0.0", "--port", "0"], env=env, capture_output=True,
                          timeout=60)
    assert proc.returncode == 2
    assert b"BINANCE_MCP_AUTH_TOKEN" in proc.stderr


async def test_cli_http_token_file_and_workers(redis_server, r, keys, namespace, tmp_path, front_ends) -> None:
    token = tmp_path / "token"
    token.write_text("file-token-123\n")
    env = mcp_env(redis_server.url, namespace, BINANCE_MCP_AUTH_TOKEN_FILE=str(token))
    async with FakeDaemon(r, keys) as daemon:
        fe = await HttpFrontEnd(env, "--workers", "2", "--replica-id", "edge").start()
        front_ends.append(fe)
        async with httpx.AsyncClient(base_url=fe.url) as h:
            assert (await h.get("/healthz")).json() == {"status": "ok"}  # no credential: the status only
            health = (await h.get("/healthz", headers={"Authorization": "Bearer file-token-123"})).json()
            assert health["replica"].startswith("edge-w") and health["daemon"]["alive"] is True
            assert (await h.post("/mcp", json={})).status_code == 401
        authed = httpx2.AsyncClient(headers={"Authorization": "Bearer file-token-123"}, timeout=30)
        async with Client(streamable_http_client(f"{fe.url}/mcp", http_client=authed)) as c:
            out = await c.call_tool("subscribe_streams", {"streams": ["dogeusdt@trade"], "wait_s": 10})
            assert out.structured_content["live"] == 1
            await daemon.emit("dogeusdt@trade", trade("DOGEUSDT", 1, price="0.12345678"))
            for _ in range(6):  # new connections may land on either worker: every replica answers alike
                res = await c.call_tool("get_stream_latest", {"stream": "dogeusdt@trade"})
                assert res.structured_content["data"]["price"] == "0.12345678"
        await authed.aclose()
