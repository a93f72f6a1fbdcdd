"""The simulator is a product quality tool: these tests hold it to Binance's documented behaviour."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.recordings import reconstruct_from_recording
from tests.support.sim import BinanceSim, SimConfig


async def recv_json(ws: Any, timeout: float = 5.0) -> Any:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws: Any, pred: Any, timeout: float = 5.0, limit: int = 10_000) -> Any:
    async def loop() -> Any:
        for _ in range(limit):
            msg = orjson.loads(await ws.recv())
            if pred(msg):
                return msg
        raise AssertionError("predicate never matched")

    return await asyncio.wait_for(loop(), timeout)


@pytest.fixture
async def sim():
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT"], rate=100.0)) as s:
        yield s


async def test_rest_shapes_weights_and_errors(sim: BinanceSim) -> None:
    async with httpx.AsyncClient(base_url=sim.rest_url) as c:
        r = await c.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 10})
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {"lastUpdateId", "bids", "asks"} and len(body["bids"]) == 10
        assert Decimal(body["bids"][0][0]) < Decimal(body["asks"][0][0])
        w1 = int(r.headers["x-mbx-used-weight-1m"])
        r = await c.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5000})
        assert int(r.headers["x-mbx-used-weight-1m"]) == w1 + 250
        cases = [
            ({"symbol": "NOPE"}, "/api/v3/depth", -1121),
            ({}, "/api/v3/depth", -1102),
            ({"symbol": "btcusdt"}, "/api/v3/trades", -1100),
            ({"symbol": "BTCUSDT", "interval": "1H"}, "/api/v3/klines", -1120),
            ({"symbol": "BTCUSDT", "windowSize": "61m"}, "/api/v3/ticker", -1100),
            ({"symbol": "BTCUSDT", "symbols": '["BTCUSDT"]'}, "/api/v3/ticker/price", -1101),
        ]
        for params, path, code in cases:
            r = await c.get(path, params=params)
            assert r.status_code == 400 and r.json()["code"] == code, (path, params, r.text)
        k = (await c.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": 3})).json()
        assert len(k) == 3 and all(len(row) == 12 for row in k)
        t = (await c.get("/api/v3/ticker/24hr", params={"symbols": '["BTCUSDT","ETHUSDT"]', "type": "MINI"})).json()
        assert [x["symbol"] for x in t] == ["BTCUSDT", "ETHUSDT"] and "lastPrice" in t[0]
        info = (await c.get("/api/v3/exchangeInfo", params={"symbol": "ETHUSDT"})).json()
        assert info["symbols"][0]["baseAsset"] == "ETH"
        assert {f["filterType"] for f in info["symbols"][0]["filters"]} >= {"PRICE_FILTER", "LOT_SIZE", "NOTIONAL"}


async def test_rest_weight_limit_429_then_418() -> None:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=0, weight_limit=30)) as s:
        async with httpx.AsyncClient(base_url=s.rest_url) as c:
            statuses = [(await c.get("/api/v3/trades", params={"symbol": "BTCUSDT"})).status_code for _ in range(2)]
            assert statuses == [200, 429]
            r = await c.get("/api/v3/ping")
            assert r.status_code == 418 and int(r.headers["retry-after"]) > 0
            assert r.json()["code"] == -1003


async def test_rest_faults(sim: BinanceSim) -> None:
    async with httpx.AsyncClient(base_url=sim.rest_url) as c:
        sim.faults.rest_fault(status=451)
        r = await c.get("/api/v3/ping")
        assert r.status_code == 451 and "restricted location" in r.json()["msg"]
        sim.faults.rest_fault(status=503, path="depth")
        assert (await c.get("/api/v3/ping")).status_code == 200  # only depth is faulted
        assert (await c.get("/api/v3/depth", params={"symbol": "BTCUSDT"})).status_code == 503
        # over HTTP, as a subprocess test would do it
        r = await c.post("/_sim/rest_fault", json={"status": 429, "retry_after": 3})
        assert r.json()["ok"]
        r = await c.get("/api/v3/ping")
        assert r.status_code == 429 and r.headers["retry-after"] == "3"
        assert (await c.post("/_sim/nope")).status_code == 400


async def test_subscribe_unsubscribe_list_and_errors(sim: BinanceSim) -> None:
    async with websockets.connect(sim.ws_url + "/stream") as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade", "ethusdt@aggTrade"], "id": 1}))
        assert await recv_until(ws, lambda m: m.get("id") == 1) == {"result": None, "id": 1}
        msg = await recv_until(ws, lambda m: m.get("stream") == "btcusdt@trade")
        assert msg["data"]["e"] == "trade" and msg["data"]["s"] == "BTCUSDT"
        await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": "x"}))
        await recv_until(ws, lambda m: m.get("id") == "x")
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 3}))
        assert (await recv_until(ws, lambda m: m.get("id") == 3))["result"] == ["ethusdt@aggTrade"]
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["nosuch@trade"], "id": 4}))
        err = await recv_until(ws, lambda m: m.get("id") == 4)
        assert err["code"] == 2 and "nosuch@trade" in err["msg"]
    async with websockets.connect(sim.ws_url + "/ws") as ws:
        await ws.send(json.dumps({"method": "FOO", "id": 5}))
        err = await recv_until(ws, lambda m: m.get("id") == 5)
        assert err["code"] == 2 and "unknown variant" in err["msg"]
        await ws.send("{bad")
        assert (await recv_until(ws, lambda m: "code" in m))["code"] == 3


async def test_raw_stream_and_bad_handshake(sim: BinanceSim) -> None:
    async with websockets.connect(sim.ws_url + "/ws/ethusdt@bookTicker") as ws:
        m = await recv_json(ws)
        assert set(m) == {"u", "s", "b", "B", "a", "A"}
    with pytest.raises(InvalidStatus) as e:
        async with websockets.connect(sim.ws_url + "/stream?streams=btcusdt@kline_7m"):
            pass
    assert e.value.response.status_code == 400


async def test_message_rate_limit_disconnects(sim: BinanceSim) -> None:
    async with websockets.connect(sim.ws_url + "/ws") as ws:
        for i in range(7):
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        with pytest.raises(ConnectionClosed) as e:
            for _ in range(100):
                await asyncio.wait_for(ws.recv(), 5)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1008
    assert sim.stats["rate_limit_disconnects"] == 1


async def test_stream_limit_1024() -> None:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=0, max_streams=3)) as s:
        async with websockets.connect(s.ws_url + "/ws") as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "id": 1,
                                      "params": ["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@depth", "btcusdt@ticker"]}))
            err = await recv_json(ws)
            assert err["code"] == 2 and "too many" in err["msg"]
    assert SimConfig().max_streams == 1024


async def test_lifetime_close_with_server_shutdown() -> None:
    cfg = SimConfig(symbols=["BTCUSDT"], rate=0, connection_lifetime=0.5, shutdown_before_close=True)
    async with BinanceSim(cfg) as s:
        async with websockets.connect(s.ws_url + "/stream?streams=btcusdt@trade") as ws:
            m = await recv_json(ws)
            assert m["stream"] == "!serverShutdown" and m["data"]["e"] == "serverShutdown"
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)


async def test_pong_timeout_drops_silent_client() -> None:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=0, ping_interval=0.2, pong_timeout=0.2)) as s:
        # a raw client that completes the handshake and then never answers a ping
        host, port = s.ws_url.removeprefix("ws://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /ws/btcusdt@trade HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101")

        async def until_eof() -> bytes:
            data = b""
            while chunk := await reader.read(4096):
                data += chunk
            return data

        data = await asyncio.wait_for(until_eof(), 10)
        assert data[:1] == b"\x89"  # the server pinged first, then gave up on us
        writer.close()


async def test_faults_drop_stall_malformed_and_handshake_reject(sim: BinanceSim) -> None:
    async with websockets.connect(sim.ws_url + "/stream?streams=btcusdt@trade") as ws:
        await recv_json(ws)
        sim.faults.malformed("invalid_json")
        await recv_until_raw(ws, b"{not json")
        sim.faults.malformed("binary")
        await recv_until_raw(ws, b"\x00\x01\x02")
        assert sim.faults.drop_connections() == 1
        with pytest.raises(ConnectionClosed) as e:
            for _ in range(10_000):
                await asyncio.wait_for(ws.recv(), 5)
        assert e.value.rcvd is None  # abrupt: no close frame
    sim.faults.reject_handshakes_next(1)
    with pytest.raises(InvalidStatus):
        async with websockets.connect(sim.ws_url + "/ws/btcusdt@trade"):
            pass
    async with websockets.connect(sim.ws_url + "/ws/btcusdt@trade") as ws:
        await recv_json(ws)
        sim.faults.stall(0.6)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        times = [t0]
        while times[-1] - t0 < 1.0:  # frames queued before the stall may still arrive; then a silence
            await recv_json(ws)
            times.append(loop.time())
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert max(gaps) >= 0.4, gaps


async def recv_until_raw(ws: Any, needle: bytes, timeout: float = 5.0) -> None:
    async def loop() -> None:
        while True:
            m = await ws.recv()
            raw = m if isinstance(m, bytes) else m.encode()
            if raw == needle:
                return

    await asyncio.wait_for(loop(), timeout)


async def test_trade_ids_contiguous_and_match_rest_and_dropped_trades_are_in_rest(sim: BinanceSim) -> None:
    ids: list[int] = []
    async with websockets.connect(sim.ws_url + "/ws/btcusdt@trade") as ws:
        while len(ids) < 20:
            ids.append((await recv_json(ws))["t"])
        sim.faults.drop_trades("BTCUSDT", 5)
        while len(ids) < 40:
            ids.append((await recv_json(ws))["t"])
    gaps = [(a, b) for a, b in zip(ids, ids[1:], strict=False) if b != a + 1]
    assert len(gaps) == 1 and gaps[0][1] - gaps[0][0] - 1 >= 5
    async with httpx.AsyncClient(base_url=sim.rest_url) as c:
        rows = (await c.get("/api/v3/historicalTrades",
                            params={"symbol": "BTCUSDT", "fromId": gaps[0][0], "limit": 1000})).json()
    got = [r["id"] for r in rows]
    assert got[: gaps[0][1] - gaps[0][0] + 1] == list(range(gaps[0][0], gaps[0][1] + 1))


async def test_depth_snapshot_plus_diffs_rebuilds_the_sims_book(sim: BinanceSim) -> None:
    m = sim.market("BTCUSDT")
    async with websockets.connect(sim.ws_url + "/ws/btcusdt@depth@100ms") as ws:
        first = await recv_json(ws)
        async with httpx.AsyncClient(base_url=sim.rest_url) as c:
            snap = (await c.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5000})).json()
        bids = {p: q for p, q in snap["bids"]}
        asks = {p: q for p, q in snap["asks"]}
        book_id = snap["lastUpdateId"]
        events = [first]
        while len(events) < 4:
            events.append(await recv_json(ws))
        sim.faults.pause()
        sim.hub.flush_depth(m, 100, 0)  # emit what accumulated since the last 100 ms flush
        while events[-1]["u"] < m.update_id:
            events.append(await recv_json(ws))
        applied = 0
        for ev in events:
            if ev["u"] <= book_id:
                continue
            assert ev["U"] <= book_id + 1, "gap in the simulator's diff stream"
            for side, levels in ((bids, ev["b"]), (asks, ev["a"])):
                for p, q in levels:
                    if Decimal(q) == 0:
                        side.pop(p, None)
                    else:
                        side[p] = q
            book_id = ev["u"]
            applied += 1
        assert book_id == m.update_id
        assert bids == {m.px(p): m.qty(q) for p, q in m.bids.items()}
        assert asks == {m.px(p): m.qty(q) for p, q in m.asks.items()}
        assert applied >= 1


async def test_cli_prints_urls() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.sim", "--port", "0", "--rate", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)  # type: ignore[union-attr]
        urls = json.loads(line)
        assert urls["rest_url"].startswith("http://127.0.0.1:") and urls["ws_url"].startswith("ws://127.0.0.1:")
        async with httpx.AsyncClient() as c:
            assert (await c.get(urls["rest_url"] + "/api/v3/ping")).json() == {}
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


async def test_replay_sends_recorded_frames_byte_exact(recording_path: Path) -> None:
    from tests.support.sim.replay import load

    rd = load(recording_path)
    streams = sorted(rd.streams)
    async with BinanceSim(SimConfig(symbols=[], rate=0, replay=recording_path, replay_speed="max")) as s:
        got: list[tuple[str, bytes]] = []
        async with websockets.connect(s.ws_url + "/stream?streams=" + "/".join(streams)) as ws:
            await s.replay_done(30)
            while len(got) < len(rd.frames):
                raw = await asyncio.wait_for(ws.recv(), 5)
                from tests.support.sim.replay import split_combined

                got.append(split_combined(raw.encode() if isinstance(raw, str) else raw))
        sym = sorted(rd.depth)[0]
        async with httpx.AsyncClient(base_url=s.rest_url) as c:
            snap = (await c.get("/api/v3/depth", params={"symbol": sym, "limit": 1000})).json()
            assert snap["lastUpdateId"] == rd.depth[sym]["lastUpdateId"]
            info = (await c.get("/api/v3/exchangeInfo", params={"symbol": sym})).json()
            assert info["symbols"][0]["symbol"] == sym
    assert got == [(st, p) for _, st, p in rd.frames]
    books = reconstruct_from_recording(recording_path)
    assert set(books) == set(rd.depth) and len(books) == 4
