"""The REST client: exact decoding, weights handed to the governor, every error class, timeouts, proxies."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx
import pytest

from binance_common.errors import (
    BinanceAPIError,
    GeoBlockedError,
    InvalidIntervalError,
    InvalidParameterError,
    InvalidSymbolError,
    IPBannedError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from binance_common.rest import BinanceRest, decode_json, map_error
from binance_common.weights import request_weight


class RecordingGovernor:
    def __init__(self) -> None:
        self.acquired: list[int] = []
        self.observed: list[tuple[int, str | None, int]] = []
        self.offsets: list[int] = []

    async def acquire(self, weight: int, share: float = 1.0) -> None:
        self.acquired.append(weight)

    async def observe(self, status: int, headers: Mapping[str, str], weight: int) -> None:
        self.observed.append((status, headers.get("x-mbx-used-weight-1m"), weight))

    async def record_clock_offset(self, offset_ms: int) -> None:
        self.offsets.append(offset_ms)


def client(settings_factory, handler, governor=None, **kw: Any) -> BinanceRest:  # type: ignore[no-untyped-def]
    return BinanceRest(settings_factory(**kw), governor=governor, transport=httpx.MockTransport(handler))


def test_decode_keeps_every_digit() -> None:
    d = decode_json(b'{"a": 0.10000000, "b": "0.00000001", "c": 12}')
    assert d["a"] == Decimal("0.10000000") and str(d["a"]) == "0.10000000"
    assert d["b"] == "0.00000001"
    assert d["c"] == 12 and isinstance(d["c"], int)


@pytest.mark.parametrize(
    ("path", "params", "weight"),
    [
        ("/api/v3/ping", {}, 1),
        ("/api/v3/time", {}, 1),
        ("/api/v3/exchangeInfo", {}, 20),
        ("/api/v3/depth", {"symbol": "X"}, 5),
        ("/api/v3/depth", {"symbol": "X", "limit": "100"}, 5),
        ("/api/v3/depth", {"symbol": "X", "limit": "101"}, 25),
        ("/api/v3/depth", {"symbol": "X", "limit": "1000"}, 50),
        ("/api/v3/depth", {"symbol": "X", "limit": "5000"}, 250),
        ("/api/v3/trades", {"symbol": "X"}, 25),
        ("/api/v3/historicalTrades", {"symbol": "X"}, 25),
        ("/api/v3/aggTrades", {"symbol": "X"}, 4),
        ("/api/v3/klines", {"symbol": "X"}, 2),
        ("/api/v3/uiKlines", {"symbol": "X"}, 2),
        ("/api/v3/avgPrice", {"symbol": "X"}, 2),
        ("/api/v3/ticker/24hr", {"symbol": "X"}, 2),
        ("/api/v3/ticker/24hr", {}, 80),
        ("/api/v3/ticker/24hr", {"symbols": '["A","B"]'}, 2),
        ("/api/v3/ticker/24hr", {"symbols": json.dumps([f"S{i}" for i in range(21)])}, 40),
        ("/api/v3/ticker/24hr", {"symbols": json.dumps([f"S{i}" for i in range(101)])}, 80),
        ("/api/v3/ticker/tradingDay", {"symbol": "X"}, 4),
        ("/api/v3/ticker/tradingDay", {"symbols": json.dumps([f"S{i}" for i in range(50)])}, 200),
        ("/api/v3/ticker/tradingDay", {"symbols": json.dumps([f"S{i}" for i in range(51)])}, 200),
        ("/api/v3/ticker", {"symbols": '["A","B","C"]'}, 12),
        ("/api/v3/ticker/price", {"symbol": "X"}, 2),
        ("/api/v3/ticker/price", {"symbols": '["A"]'}, 4),
        ("/api/v3/ticker/price", {}, 4),
        ("/api/v3/ticker/bookTicker", {"symbol": "X"}, 2),
        ("/api/v3/ticker/bookTicker", {}, 4),
    ],
)
def test_weights(path: str, params: dict[str, str], weight: int) -> None:
    assert request_weight(path, params) == weight


async def test_governor_sees_weight_and_headers_and_params_are_encoded(settings_factory) -> None:  # type: ignore[no-untyped-def]
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=[], headers={"X-MBX-USED-WEIGHT-1M": "42"})

    g = RecordingGovernor()
    async with client(settings_factory, handler, g) as api:
        await api.get("/api/v3/ticker/24hr", {"symbols": ["BTCUSDT", "ETHUSDT"], "type": "MINI", "x": None})
        await api.get("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 500, "flag": True})
    assert g.acquired == [2, 25]
    assert g.observed == [(200, "42", 2), (200, "42", 25)]
    assert seen[0].url.params["symbols"] == '["BTCUSDT","ETHUSDT"]'
    assert "x" not in seen[0].url.params
    assert seen[1].url.params["flag"] == "true"
    assert api.last_used_weight == 42


async def test_server_time_records_clock_offset(settings_factory) -> None:  # type: ignore[no-untyped-def]
    import time

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"serverTime": int(time.time() * 1000) + 5000})

    g = RecordingGovernor()
    async with client(settings_factory, handler, g) as api:
        await api.server_time_ms()
    assert 4800 < api.clock_offset_ms < 5200
    assert g.offsets == [api.clock_offset_ms]
    assert api.last_round_trip_ms is not None


def _err(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return map_error(status, httpx.Headers(headers or {}), content, "/api/v3/x")


def test_error_mapping() -> None:
    e = _err(451, {"code": 0, "msg": "Service unavailable from a restricted location"})
    assert isinstance(e, GeoBlockedError) and not e.retryable
    assert "BINANCE_MCP_REST_BASE_URL" in str(e) and "BINANCE_MCP_PROXY" in str(e)
    e = _err(418, {"code": -1003, "msg": "banned"}, {"Retry-After": "300"})
    assert isinstance(e, IPBannedError) and e.retry_after_s == 300 and e.status == 418
    e = _err(429, {"code": -1003, "msg": "Too much request weight used"}, {"Retry-After": "9"})
    assert isinstance(e, RateLimitedError) and not isinstance(e, IPBannedError) and e.retry_after_s == 9
    for status in (500, 502, 503, 504):
        e = _err(status, b"<html>oops</html>")
        assert isinstance(e, ServerError) and "outcome is unknown" in str(e)
    e = _err(400, {"code": -1121, "msg": "Invalid symbol."})
    assert isinstance(e, InvalidSymbolError) and e.code == -1121
    e = _err(400, {"code": -1120, "msg": "Invalid interval."})
    assert isinstance(e, InvalidIntervalError) and "1m" in str(e) and "1M" in str(e)
    for code in (-1100, -1102, -1104, -1105, -1106, -1220):
        assert isinstance(_err(400, {"code": code, "msg": "bad"}), InvalidParameterError)
    e = _err(403, b"")
    assert isinstance(e, BinanceAPIError) and "firewall" in str(e)
    e = _err(400, {"code": -2011, "msg": "Unknown"})
    assert type(e) is BinanceAPIError and "-2011" in str(e)


async def test_http_errors_raise_typed_errors_and_are_observed(settings_factory) -> None:  # type: ignore[no-untyped-def]
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"code": -1003, "msg": "slow down"}, headers={"Retry-After": "3"})

    g = RecordingGovernor()
    async with client(settings_factory, handler, g) as api:
        with pytest.raises(RateLimitedError) as ei:
            await api.get("/api/v3/ping")
    assert ei.value.retry_after_s == 3
    assert g.observed[0][0] == 429


async def test_timeout_and_connection_errors(settings_factory) -> None:  # type: ignore[no-untyped-def]
    def slow(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=req)

    def refused(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=req)

    def broken(req: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed", request=req)

    def garbage(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"not json")

    async with client(settings_factory, slow, rest_timeout_s=2) as api:
        with pytest.raises(TransportError, match="within 2 s"):
            await api.get("/api/v3/ping")
    for h in (refused, broken):
        async with client(settings_factory, h) as api:
            with pytest.raises(TransportError, match="BINANCE_MCP_PROXY"):
                await api.get("/api/v3/ping")
    async with client(settings_factory, garbage) as api:
        with pytest.raises(ServerError, match="unreadable"):
            await api.get("/api/v3/ping")


async def test_real_timeout_is_bounded(settings_factory) -> None:  # type: ignore[no-untyped-def]
    """A server that never answers: the call fails after rest_timeout_s, not later."""

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(stall, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        api = BinanceRest(settings_factory(rest_base_url=f"http://127.0.0.1:{port}", rest_timeout_s=0.3))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(TransportError, match="did not answer"):
            await api.get("/api/v3/ping")
        assert loop.time() - t0 < 2
        await api.aclose()
    finally:
        server.close()


# --- proxies -----------------------------------------------------------------------------------------------
class Origin:
    """A tiny HTTP server standing in for Binance: answers every request with ``{}`` and records it."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        body = b'{"serverTime": 1700000000000}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-MBX-USED-WEIGHT-1M: 1\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
        )
        await writer.drain()
        writer.close()


