"""Settings, Redis key schema, models with exact decimals, and REST error mapping."""

from __future__ import annotations

from decimal import Decimal

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
from binance_common.keys import Keys
from binance_common.models import AggTrade, BookTicker, DepthUpdate, Trade, parse_payload
from binance_common.rest import BinanceRest, map_error
from binance_common.settings import Settings
from binance_common.weights import request_weight


def test_settings_env_and_toml(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('rest_base_url = "https://data-api.binance.vision/"\nstreams = ["btcusdt@trade"]\n')
    monkeypatch.setenv("BINANCE_MCP_CONFIG", str(cfg))
    monkeypatch.setenv("BINANCE_MCP_ORDER_BOOK_SYMBOLS", "BTCUSDT, ETHUSDT")
    s = Settings()
    assert s.rest_base_url == "https://data-api.binance.vision"
    assert s.streams == ["btcusdt@trade"]
    assert s.order_book_symbols == ["BTCUSDT", "ETHUSDT"]
    assert s.embedded
    monkeypatch.setenv("BINANCE_MCP_STREAMS", '["a@trade","b@trade"]')
    assert Settings().streams == ["a@trade", "b@trade"]  # env beats the file; JSON lists accepted


def test_a_config_file_that_is_not_there_is_refused_not_ignored(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINANCE_MCP_CONFIG", str(tmp_path / "typo.toml"))
    with pytest.raises(FileNotFoundError, match=r"BINANCE_MCP_CONFIG names '.*typo.toml', which is not a readable file"):
        Settings()


def test_status_and_check_without_a_redis_url_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without BINANCE_MCP_REDIS_URL they would read an empty in-memory store and say the daemon is down."""
    from typer.testing import CliRunner

    from binance_streamd import cli

    monkeypatch.delenv("BINANCE_MCP_REDIS_URL", raising=False)
    for command in ("status", "check"):
        out = CliRunner().invoke(cli.app, [command])
        assert out.exit_code == 2, out.output
        assert f"binance-streamd {command} reads the daemon's Redis: set BINANCE_MCP_REDIS_URL" in out.output


def test_settings_secrets_from_file_are_masked(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "key"
    f.write_text("s3cr3t\n")
    monkeypatch.setenv("BINANCE_MCP_API_KEY_FILE", str(f))
    s = Settings(redis_url="redis://user:pw@host:6379/0")
    assert s.api_key is not None and s.api_key.get_secret_value() == "s3cr3t"
    red = s.redacted()
    assert red["api_key"] == "***"
    assert "pw" not in red["redis_url"]
    assert "s3cr3t" not in repr(s)


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValueError):
        Settings(rest_base_url="ftp://x")
    with pytest.raises(ValueError):
        Settings(namespace="Bad Name")
    with pytest.raises(ValueError):
        Settings(max_streams_per_connection=2000)


def test_keys_layout() -> None:
    k = Keys("bnc")
    assert k.latest("btcusdt@trade") == "bnc:v1:latest:btcusdt@trade"
    assert k.history("btcusdt@trade") == "bnc:v1:hist:btcusdt@trade"
    assert k.book("btcusdt") == "bnc:v1:book:BTCUSDT"
    assert k.stream_from_status_key(k.status("x@trade")) == "x@trade"
    m = k.lease_member("btcusdt@trade", "host-1")
    assert k.split_lease_member(m) == ("btcusdt@trade", "host-1")
    with pytest.raises(ValueError):
        k.lease_member("btcusdt@trade", "a b")
    assert len({k.leases, k.always_on, k.heartbeat, k.daemon_stats, k.updates_channel, k.control_channel}) == 6


def test_models_keep_every_digit() -> None:
    t = parse_payload(
        "bnbbtc@trade",
        b'{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.00100000","q":"100","T":1672515782136,'
        b'"m":true,"M":true}',
    )
    assert isinstance(t, Trade)
    assert t.price == Decimal("0.00100000") and str(t.price) == "0.00100000"
    assert '"price":"0.00100000"' in t.model_dump_json()
    d = parse_payload(
        "bnbbtc@depth",
        {"e": "depthUpdate", "E": 1, "s": "BNBBTC", "U": 157, "u": 160, "b": [["0.0024", "10"]], "a": []},
    )
    assert isinstance(d, DepthUpdate) and d.bids[0] == (Decimal("0.0024"), Decimal("10"))
    b = parse_payload("bnbusdt@bookTicker", '{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000",'
                      '"a":"25.36520000","A":"40.66000000"}')
    assert isinstance(b, BookTicker) and str(b.ask_price) == "25.36520000"
    a = AggTrade.model_validate({"e": "aggTrade", "E": 1, "s": "X", "a": 5, "p": "1.10", "q": "2", "f": 1,
                                 "l": 2, "T": 1, "m": False, "M": True})
    assert a.agg_trade_id == 5


@pytest.mark.parametrize(
    ("status", "body", "headers", "cls", "needle"),
    [
        (400, b'{"code":-1121,"msg":"Invalid symbol."}', {}, InvalidSymbolError, "Invalid symbol"),
        (400, b'{"code":-1120,"msg":"Invalid interval."}', {}, InvalidIntervalError, "1s 1m 3m"),
        (400, b'{"code":-1102,"msg":"Mandatory parameter"}', {}, InvalidParameterError, "-1102"),
        (400, b'{"code":-2013,"msg":"Order does not exist."}', {}, BinanceAPIError, "-2013"),
        (451, b'{"code":0,"msg":"Service unavailable from a restricted location"}', {}, GeoBlockedError,
         "BINANCE_MCP_PROXY"),
        (429, b'{"code":-1003,"msg":"Too many requests"}', {"retry-after": "7"}, RateLimitedError, "7 s"),
        (418, b'{"code":-1003,"msg":"banned"}', {"retry-after": "120"}, IPBannedError, "120 s"),
        (503, b"<html>", {}, ServerError, "outcome is unknown"),
    ],
)
def test_error_mapping(status, body, headers, cls, needle) -> None:
    e = map_error(status, headers, body, "/api/v3/x")
    assert type(e) is cls
    assert needle in str(e)
    if isinstance(e, RateLimitedError):
        assert e.retry_after_s == float(headers["retry-after"])


def test_weights() -> None:
    assert request_weight("/api/v3/depth", {"limit": 100}) == 5
    assert request_weight("/api/v3/depth", {"limit": 5000}) == 250
    assert request_weight("/api/v3/ticker/24hr", {}) == 80
    assert request_weight("/api/v3/ticker/24hr", {"symbol": "BTCUSDT"}) == 2
    assert request_weight("/api/v3/ticker", {"symbols": ["A", "B", "C"]}) == 12
    assert request_weight("/api/v3/ticker/price", {}) == 4
    assert request_weight("/api/v3/exchangeInfo") == 20


async def test_rest_client_decodes_exactly_and_maps_transport_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v3/avgPrice":
            assert request.url.params["symbol"] == "BTCUSDT"
            return httpx.Response(200, content=b'{"mins":5,"price":9.35751834,"closeTime":1}',
                                  headers={"X-MBX-USED-WEIGHT-1M": "12"})
        raise httpx.ConnectTimeout("slow")

    async with BinanceRest(Settings(), transport=httpx.MockTransport(handler)) as rest:
        data = await rest.get("/api/v3/avgPrice", {"symbol": "BTCUSDT"})
        assert data["price"] == Decimal("9.35751834") and isinstance(data["price"], Decimal)
        assert rest.last_used_weight == 12
        with pytest.raises(TransportError, match="outcome is unknown"):
            await rest.get("/api/v3/time")


def test_configured_streams_take_the_symbol_in_any_case() -> None:
    from binance_common.settings import Settings

    s = Settings(streams="BTCUSDT@trade, EthUsdt@kline_1M,!miniTicker@arr")
    assert s.streams == ["btcusdt@trade", "ethusdt@kline_1M", "!miniTicker@arr"]
