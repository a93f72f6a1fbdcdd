"""The daemon's WebSocket connection (picows) against a small websockets server driven by each test:
proxies, fragmented messages, close codes, abrupt drops, backpressure and control acks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from binance_streamd.connection import WsConnection
from tests.support.waiting import wait_until

Got = list[tuple[str, bytes]]


class Server:
    """Answers SUBSCRIBE like Binance and lets the test push frames to the latest connection."""

    def __init__(self) -> None:
        self.conns: list[ServerConnection] = []
        self.requests: list[dict[str, Any]] = []
        self.port = 0

    async def handler(self, ws: ServerConnection) -> None:
        self.conns.append(ws)
        with contextlib.suppress(Exception):
            async for msg in ws:
                req = orjson.loads(msg)
                self.requests.append(req)
                await ws.send(orjson.dumps({"result": None, "id": req["id"]}).decode())
            await ws.wait_closed()

    @property
    def ws(self) -> ServerConnection:
        return self.conns[-1]


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    async with serve(srv.handler, "127.0.0.1", 0, compression=None) as s:
        srv.port = s.sockets[0].getsockname()[1]
        yield srv


def frame(stream: str, i: int) -> str:
    return '{"stream":"%s","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":%d,"p":"1.00","q":"2.00"}}' % (stream, i)


async def connect(server: Server, got: Got, **kw: Any) -> WsConnection:
    conn = WsConnection(f"ws://127.0.0.1:{server.port}", lambda c, s, p, r: got.append((s, p)), **kw)
    await conn.open()
    await conn.subscribe(["btcusdt@aggTrade"])
    return conn


async def test_data_frames_arrive_verbatim_and_subscribe_is_acknowledged(server: Server) -> None:
    got: Got = []
    conn = await connect(server, got)
    assert server.requests == [{"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 1}]
    assert conn.streams == {"btcusdt@aggTrade"}
    for i in range(100):
        await server.ws.send(frame("btcusdt@aggTrade", i))
    await wait_until(lambda: len(got) == 100)
    assert got[7] == ("btcusdt@aggTrade", b'{"e":"aggTrade","E":1,"s":"BTCUSDT","a":7,"p":"1.00","q":"2.00"}')
    assert conn.frames == 100
    await conn.close()
    assert conn.close_reason == "closing"


async def test_a_fragmented_message_is_reassembled(server: Server) -> None:
    got: Got = []
    conn = await connect(server, got)
    text = frame("btcusdt@aggTrade", 42)
    await server.ws.send([text[:10], text[10:50], text[50:]])  # an iterable: one message, three frames
    await server.ws.send(frame("btcusdt@aggTrade", 43))
    await wait_until(lambda: len(got) == 2)
    assert got[0][1].startswith(b'{"e":"aggTrade"') and b'"a":42' in got[0][1]
    assert b'"a":43' in got[1][1]
    await conn.close()


async def test_server_close_code_becomes_the_reason(server: Server) -> None:
    conn = await connect(server, [])
    await server.ws.close(1008, "Too many requests")
    await asyncio.wait_for(conn.closed.wait(), 5)
    assert conn.close_reason == "closed by server (1008)"


async def test_abrupt_drop_is_reported_and_pending_acks_are_released(server: Server) -> None:
    conn = await connect(server, [])
    server.ws.transport.abort()
    await asyncio.wait_for(conn.closed.wait(), 5)
    assert conn.close_reason == "closed by server (no close frame)"
    assert await conn._send_control("SUBSCRIBE", ["ethusdt@aggTrade"]) is not None  # refused, not hung


async def test_malformed_and_server_shutdown_frames_are_routed(server: Server) -> None:
    bad: list[bytes | str] = []
    shutdowns: list[WsConnection] = []
    got: Got = []
    conn = WsConnection(f"ws://127.0.0.1:{server.port}", lambda c, s, p, r: got.append((s, p)),
                        on_malformed=lambda c, f: bad.append(f), on_shutdown=shutdowns.append)
    await conn.open()
    await server.ws.send('{"stream":"btcusdt@aggTrade","data":{"a":1')  # truncated
    await server.ws.send(b"\x00\x01")  # binary garbage
    await server.ws.send('{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}')
    await server.ws.send('{"stream":"btcusdt@aggTrade","data":{"a":2}}')
    await wait_until(lambda: len(got) == 1)
    assert bad == [b'{"stream":"btcusdt@aggTrade","data":{"a":1', b"\x00\x01"]
    assert shutdowns == [conn]
    await conn.close()


class Gate:
    """A writer stand-in: congested until opened."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.checks = 0

    def congested(self) -> bool:
        self.checks += 1
        return not self.open.is_set()

    async def drained(self) -> None:
        await self.open.wait()


async def test_backpressure_stops_reading_until_drained(server: Server) -> None:
    got: Got = []
    gate = Gate()
    conn = await connect(server, got, backpressure=gate)
    for i in range(5_000):
        await server.ws.send(frame("btcusdt@aggTrade", i))
    await wait_until(lambda: conn._paused is not None)
    n = len(got)
    with pytest.raises(AssertionError):  # nothing more is read while paused: TCP pushes back on the server
        await wait_until(lambda: len(got) > n, timeout=0.5)
    assert n < 5_000
    gate.open.set()
    await wait_until(lambda: len(got) == 5_000)
    assert [orjson.loads(p)["a"] for _, p in got] == list(range(5_000))  # nothing lost or reordered
    await conn.close()


async def test_connects_through_an_http_connect_proxy(server: Server) -> None:
    seen: list[bytes] = []

    async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b"\r\n")[0])
        host, port = head.split()[1].decode().rsplit(":", 1)
        up_r, up_w = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    proxy = await asyncio.start_server(tunnel, "127.0.0.1", 0)
    pport = proxy.sockets[0].getsockname()[1]
    try:
        got: Got = []
        conn = await connect(server, got, proxy=f"http://127.0.0.1:{pport}")
        await server.ws.send(frame("btcusdt@aggTrade", 1))
        await wait_until(lambda: len(got) == 1)
        assert seen == [f"CONNECT 127.0.0.1:{server.port} HTTP/1.1".encode()]
        await conn.close()
    finally:
        proxy.close()
