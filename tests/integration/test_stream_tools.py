"""Stream tools through the real MCP client (in-process), against a real redis-server and a fake daemon."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from mcp import Client

from binance_common.keys import Keys
from tests.support.fake_feed import FakeDaemon, Replica, trade, wait_until


@pytest.fixture
async def r(redis_server) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def settings(settings_factory, redis_server):
    return settings_factory(redis_url=redis_server.url, lease_ttl_s=3.0, history_maxlen=10)


@pytest.fixture
async def daemon(r, keys) -> AsyncIterator[FakeDaemon]:
    async with FakeDaemon(r, keys, fail={"nosuchusdt@trade": "invalid symbol NOSUCHUSDT"}, history_maxlen=10) as d:
        yield d


@pytest.fixture
async def rep(settings, daemon) -> AsyncIterator[Replica]:
    """A started replica; tests open the client themselves (anyio scopes must not cross fixture tasks)."""
    async with Replica(settings) as replica:
        yield replica


async def call(c: Client, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    res = await c.call_tool(name, args or {})
    assert not res.is_error, res.content[0].text  # type: ignore[union-attr]
    assert res.structured_content is not None
    return res.structured_content


async def call_error(c: Client, name: str, args: dict[str, Any]) -> str:
    res = await c.call_tool(name, args)
    assert res.is_error, res.structured_content
    text = res.content[0].text  # type: ignore[union-attr]
    assert text.startswith(f"Error executing tool {name}: "), text  # an anticipated error, never a crash
    return text


async def test_subscribe_waits_until_live_and_latest_is_exact(rep: Replica, daemon: FakeDaemon) -> None:
    async with Client(rep.mcp) as client:
        out = await call(client, "subscribe_streams", {"streams": ["btcusdt@trade"], "wait_s": 5})
        assert out["live"] == 1 and out["subscriptions"][0]["state"] == "live"
        assert out["scope"] == "process" and out["daemon_alive"] is True
        assert out["subscriptions"][0]["freshness"]["source"] == "none"  # live but no message yet

        await daemon.emit("btcusdt@trade", trade("BTCUSDT", 7, price="0.00000010", qty="12.50000000"))
        latest = await call(client, "get_stream_latest", {"stream": "btcusdt@trade"})
        assert latest["decoded"] is True
        assert latest["data"]["price"] == "0.00000010"  # every digit Binance sent, never 1.0E-7
        assert latest["data"]["quantity"] == "12.50000000"
        assert latest["data"]["trade_id"] == 7
        f = latest["freshness"]
        assert f["source"] == "ws" and f["state"] == "live" and f["stale"] is False
        assert 0 <= f["age_ms"] < 5000 and f["as_of"].endswith("+00:00") and f["event_time_ms"]

        raw = await call(client, "get_stream_latest", {"stream": "btcusdt@trade", "raw": True})
        assert raw["decoded"] is False and raw["data"]["p"] == "0.00000010"


async def test_subscribe_by_kind_covers_the_seed_tools(rep: Replica, daemon: FakeDaemon, r, keys: Keys) -> None:
    async with Client(rep.mcp) as client:
        cases: list[tuple[dict[str, Any], list[str]]] = [
            ({"kind": "trade", "symbols": ["BTCUSDT", "ethusdt"]}, ["btcusdt@trade", "ethusdt@trade"]),
            ({"kind": "kline", "symbols": ["BTCUSDT"], "interval": "1m"}, ["btcusdt@kline_1m"]),
            ({"kind": "ticker", "symbols": ["BTCUSDT"]}, ["btcusdt@ticker"]),
            ({"kind": "rollingTicker", "symbols": ["BTCUSDT"], "window": "4h"}, ["btcusdt@ticker_4h"]),
            ({"kind": "bookTicker", "symbols": ["BTCUSDT"]}, ["btcusdt@bookTicker"]),
            ({"kind": "depth", "symbols": ["BTCUSDT"], "levels": 10, "update_speed_ms": 100}, ["btcusdt@depth10@100ms"]),
            ({"kind": "depth", "symbols": ["BTCUSDT"]}, ["btcusdt@depth"]),
            ({"kind": "allMiniTickers"}, ["!miniTicker@arr"]),
        ]
        for args, expected in cases:
            out = await call(client, "subscribe_streams", {**args, "wait_s": 5})
            assert [s["stream"] for s in out["subscriptions"]] == expected
            assert all(s["state"] == "live" for s in out["subscriptions"]), out
        listed = await call(client, "list_stream_subscriptions", {"mine_only": True})
        assert listed["total"] == 9 and all(s["yours"] for s in listed["subscriptions"])
        assert all(s["status"]["state"] == "live" for s in listed["subscriptions"])


async def test_subscribe_reports_failed_streams(rep: Replica) -> None:
    async with Client(rep.mcp) as client:
        out = await call(client, "subscribe_streams", {"streams": ["nosuchusdt@trade", "btcusdt@trade"], "wait_s": 5})
        by = {s["stream"]: s for s in out["subscriptions"]}
        assert by["nosuchusdt@trade"]["state"] == "failed"
        assert "invalid symbol" in by["nosuchusdt@trade"]["reason"]
        assert by["btcusdt@trade"]["state"] == "live"
        assert out["failed"] == 1 and out["live"] == 1


async def test_subscribe_without_daemon_returns_at_once(settings) -> None:
    async with Replica(settings) as rep, Client(rep.mcp) as c:
        out = await call(c, "subscribe_streams", {"streams": ["btcusdt@trade"], "wait_s": 30})
        assert out["daemon_alive"] is False and out["pending"] == 1
        assert out["waited_ms"] < 5000 and "not running" in out["note"]
        # the lease is recorded all the same, for the daemon to honour when it starts
        listed = await call(c, "list_stream_subscriptions")
        assert listed["subscriptions"][0]["stream"] == "btcusdt@trade"


async def test_latest_without_data_says_the_state(rep: Replica) -> None:
    async with Client(rep.mcp) as client:
        out = await call(client, "get_stream_latest", {"stream": "ethusdt@bookTicker"})
        assert out["data"] is None
        assert out["freshness"] == {
            "as_of_ms": None, "as_of": None, "age_ms": None, "event_time_ms": None, "source": "none", "stale": True,
            "stale_after_ms": 30000, "state": "not_subscribed", "reason": None,
        }


async def test_history_last_n_then_since_cursor(rep: Replica, daemon: FakeDaemon) -> None:
    async with Client(rep.mcp) as client:
        for i in range(5):
            await daemon.emit("btcusdt@trade", trade("BTCUSDT", i))
        h = await call(client, "get_stream_history", {"stream": "btcusdt@trade", "count": 3})
        assert [e["data"]["trade_id"] for e in h["entries"]] == [2, 3, 4]
        assert h["missed"] == 0 and h["retained"] == 5 and h["cap"] == 10
        assert h["next_cursor"].endswith(":5")
        for i in range(5, 7):
            await daemon.emit("btcusdt@trade", trade("BTCUSDT", i))
        h2 = await call(client, "get_stream_history", {"stream": "btcusdt@trade", "since": h["next_cursor"]})
        assert [e["data"]["trade_id"] for e in h2["entries"]] == [5, 6]
        assert h2["missed"] == 0 and h2["next_cursor"].endswith(":7")
        # nothing new: same cursor back, no wait
        h3 = await call(client, "get_stream_history", {"stream": "btcusdt@trade", "since": h2["next_cursor"]})
        assert h3["entries"] == [] and h3["next_cursor"] == h2["next_cursor"] and h3["waited_ms"] == 0


async def test_history_counts_entries_the_cap_trimmed(rep: Replica, daemon: FakeDaemon) -> None:
    async with Client(rep.mcp) as client:
        for i in range(5):
            await daemon.emit("btcusdt@trade", trade("BTCUSDT", i))
        cur = (await call(client, "get_stream_history", {"stream": "btcusdt@trade", "count": 1}))["next_cursor"]
        for i in range(5, 25):
            await daemon.emit("btcusdt@trade", trade("BTCUSDT", i))
        h = await call(client, "get_stream_history", {"stream": "btcusdt@trade", "since": cur, "count": 1000})
        # entries 5..14 were trimmed by the cap of 10 before they were read; 15..24 are kept
        assert h["missed"] == 10
        assert [e["data"]["trade_id"] for e in h["entries"]] == list(range(15, 25))
        assert h["entries"][0]["cursor"].endswith(":16")
        # "0" = from the oldest kept entry; missed counts everything trimmed since the start
        h0 = await call(client, "get_stream_history", {"stream": "btcusdt@trade", "since": "0", "count": 2})
        assert h0["missed"] == 15 and [e["data"]["trade_id"] for e in h0["entries"]] == [15, 16]
        # a bare Redis id that was trimmed: missed cannot be known
        bare = cur.split(":")[0]
        hb = await call(client, "get_stream_history", {"stream": "btcusdt@trade", "since": bare, "count": 1})
        assert hb["missed"] is None and hb["entries"][0]["data"]["trade_id"] == 15


async def test_history_waits_for_new_data(rep: Replica, daemon: FakeDaemon, r) -> None:
    async with Client(rep.mcp) as client:
        await daemon.emit("btcusdt@trade", trade("BTCUSDT", 1))
        cur = (await call(client, "get_stream_history", {"stream": "btcusdt@trade", "count": 1}))["next_cursor"]
        blocked_before = (await r.info("clients"))["blocked_clients"]
        task = asyncio.create_task(
            call(client, "get_stream_history", {"stream": "btcusdt@trade", "since": cur, "wait_s": 20})
        )

        async def blocked() -> bool:
            return (await r.info("clients"))["blocked_clients"] > blocked_before

        await wait_until(blocked)  # the tool is parked in XREAD BLOCK
        await daemon.emit("btcusdt@trade", trade("BTCUSDT", 2))
        h = await asyncio.wait_for(task, 10)
        assert [e["data"]["trade_id"] for e in h["entries"]] == [2]
        assert 0 < h["waited_ms"] < 15000


async def test_history_wait_is_bounded(rep: Replica, daemon: FakeDaemon) -> None:
    async with Client(rep.mcp) as client:
        await daemon.emit("btcusdt@trade", trade("BTCUSDT", 1))
        cur = (await call(client, "get_stream_history", {"stream": "btcusdt@trade", "count": 1}))["next_cursor"]
        h = await call(client, "get_stream_history", {"stream": "btcusdt@trade", "since": cur, "wait_s": 0.3})
        assert h["entries"] == [] and h["waited_ms"] >= 250 and h["next_cursor"] == cur


async def test_history_marks_backfilled_entries(rep: Replica, daemon: FakeDaemon) -> None:
    async with Client(rep.mcp) as client:
        await daemon.emit("btcusdt@trade", trade("BTCUSDT", 1))
        await daemon.emit("btcusdt@trade", trade("BTCUSDT", 2), backfilled=True)
        h = await call(client, "get_stream_history", {"stream": "btcusdt@trade"})
        assert [e["source"] for e in h["entries"]] == ["ws", "rest"]
        assert h["freshness"]["source"] == "rest"


async def test_history_rejects_bad_cursors(rep: Replica, daemon: FakeDaemon) -> None:
    async with Client(rep.mcp) as client:
        for i in range(3):
            await daemon.emit("btcusdt@trade", trade("BTCUSDT", i))
        h = await call(client, "get_stream_history", {"stream": "btcusdt@trade"})
        first = h["entries"][0]["cursor"]
        ms = int(first.split("-")[0])
        msg = await call_error(client, "get_stream_history", {"stream": "btcusdt@trade", "since": "yesterday"})
        assert "invalid cursor" in msg and "next_cursor" in msg
        msg = await call_error(client, "get_stream_history", {"stream": "btcusdt@trade", "since": f"{ms + 10**9}-0"})
        assert "after the last entry" in msg
        msg = await call_error(client, "get_stream_history", {"stream": "btcusdt@trade", "since": f"{ms}-999999:2"})
        assert "does not name an entry" in msg or "after the last entry" in msg
        msg = await call_error(client, "get_stream_history", {"stream": "btcusdt@trade", "since": f"{first.split(':')[0]}:999"})
        assert "history was reset" in msg
        msg = await call_error(client, "get_stream_history", {"stream": "ethusdt@trade", "since": first})
        assert "no history for ethusdt@trade" in msg


async def test_live_order_book(rep: Replica, daemon: FakeDaemon) -> None:
    async with Client(rep.mcp) as client:
        await daemon.write_book(
            "BTCUSDT",
            bids=[["99.50", "1.00000000"], ["100.00", "2.5"], ["98.00", "10"], ["95.00", "100"]],
            asks=[["100.10", "0.5"], ["100.50", "1.25"], ["103.00", "7"]],
            last_update_id=42,
        )
        out = await call(client, "get_live_order_book", {"symbol": "btcusdt", "levels": 2, "band_pct": 1})
        assert out["symbol"] == "BTCUSDT" and out["last_update_id"] == 42
        assert out["bids"] == [{"price": "100.00", "quantity": "2.5"}, {"price": "99.50", "quantity": "1.00000000"}]
        assert out["asks"][0] == {"price": "100.10", "quantity": "0.5"}
        assert out["best_bid"] == "100.00" and out["best_ask"] == "100.10"
        assert out["mid"] == "100.05" and out["spread"] == "0.10" and out["spread_bps"] == "9.9950"
        d = out["depth"]
        # band 1% of 100.05: [99.0495, 101.0505] -> bids 100.00, 99.50; asks 100.10, 100.50
        assert d["bid_levels"] == 2 and d["ask_levels"] == 2
        assert d["bid_quantity"] == "3.50000000" and d["ask_quantity"] == "1.75"
        assert d["bid_notional"] == "349.5000000000" and d["ask_notional"] == "175.6750"
        assert out["levels_available"] == {"bids": 4, "asks": 3}
        assert out["freshness"]["stale"] is False and out["freshness"]["source"] == "ws"
        assert d["complete"] is True  # the band ends at 99.0495 / 101.0505, inside 95.00 .. 103.00
        wide = (await call(client, "get_live_order_book", {"symbol": "BTCUSDT", "band_pct": 5}))["depth"]
        assert wide["complete"] is False and wide["ask_levels"] == 3  # up to 105.0525, past 103.00: a lower bound


async def test_order_book_missing_says_how_to_get_one(rep: Replica) -> None:
    async with Client(rep.mcp) as client:
        msg = await call_error(client, "get_live_order_book", {"symbol": "ETHUSDT"})
        assert "ORDER_BOOK_SYMBOLS" in msg and "ethusdt@depth@100ms" in msg and "subscribe_streams" in msg


async def test_feed_status(rep: Replica, daemon: FakeDaemon) -> None:
    async with Client(rep.mcp) as client:
        await call(client, "subscribe_streams", {"streams": ["btcusdt@trade", "nosuchusdt@trade"], "wait_s": 5})
        out = await call(client, "get_feed_status")
        assert out["daemon_alive"] is True and out["heartbeat"]["host"] == "fake"
        assert out["heartbeat_age_ms"] is not None and out["redis_ok"] is True
        assert out["streams_by_state"] == {"live": 1, "failed": 1}
        assert out["problems"] == [{"stream": "nosuchusdt@trade", "state": "failed", "reason": "invalid symbol NOSUCHUSDT"}]
        assert out["leased_streams"] == 2 and out["stats"]["connections"] == 1 and out["stats"]["streams"] == 2


async def test_unsubscribe_and_cleanup(rep: Replica, daemon: FakeDaemon, r, keys: Keys) -> None:
    async with Client(rep.mcp) as client:
        await call(client, "subscribe_streams", {"kind": "trade", "symbols": ["BTCUSDT", "ETHUSDT", "BNBUSDT"], "wait_s": 5})
        out = await call(client, "unsubscribe_streams", {"streams": ["btcusdt@trade", "xrpusdt@trade"]})
        assert out["released"] == ["btcusdt@trade"] and out["not_held"] == ["xrpusdt@trade"]
        assert out["still_wanted_by_others"] == []
        await wait_until(lambda: "btcusdt@trade" not in daemon.active)
        out = await call(client, "unsubscribe_all_streams")
        assert sorted(out["released"]) == ["bnbusdt@trade", "ethusdt@trade"]
        await wait_until(lambda: not daemon.active)
        assert await r.zcard(keys.leases) == 0
        assert (await call(client, "list_stream_subscriptions"))["total"] == 0


async def test_two_holders_share_one_upstream_subscription(settings, daemon: FakeDaemon, r, keys: Keys) -> None:
    async with Replica(settings) as a, Replica(settings) as b, Client(a.mcp) as ca, Client(b.mcp) as cb:
        await call(ca, "subscribe_streams", {"streams": ["btcusdt@trade"]})
        out = await call(cb, "subscribe_streams", {"streams": ["btcusdt@trade"]})
        assert out["live"] == 1
        assert daemon.upstream_subscribes["btcusdt@trade"] == 1
        listed = await call(cb, "list_stream_subscriptions")
        assert listed["subscriptions"][0]["holders"] == 2
        out = await call(ca, "unsubscribe_streams", {"streams": ["btcusdt@trade"]})
        assert out["still_wanted_by_others"] == ["btcusdt@trade"]
        await daemon.reconcile()
        assert "btcusdt@trade" in daemon.active
        await call(cb, "unsubscribe_streams", {"streams": ["btcusdt@trade"]})
        await wait_until(lambda: "btcusdt@trade" not in daemon.active)
        assert daemon.upstream_subscribes["btcusdt@trade"] == 1


async def test_leases_are_renewed_while_connected_and_released_on_exit(settings, daemon, r, keys: Keys) -> None:
    async with Replica(settings) as rep, Client(rep.mcp) as c:
        await call(c, "subscribe_streams", {"streams": ["btcusdt@trade"]})
        member = Keys.lease_member("btcusdt@trade", rep.rt.holder)
        first = await r.zscore(keys.leases, member)
        renewals = rep.rt.leases.renewals
        await wait_until(lambda: rep.rt.leases.renewals >= renewals + 2, timeout=10)
        assert await r.zscore(keys.leases, member) > first  # renewed at ~ttl/3
        await daemon.reconcile()
        assert "btcusdt@trade" in daemon.active  # outlived its first ttl (3 s) because it was renewed
    assert await r.zscore(keys.leases, member) is None  # clean exit releases (stdio leases die with the process)
    await wait_until(lambda: "btcusdt@trade" not in daemon.active)


async def test_bad_inputs_get_clear_errors(rep: Replica) -> None:
    async with Client(rep.mcp) as client:
        bad: list[tuple[str, dict[str, Any], str]] = [
            ("get_stream_latest", {"stream": "btcusdt@nope"}, "unknown stream type"),
            ("get_stream_latest", {"stream": "BTCUSDT@trade"}, "lowercase"),
            ("get_stream_latest", {"stream": "btc*usdt@trade"}, "lowercase"),
            ("get_stream_latest", {"stream": "btcusdt@trade\r\nFLUSHALL"}, "invalid stream"),
            ("get_stream_latest", {"stream": "../btcusdt@trade"}, "invalid stream"),
            ("get_stream_latest", {"stream": "btc usdt@trade"}, "invalid stream"),
            ("get_stream_latest", {"stream": "!ticker@arr"}, "retired"),
            ("get_stream_history", {"stream": "btcusdt@trade", "count": 10**9}, "less than or equal to 1000"),
            ("get_stream_history", {"stream": "btcusdt@trade", "count": 0}, "greater than or equal to 1"),
            ("get_stream_history", {"stream": "btcusdt@trade", "since": "1-0", "wait_s": -1}, "greater than or equal to 0"),
            ("get_stream_history", {"stream": "btcusdt@trade", "wait_s": 3600}, "less than or equal to 30"),
            ("get_stream_history", {"stream": "btcusdt@trade", "wait_s": 1}, "wait_s needs since"),
            ("get_stream_history", {"stream": "btcusdt@trade", "since": "*"}, "invalid cursor"),
            ("subscribe_streams", {}, "nothing to subscribe"),
            ("subscribe_streams", {"kind": "kline", "symbols": ["BTCUSDT"], "interval": "7m"}, "kline interval"),
            ("subscribe_streams", {"kind": "trade"}, "needs at least one symbol"),
            ("subscribe_streams", {"symbols": ["BTCUSDT"]}, "without kind"),
            ("subscribe_streams", {"kind": "trade", "symbols": ["BTC USDT"]}, "invalid symbol"),
            ("subscribe_streams", {"kind": "trade", "symbols": ["btc\nusdt"]}, "invalid symbol"),
            ("subscribe_streams", {"kind": "bogus", "symbols": ["BTCUSDT"]}, "Input should be"),
            ("subscribe_streams", {"streams": [f"s{i}usdt@trade" for i in range(101)]}, "at most 100"),
            ("subscribe_streams", {"streams": ["btcusdt@trade"], "wait_s": -5}, "greater than or equal to 0"),
            ("get_live_order_book", {"symbol": "BTC*"}, "invalid symbol"),
            ("get_live_order_book", {"symbol": "BTCUSDT", "levels": 100000}, "less than or equal to 1000"),
            ("get_live_order_book", {"symbol": "BTCUSDT", "band_pct": -1}, "greater than 0"),
            ("unsubscribe_streams", {"streams": []}, "at least 1"),
            ("unsubscribe_streams", {"streams": ["x y"]}, "invalid stream"),
        ]
        for name, args, expect in bad:
            msg = await call_error(client, name, args)
            assert expect in msg, (name, args, msg)


async def test_no_key_is_built_from_a_bad_name(rep: Replica, r, keys: Keys) -> None:
    async with Client(rep.mcp) as client:
        for s in ["btcusdt@trade*", "*", "btcusdt@trade\n", "a@trade\r\nDEL x", "..", "btcusdt@trade ", " btcusdt@trade"]:
            await call_error(client, "get_stream_latest", {"stream": s})
            await call_error(client, "subscribe_streams", {"streams": [s]})
        assert [k async for k in r.scan_iter(match=keys.prefix + "*")] == [keys.heartbeat.encode(), keys.daemon_stats.encode()] or \
            sorted([k async for k in r.scan_iter(match=keys.prefix + "*")]) == sorted(
                [keys.heartbeat.encode(), keys.daemon_stats.encode()]
            )
        assert orjson.loads(await r.get(keys.heartbeat))["host"] == "fake"


async def test_redis_down_gives_a_clear_error_not_a_crash(settings_factory) -> None:
    from tests.support.redis_server import free_port

    dead = settings_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with Replica(dead) as rep, Client(rep.mcp) as client:
        cases: list[tuple[str, dict[str, Any]]] = [
            ("get_stream_latest", {"stream": "btcusdt@trade"}),
            ("subscribe_streams", {"streams": ["btcusdt@trade"]}),
            ("get_stream_history", {"stream": "btcusdt@trade", "since": "0", "wait_s": 1}),
            ("get_feed_status", {}),
        ]
        for name, args in cases:
            msg = await call_error(client, name, args)
            assert "Redis" in msg and "unreachable" in msg, msg
