"""The HTTP front end with uvicorn in-process: Streamable HTTP (stateless and stateful), legacy SSE, /healthz,
bearer auth, bind checks, DNS-rebinding protection, and notifications across replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import pytest
import redis.asyncio as aioredis
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated
from mcp_types import ResourceUpdatedNotification

from binance_common.keys import Keys
from binance_mcp.feed.leases import POOL_HOLDER
from binance_mcp.http.app import create_app
from binance_mcp.http.auth import StartupError, check_bind
from tests.support.fake_feed import FakeDaemon, ServeApp, trade, wait_until
from tests.support.redis_server import free_port

pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")


@pytest.fixture
def settings(settings_factory, redis_server):
    return settings_factory(redis_url=redis_server.url, lease_ttl_s=3.0)


@pytest.fixture
async def r(redis_server) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def daemon(r, keys) -> AsyncIterator[FakeDaemon]:
    async with FakeDaemon(r, keys) as d:
        yield d


def _text(res: Any) -> str:
    return res.content[0].text


async def test_healthz_reports_redis_and_daemon(settings, settings_factory, r, keys) -> None:
    async with ServeApp(create_app(settings)) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        resp = await http.get("/healthz")
        assert resp.status_code == 200
        body = resp.json()
        assert body["status"] == "degraded" and body["redis"]["ok"] is True and body["daemon"]["alive"] is False
        async with FakeDaemon(r, keys):
            body = (await http.get("/healthz")).json()
            assert body["status"] == "ok" and body["daemon"]["alive"] is True
            assert body["daemon"]["pid"] and body["daemon"]["heartbeat_age_ms"] >= 0
            assert body["stateless"] is True and body["replica"].startswith("http-")
    dead = settings_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with ServeApp(create_app(dead)) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        resp = await http.get("/healthz")
        assert resp.status_code == 503 and resp.json()["redis"]["ok"] is False


async def test_tools_over_streamable_http_both_eras(settings, daemon: FakeDaemon) -> None:
    async with ServeApp(create_app(settings)) as srv:
        async with Client(f"{srv.url}/mcp") as c:
            assert c.protocol_version == "2026-07-28"
            out = await c.call_tool("subscribe_streams", {"streams": ["btcusdt@trade"], "wait_s": 5})
            assert out.structured_content["live"] == 1 and out.structured_content["scope"] == "pool"
            await daemon.emit("btcusdt@trade", trade("BTCUSDT", 9, price="1.10000000"))
            res = await c.call_tool("get_stream_latest", {"stream": "btcusdt@trade"})
            assert res.structured_content["data"]["price"] == "1.10000000"
            bad = await c.call_tool("get_stream_latest", {"stream": "btcusdt@trade\r\n*"})
            assert bad.is_error and "invalid stream" in _text(bad)
        async with Client(f"{srv.url}/mcp", mode="legacy") as c:
            res = await c.call_tool("get_stream_latest", {"stream": "btcusdt@trade"})
            assert res.structured_content["data"]["trade_id"] == 9
            with pytest.raises(MCPError) as e:
                await c.subscribe_resource("binance://stream/btcusdt@trade")
            assert "stateless HTTP" in str(e.value) and "/sse" in str(e.value)


async def test_bearer_auth(settings_factory, redis_server) -> None:
    s = settings_factory(redis_url=redis_server.url, auth_token="s3cret-token")
    async with ServeApp(create_app(s)) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        assert (await http.get("/healthz")).status_code == 200  # health stays open for load balancers
        resp = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer")
        resp = await http.get("/sse", headers={"Authorization": "Bearer wrong"})
        assert resp.status_code == 401
        with pytest.raises(Exception):
            async with Client(f"{srv.url}/mcp") as c:
                await c.list_tools()
        authed = httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret-token"}, timeout=30)
        async with Client(streamable_http_client(f"{srv.url}/mcp", http_client=authed)) as c:
            assert "get_stream_latest" in {t.name for t in (await c.list_tools()).tools}
        await authed.aclose()


def test_bind_rules(settings_factory) -> None:
    check_bind(settings_factory(http_host="127.0.0.1"))
    check_bind(settings_factory(http_host="::1"))
    with pytest.raises(StartupError, match="BINANCE_MCP_AUTH_TOKEN"):
        check_bind(settings_factory(http_host="0.0.0.0"))
    with pytest.raises(StartupError, match="BINANCE_MCP_AUTH_TOKEN"):
        check_bind(settings_factory(http_host="192.168.1.5"))
    with pytest.raises(StartupError, match="BINANCE_MCP_ALLOWED_HOSTS"):
        check_bind(settings_factory(http_host="0.0.0.0", auth_token="x" * 32))
    check_bind(settings_factory(http_host="0.0.0.0", auth_token="x" * 32, allowed_hosts=["mcp.example.com:*"]))
    check_bind(settings_factory(http_host="192.168.1.5", auth_token="x" * 32))
    with pytest.raises(StartupError):
        create_app(settings_factory(http_host="10.1.2.3"))
    for wildcard in ("0", "::0", "0.0.0.0.", "0:0:0:0:0:0:0:0", "[::]"):  # every interface, however spelt
        with pytest.raises(StartupError, match="BINANCE_MCP_AUTH_TOKEN"):
            check_bind(settings_factory(http_host=wildcard))
        with pytest.raises(StartupError, match="BINANCE_MCP_ALLOWED_HOSTS"):
            check_bind(settings_factory(http_host=wildcard, auth_token="x" * 32))
    check_bind(settings_factory(http_host="localhost"))
    check_bind(settings_factory(http_host="127.0.0.2"))


def test_host_policy_matches_names_case_insensitively_and_without_a_port(settings_factory) -> None:
    from binance_mcp.http.auth import host_policy

    p = host_policy(settings_factory(http_host="0.0.0.0", auth_token="x" * 32,
                                     allowed_hosts=["MCP.Example.com:*", "api.example.org:8443"]))
    for ok in ("mcp.example.com", "MCP.EXAMPLE.COM:443", "mcp.example.com:8765", "api.example.org:8443",
               "localhost:9", "127.0.0.1", "[::1]:5"):
        assert p.host_ok(ok), ok
    for bad in ("evil.example", "mcp.example.com.evil:1", "api.example.org", "api.example.org:1", "", None,
                "0.0.0.0:8765"):
        assert not p.host_ok(bad), bad
    assert p.origin_ok(None) and p.origin_ok("https://MCP.example.com") and p.origin_ok("http://localhost:3000")
    assert p.origin_ok("https://api.example.org:8443") and not p.origin_ok("https://evil.example")


async def test_dns_rebinding_protection(settings) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with ServeApp(create_app(settings)) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        resp = await http.post("/mcp", json=body, headers={**headers, "Host": "evil.example:80"})
        assert resp.status_code == 421
        resp = await http.post("/mcp", json=body, headers={**headers, "Origin": "http://evil.example"})
        assert resp.status_code == 403
        resp = await http.get("/sse", headers={"Host": "evil.example"})
        assert resp.status_code == 421
        resp = await http.get("/healthz", headers={"Host": "evil.example"})  # no reading pids from a rebinding page
        assert resp.status_code == 421
        resp = await http.get("/healthz", headers={"Host": "LOCALHOST"})
        assert resp.status_code == 200 and resp.json()["status"] == "degraded"  # Redis up, no daemon
        assert "replica" in resp.json()  # no auth configured: all details


async def test_healthz_answers_only_the_status_without_a_credential(settings_factory, redis_server) -> None:
    s = settings_factory(redis_url=redis_server.url, auth_token="t0ken-t0ken")
    async with ServeApp(create_app(s)) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        assert (await http.get("/healthz")).json() == {"status": "degraded"}
        assert (await http.get("/healthz", headers={"Authorization": "Bearer nope"})).json() == {"status": "degraded"}
        full = (await http.get("/healthz", headers={"Authorization": "Bearer t0ken-t0ken"})).json()
        assert full["status"] == "degraded" and full["redis"]["ok"] is True and "replica" in full


async def test_listen_on_replica_a_hears_updates_whichever_replica_subscribed(settings, daemon, r, keys) -> None:
    uri = "binance://stream/btcusdt@aggTrade"
    async with ServeApp(create_app(settings, replica_id="a")) as a, ServeApp(create_app(settings, replica_id="b")) as b:
        async with Client(f"{b.url}/mcp") as cb:
            out = await cb.call_tool("subscribe_streams", {"streams": ["btcusdt@aggTrade"], "wait_s": 5})
            assert out.structured_content["live"] == 1
        async with Client(f"{a.url}/mcp") as ca, ca.listen(resource_subscriptions=[uri]) as sub:
            agg = {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 5, "p": "2.0", "q": "1", "f": 1, "l": 1, "T": 1,
                   "m": True, "M": True}
            await daemon.emit("btcusdt@aggTrade", agg)
            assert await sub.__anext__() == ResourceUpdated(uri)
            res = await ca.read_resource(uri)
            assert '"agg_trade_id":5' in getattr(res.contents[0], "text", "")


async def test_legacy_sse_subscribe_is_notified(settings, daemon) -> None:
    got: list[str] = []

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            got.append(message.params.uri)

    async with ServeApp(create_app(settings, replica_id="a")) as a, ServeApp(create_app(settings, replica_id="b")) as b:
        async with Client(sse_client(f"{a.url}/sse"), mode="legacy", message_handler=on_message) as c:
            await c.subscribe_resource("binance://ticker/BTCUSDT")
            await wait_until(lambda: "btcusdt@ticker" in daemon.active)
            async with Client(f"{b.url}/mcp") as cb:  # the other replica takes a subscribe as well
                await cb.call_tool("subscribe_streams", {"kind": "ticker", "symbols": ["BTCUSDT"]})
            await daemon.emit("btcusdt@ticker", {"e": "24hrTicker", "E": 1, "s": "BTCUSDT"})
            await wait_until(lambda: got)
            assert got[0] == "binance://ticker/BTCUSDT"
            # tools over SSE hold a session lease, released when the SSE connection closes
            out = await c.call_tool("subscribe_streams", {"streams": ["ethusdt@trade"], "wait_s": 5})
            assert out.structured_content["scope"] == "session"
        await wait_until(lambda: "ethusdt@trade" not in daemon.active)


async def test_stateful_http_sessions(settings, daemon, r, keys: Keys) -> None:
    got: list[str] = []

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            got.append(message.params.uri)

    async with ServeApp(create_app(settings, stateless=False)) as srv:
        async with Client(f"{srv.url}/mcp", mode="legacy", message_handler=on_message) as c:
            out = await c.call_tool("subscribe_streams", {"streams": ["solusdt@trade"], "wait_s": 5})
            assert out.structured_content["scope"] == "session"
            await c.subscribe_resource("binance://stream/solusdt@trade")
            await daemon.emit("solusdt@trade", trade("SOLUSDT", 1))
            await wait_until(lambda: got)
            assert got == ["binance://stream/solusdt@trade"]
        await wait_until(lambda: "solusdt@trade" not in daemon.active)  # session closed: leases released


async def test_stateless_pool_release_on_another_replica_sticks(settings, daemon, r, keys: Keys) -> None:
    async with ServeApp(create_app(settings, replica_id="a")) as a, ServeApp(create_app(settings, replica_id="b")) as b:
        async with Client(f"{a.url}/mcp") as ca, Client(f"{b.url}/mcp") as cb:
            await ca.call_tool("subscribe_streams", {"streams": ["adausdt@trade"], "wait_s": 5})
            assert await r.zscore(keys.leases, Keys.lease_member("adausdt@trade", POOL_HOLDER)) is not None
            listed = await cb.call_tool("list_stream_subscriptions", {"mine_only": True})
            assert [s["stream"] for s in listed.structured_content["subscriptions"]] == ["adausdt@trade"]
            out = await cb.call_tool("unsubscribe_streams", {"streams": ["adausdt@trade"]})
            assert out.structured_content["released"] == ["adausdt@trade"]
    # both replicas renewed (and stopped) since: the released lease stayed released
    assert await r.zscore(keys.leases, Keys.lease_member("adausdt@trade", POOL_HOLDER)) is None
    await wait_until(lambda: "adausdt@trade" not in daemon.active)


def test_the_mcp_server_never_imports_websockets() -> None:
    """Only the daemon talks WebSocket; binance-mcp reads Redis (embedded mode imports the daemon lazily)."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    pkg = Path(__file__).resolve().parents[2] / "mcp_server" / "binance_mcp"
    for f in pkg.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "websockets" for n in names), f"{f.name} imports websockets"
    code = (
        "import sys, binance_mcp.cli, binance_mcp.server, binance_mcp.http.app, binance_mcp.tools.streams;"
        "sys.exit('websockets' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