async def test_http_forward_proxy_is_used(settings_factory) -> None:  # type: ignore[no-untyped-def]
    """With an http:// proxy, httpx sends absolute-form requests to the proxy: the base URL's host never
    has to resolve."""
    proxy = Origin()
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        settings = settings_factory(rest_base_url="http://binance.invalid", proxy=f"http://127.0.0.1:{port}")
        async with BinanceRest(settings) as api:
            assert await api.server_time_ms() == 1700000000000
        assert proxy.requests and proxy.requests[0].startswith(b"GET http://binance.invalid/api/v3/time HTTP/1.1")
    finally:
        server.close()


async def test_socks5_proxy_is_used(settings_factory) -> None:  # type: ignore[no-untyped-def]
    """A minimal SOCKS5 server (no auth, CONNECT by domain) relays to a local origin."""
    origin = Origin()
    origin_srv = await asyncio.start_server(origin.handle, "127.0.0.1", 0)
    origin_port = origin_srv.sockets[0].getsockname()[1]
    connects: list[tuple[str, int]] = []

    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        finally:
            w.close()

    async def socks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _ver, n = await reader.readexactly(2)
        await reader.readexactly(n)
        writer.write(b"\x05\x00")
        _ver, _cmd, _rsv, atyp = await reader.readexactly(4)
        if atyp == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        elif atyp == 1:
            host = ".".join(str(b) for b in await reader.readexactly(4))
        else:
            writer.close()
            return
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        connects.append((host, port))
        ur, uw = await asyncio.open_connection("127.0.0.1", origin_port)
        writer.write(b"\x05\x00\x00\x01" + bytes(4) + b"\x00\x00")
        await writer.drain()
        await asyncio.gather(pipe(reader, uw), pipe(ur, writer))

    socks_srv = await asyncio.start_server(socks, "127.0.0.1", 0)
    socks_port = socks_srv.sockets[0].getsockname()[1]
    try:
        settings = settings_factory(rest_base_url="http://binance.invalid:8080", proxy=f"socks5://127.0.0.1:{socks_port}")
        async with BinanceRest(settings) as api:
            assert await api.server_time_ms() == 1700000000000
        assert connects == [("binance.invalid", 8080)]
        assert origin.requests[0].startswith(b"GET /api/v3/time HTTP/1.1")
    finally:
        socks_srv.close()
        origin_srv.close()


async def test_unreachable_proxy_is_a_clear_transport_error(settings_factory) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory(rest_base_url="http://binance.invalid", proxy="http://127.0.0.1:1")
    async with BinanceRest(settings) as api:
        with pytest.raises(TransportError, match="BINANCE_MCP_PROXY"):
            await api.get("/api/v3/ping")


def test_retry_after_is_clamped_to_binances_longest_ban() -> None:
    from binance_common.errors import MAX_RETRY_AFTER_S, retry_after_s

    assert retry_after_s({"Retry-After": "7"}, 60) == 7.0
    assert retry_after_s({"retry-after": "inf"}, 60) == 60  # unreadable: the default, never OverflowError
    assert retry_after_s({"retry-after": "nan"}, 60) == 60
    assert retry_after_s({"retry-after": "1e300"}, 60) == MAX_RETRY_AFTER_S == 3 * 24 * 3600
    assert retry_after_s({"retry-after": "-5"}, 60) == 0.0
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 60) == 60
    assert retry_after_s({}, 12.5) == 12.5
