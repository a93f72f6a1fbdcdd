"""Resources, URI grammar, the throttled Redis bus, and live update notifications for both protocol eras."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated, ToolsListChanged
from mcp_types import ResourceUpdatedNotification

from binance_common.keys import Keys
from binance_mcp.resources.bus import PerKeyThrottle, RedisSubscriptionBus
from binance_mcp.resources.uris import ResourceURIError, canonical_uri, parse_uri, uris_for_update
from tests.support.fake_feed import FakeDaemon, Replica, trade, wait_until

pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")

# --- URI grammar (pure) ------------------------------------------------------------------------------


def test_uri_parsing_and_canonical_form() -> None:
    assert parse_uri("binance://stream/btcusdt@trade").streams == ("btcusdt@trade",)
    assert canonical_uri("binance://stream/btcusdt%40kline_1m") == "binance://stream/btcusdt@kline_1m"
    assert canonical_uri("binance://book/btcusdt") == "binance://book/BTCUSDT"
    assert parse_uri("binance://book/btcusdt").streams == ()  # books are the daemon's configured symbols
    assert parse_uri("binance://ticker/ethusdt").streams == ("ethusdt@ticker",)
    assert canonical_uri("binance://stream/!miniTicker@arr") == "binance://stream/!miniTicker@arr"
    assert parse_uri("binance://feed/status").streams == ()
    for bad in [
        "http://x", "binance://stream/", "binance://stream/BTCUSDT@trade", "binance://stream/a/b",
        "binance://book/BTC*", "binance://nope/x", "binance://stream/..", "binance://stream/btcusdt@trade%0d%0a",
        "binance://feed/other", "", "binance://ticker/" + "A" * 30,
    ]:
        with pytest.raises(ResourceURIError) as e:
            parse_uri(bad)
        assert "binance://" in str(e.value)


def test_update_names_map_to_uris() -> None:
    assert uris_for_update("btcusdt@trade") == ("binance://stream/btcusdt@trade",)
    assert uris_for_update("btcusdt@ticker") == ("binance://stream/btcusdt@ticker", "binance://ticker/BTCUSDT")
    assert uris_for_update("book:BTCUSDT") == ("binance://book/BTCUSDT",)
    assert uris_for_update("!miniTicker@arr") == ("binance://stream/!miniTicker@arr",)


# --- throttle (pure, fake clock) ---------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0
        self.timers: list[tuple[float, Any]] = []

    def __call__(self) -> float:
        return self.t

    def call_later(self, delay: float, fn: Any) -> None:
        self.timers.append((self.t + delay, fn))

    def advance(self, dt: float) -> None:
        self.t += dt
        due = [x for x in self.timers if x[0] <= self.t]
        self.timers = [x for x in self.timers if x[0] > self.t]
        for _, fn in sorted(due, key=lambda x: x[0]):
            fn()


def test_throttle_leading_and_trailing_edge_per_key() -> None:
    clock = FakeClock()
    out: list[tuple[float, str]] = []
    th = PerKeyThrottle(0.25, lambda k: out.append((clock.t, k)), clock=clock, call_later=clock.call_later)
    th.push("a")  # leading edge: at once
    for _ in range(10):
        clock.advance(0.01)
        th.push("a")  # coalesced into one trailing delivery
    th.push("b")  # another key is independent
    assert out == [(100.0, "a"), (pytest.approx(100.1), "b")]
    clock.advance(0.2)  # t = 100.3 > 100.25: the trailing "a" fires
    assert [k for _, k in out] == ["a", "b", "a"]
    clock.advance(1.0)
    assert [k for _, k in out] == ["a", "b", "a"]  # nothing pending, nothing more
    th.push("a")
    assert [k for _, k in out] == ["a", "b", "a", "a"]  # quiet long enough: leading edge again


# --- the Redis bus -----------------------------------------------------------------------------------


@pytest.fixture
async def two_buses(keys: Keys) -> AsyncIterator[tuple[RedisSubscriptionBus, RedisSubscriptionBus, Any]]:
    import fakeredis

    server = fakeredis.FakeServer()
    ra = fakeredis.FakeAsyncRedis(server=server)
    rb = fakeredis.FakeAsyncRedis(server=server)
    a, b = RedisSubscriptionBus(keys), RedisSubscriptionBus(keys)
    await a.start(ra)
    await b.start(rb)
    assert a.ready.is_set() and b.ready.is_set()
    yield a, b, ra
    await a.stop()
    await b.stop()
    await ra.aclose()
    await rb.aclose()


async def test_bus_fans_daemon_updates_out_to_interested_listeners_only(two_buses, keys: Keys) -> None:
    a, b, r = two_buses
    got_a: list[Any] = []
    got_b: list[Any] = []
    a.subscribe(got_a.append)
    unsub_b = b.subscribe(got_b.append)
    a.add_interest(["binance://stream/btcusdt@trade", "binance://ticker/BTCUSDT"])
    await r.publish(keys.updates_channel, "btcusdt@trade\nethusdt@trade\nbtcusdt@ticker")
    await wait_until(lambda: len(got_a) == 2)
    assert set(got_a) == {ResourceUpdated("binance://stream/btcusdt@trade"), ResourceUpdated("binance://ticker/BTCUSDT")}
    assert got_b == []  # replica B has no listener interested in these URIs
    # events published through a bus (ctx.notify_*) reach every replica
    await b.publish(ResourceUpdated("binance://stream/xrpusdt@trade"))
    await b.publish(ToolsListChanged())
    await wait_until(lambda: ToolsListChanged() in got_a and ToolsListChanged() in got_b)
    assert ResourceUpdated("binance://stream/xrpusdt@trade") in got_a and ResourceUpdated(
        "binance://stream/xrpusdt@trade"
    ) in got_b
    unsub_b()
    unsub_b()  # idempotent


async def test_bus_throttles_bursts_but_delivers_the_last_change(two_buses, keys: Keys) -> None:
    a, _b, r = two_buses
    got: list[Any] = []
    a.subscribe(got.append)
    uri = "binance://stream/btcusdt@trade"
    a.add_interest([uri])
    for _ in range(50):
        await r.publish(keys.updates_channel, "btcusdt@trade")
    await wait_until(lambda: len(got) >= 2)  # leading edge + trailing edge
    a.remove_interest([uri])
    await r.publish(keys.updates_channel, "btcusdt@trade")
    await asyncio.sleep(0)  # let the pump see it; interest is gone, so nothing more may arrive
    assert 2 <= len(got) <= 3 and set(got) == {ResourceUpdated(uri)}


# --- resources through the real client ---------------------------------------------------------------


@pytest.fixture
def settings(settings_factory, redis_server):
    return settings_factory(redis_url=redis_server.url, lease_ttl_s=3.0, history_maxlen=50)


@pytest.fixture
async def r(redis_server) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def daemon(r, keys) -> AsyncIterator[FakeDaemon]:
    async with FakeDaemon(r, keys) as d:
        yield d


def _json(result: Any) -> Any:
    return orjson.loads(result.contents[0].text)


async def test_resource_templates_and_reads(settings, daemon: FakeDaemon) -> None:
    async with Replica(settings) as rep, Client(rep.mcp) as c:
        templates = {t.uri_template for t in (await c.list_resource_templates()).resource_templates}
        assert templates == {"binance://stream/{stream}", "binance://book/{symbol}", "binance://ticker/{symbol}"}
        assert [x.uri for x in (await c.list_resources()).resources] == ["binance://feed/status"]

        await daemon.emit("btcusdt@trade", trade("BTCUSDT", 3, price="65000.01000000"))
        s = _json(await c.read_resource("binance://stream/btcusdt@trade"))
        assert s["data"]["price"] == "65000.01000000" and s["freshness"]["source"] == "ws"
        s2 = _json(await c.read_resource("binance://stream/btcusdt%40trade"))
        assert s2["data"] == s["data"]

        ticker = {
            "e": "24hrTicker", "E": 1, "s": "BTCUSDT", "p": "1.5", "P": "0.002", "w": "65000", "x": "64999",
            "c": "65001.00", "Q": "0.1", "b": "65000.99", "B": "1", "a": "65001.01", "A": "2", "o": "64000",
            "h": "66000", "l": "63000", "v": "1000", "q": "65000000", "O": 0, "C": 1, "F": 1, "L": 2, "n": 2,
        }
        await daemon.emit("btcusdt@ticker", ticker)
        t = _json(await c.read_resource("binance://ticker/btcusdt"))
        assert t["stream"] == "btcusdt@ticker" and t["data"]["last_price"] == "65001.00"

        b = _json(await c.read_resource("binance://book/BTCUSDT"))
        assert b["available"] is False and "ORDER_BOOK_SYMBOLS" in b["note"]
        await daemon.write_book("BTCUSDT", bids=[["10.0", "1"]], asks=[["10.2", "3"]])
        b = _json(await c.read_resource("binance://book/BTCUSDT"))
        assert b["best_bid"] == "10.0" and b["spread"] == "0.2" and b["depth"]["ask_quantity"] == "3"

        f = _json(await c.read_resource("binance://feed/status"))
        assert f["daemon_alive"] is True

        for bad in ["binance://stream/BTC@trade", "binance://stream/btcusdt@nope", "binance://book/B*"]:
            with pytest.raises(MCPError) as e:
                await c.read_resource(bad)
            assert "invalid" in str(e.value) or "Unknown resource" in str(e.value)


async def test_listen_2026_notifies_of_feed_updates_and_leases_the_stream(settings, daemon, r, keys) -> None:
    uri = "binance://stream/btcusdt@trade"
    async with Replica(settings) as a, Replica(settings) as b, Client(a.mcp) as ca, Client(b.mcp) as cb:
        assert ca.protocol_version == "2026-07-28"
        async with ca.listen(resource_subscriptions=[uri, "binance://book/BTCUSDT"]) as sub:
            assert set(sub.honored.resource_subscriptions or []) == {uri, "binance://book/BTCUSDT"}
            # the listen stream leased the streams behind the URIs, so the daemon carries them
            await wait_until(lambda: "btcusdt@trade" in daemon.active)
            # replica B takes a tool subscription too; data written by the daemon reaches A's listener
            await cb.call_tool("subscribe_streams", {"streams": ["btcusdt@trade"]})
            await daemon.emit("btcusdt@trade", trade("BTCUSDT", 1))
            event = await asyncio.wait_for(sub.__anext__(), 10)
            assert event == ResourceUpdated(uri)
            await daemon.write_book("BTCUSDT", bids=[["1", "1"]], asks=[["2", "1"]])
            event = await asyncio.wait_for(sub.__anext__(), 10)
            assert event == ResourceUpdated("binance://book/BTCUSDT")
        # the listen stream closed: its leases go (the server side unwinds asynchronously), B's lease remains

        async def only_b_left() -> bool:
            leases = await a.rt.leases.snapshot()
            return set(leases) == {"btcusdt@trade"} and list(leases["btcusdt@trade"]) == [b.rt.holder]

        await wait_until(only_b_left)


async def test_listen_rejects_unknown_uris_clearly(settings, daemon) -> None:
    async with Replica(settings) as a, Client(a.mcp) as c:
        with pytest.raises(MCPError) as e:
            async with c.listen(resource_subscriptions=["binance://stream/btc usdt@trade"]):
                pass
        assert "invalid stream" in str(e.value) or "bad resource URI" in str(e.value)


async def test_legacy_resources_subscribe_notifies_and_releases(settings, daemon, r, keys) -> None:
    received: list[str] = []

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            received.append(message.params.uri)

    uri = "binance://stream/ethusdt@aggTrade"
    async with Replica(settings) as a, Replica(settings) as b:
        async with Client(a.mcp, mode="legacy", message_handler=on_message) as c, Client(b.mcp) as cb:
            assert c.server_capabilities.resources is not None and c.server_capabilities.resources.subscribe is True
            await c.subscribe_resource("binance://stream/ethusdt%40aggTrade")  # any accepted spelling
            await wait_until(lambda: "ethusdt@aggTrade" in daemon.active)
            await cb.call_tool("subscribe_streams", {"streams": ["ethusdt@aggTrade"]})  # another replica, too
            agg = {"e": "aggTrade", "E": 1, "s": "ETHUSDT", "a": 1, "p": "1.0", "q": "2", "f": 1, "l": 1, "T": 1,
                   "m": False, "M": True}
            await daemon.emit("ethusdt@aggTrade", agg)
            await wait_until(lambda: received)
            assert received[0] == "binance://stream/ethusdt%40aggTrade"  # echoed in the client's own spelling
            await c.unsubscribe_resource(uri)
            assert not a.rt.bus.interested(uri)  # the replica stops forwarding this URI at once
            n = len(received)
            await daemon.emit("ethusdt@aggTrade", agg)
            await cb.call_tool("get_stream_latest", {"stream": "ethusdt@aggTrade"})  # a round trip later...
            assert len(received) == n  # ...no notification after unsubscribe
            with pytest.raises(MCPError) as e:
                await c.subscribe_resource("binance://nope/x")
            assert "allowed" in str(e.value)
            await c.subscribe_resource("binance://ticker/BNBUSDT")
            await wait_until(lambda: "bnbusdt@ticker" in daemon.active)
        # the legacy connection closed: the leases it took are released
        await wait_until(lambda: "bnbusdt@ticker" not in daemon.active)
        snap = await a.rt.leases.snapshot()
        assert "bnbusdt@ticker" not in snap


# --- fuzzing -----------------------------------------------------------------------------------------

URI_PARTS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["btcusdt@trade", "BTCUSDT", "..", "*", "%2e%2e", "a%0d%0ab", "btc usdt", "!miniTicker@arr",
                     "btcusdt%40trade", "", "/", "x" * 100, "\x00"]),
)
URIS = st.one_of(
    st.builds(lambda k, v: f"binance://{k}/{v}", st.sampled_from(["stream", "book", "ticker", "feed", "x"]), URI_PARTS),
    st.text(max_size=60),
)


@settings_(max_examples=300, deadline=None)
@given(uri=URIS)
def test_parse_uri_accepts_or_explains(uri: str) -> None:
    try:
        t = parse_uri(uri)
    except ResourceURIError as e:
        assert "binance://" in str(e)
        return
    assert parse_uri(t.uri) == t  # canonical form is stable
    assert all(" " not in s and "*" not in s and "\n" not in s for s in t.streams)


async def test_fuzzed_resource_reads_never_crash(settings, daemon: FakeDaemon) -> None:
    loop = asyncio.get_running_loop()
    bad: list[str] = []
    async with Replica(settings) as rep, Client(rep.mcp) as c:

        async def one(uri: str) -> None:
            try:
                await c.read_resource(uri)
            except MCPError as e:
                if str(e).startswith("Error reading resource") or str(e).startswith("Error creating resource"):
                    bad.append(f"{uri!r}: {e}")

        @settings_(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(uri=URIS)
        def run(uri: str) -> None:
            asyncio.run_coroutine_threadsafe(one(uri), loop).result(timeout=30)

        await asyncio.to_thread(run)
    assert not bad, bad[:5]
