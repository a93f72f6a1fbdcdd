"""The stream-name grammar: every stream type in the facts doc parses; anything else is refused clearly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binance_common.streams import (
    KLINE_INTERVALS,
    StreamKind,
    StreamNameError,
    SymbolError,
    build_stream,
    normalize_symbol,
    parse_stream,
    stream_symbol,
)

VALID = {
    "btcusdt@trade": (StreamKind.TRADE, "BTCUSDT"),
    "btcusdt@aggTrade": (StreamKind.AGG_TRADE, "BTCUSDT"),
    "bnbbtc@kline_1M": (StreamKind.KLINE, "BNBBTC"),
    "bnbbtc@kline_1s@+08:00": (StreamKind.KLINE, "BNBBTC"),
    "ethusdt@miniTicker": (StreamKind.MINI_TICKER, "ETHUSDT"),
    "!miniTicker@arr": (StreamKind.ALL_MINI_TICKERS, None),
    "ethusdt@ticker": (StreamKind.TICKER, "ETHUSDT"),
    "ethusdt@ticker_4h": (StreamKind.ROLLING_TICKER, "ETHUSDT"),
    "!ticker_1d@arr": (StreamKind.ALL_ROLLING_TICKERS, None),
    "ethusdt@bookTicker": (StreamKind.BOOK_TICKER, "ETHUSDT"),
    "ethusdt@avgPrice": (StreamKind.AVG_PRICE, "ETHUSDT"),
    "ethusdt@depth5": (StreamKind.PARTIAL_DEPTH, "ETHUSDT"),
    "ethusdt@depth20@100ms": (StreamKind.PARTIAL_DEPTH, "ETHUSDT"),
    "ethusdt@depth": (StreamKind.DEPTH, "ETHUSDT"),
    "ethusdt@depth@100ms": (StreamKind.DEPTH, "ETHUSDT"),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_names_parse(name: str) -> None:
    spec = parse_stream(name)
    assert (spec.kind, spec.symbol) == VALID[name]
    assert spec.name == name
    assert stream_symbol(name) == VALID[name][1]


def test_every_kline_interval() -> None:
    for i in KLINE_INTERVALS:
        assert parse_stream(f"btcusdt@kline_{i}").interval == i


def test_depth_details() -> None:
    spec = parse_stream("ethusdt@depth10@100ms")
    assert (spec.levels, spec.speed_ms) == (10, 100)
    assert parse_stream("ethusdt@depth").speed_ms == 1000
    assert parse_stream("ethusdt@depth@100ms").sequenced
    assert not parse_stream("ethusdt@depth5").sequenced


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("BTCUSDT@trade", "lowercase"),
        ("btcusdt@kline_2m", "kline interval '2m'"),
        ("btcusdt@kline_1H", "kline interval '1H'"),
        ("btcusdt@depth7", "5, 10 or 20"),
        ("btcusdt@depth@500ms", "@100ms"),
        ("btcusdt@ticker_2h", "1h, 4h, 1d"),
        ("!ticker@arr", "retired"),
        ("btcusdt", "expected <symbol>@<type>"),
        ("btcusdt@", "expected <symbol>@<type>"),
        ("btc usdt@trade", "lowercase"),
        ("btcusdt@trade\r\nFLUSHALL", "unknown stream type"),
        ("btcusdt@kline_1m@+8", "timezone"),
        ("", "non-empty"),
        ("a" * 80 + "@trade", "64 characters"),
    ],
)
def test_invalid_names_say_what_is_allowed(name: str, needle: str) -> None:
    with pytest.raises(StreamNameError) as e:
        parse_stream(name)
    assert needle in str(e.value)
    assert "Allowed forms" in str(e.value)


def test_build_stream() -> None:
    assert build_stream("kline", "BTCUSDT", interval="1h") == "btcusdt@kline_1h"
    assert build_stream("depth", "ethusdt", levels=10, speed_ms=100) == "ethusdt@depth10@100ms"
    assert build_stream("depth", "ethusdt") == "ethusdt@depth"
    assert build_stream("bookTicker", "bnbbtc") == "bnbbtc@bookTicker"
    assert build_stream("allMiniTickers") == "!miniTicker@arr"
    assert build_stream("rollingTicker", "BTCUSDT", window="1h") == "btcusdt@ticker_1h"
    with pytest.raises(StreamNameError, match="unknown stream kind"):
        build_stream("orders", "BTCUSDT")
    with pytest.raises(StreamNameError, match="kline interval"):
        build_stream("kline", "BTCUSDT", interval="7m")
    with pytest.raises(SymbolError):
        build_stream("trade", "BTC USDT")
    assert build_stream("trade", "BTC/USDT") == "btcusdt@trade"


def test_normalize_symbol() -> None:
    assert normalize_symbol(" btcusdt ") == "BTCUSDT"
    for bad in ("", "BTC USDT", "/", "X" * 21, "btc*", "a:b", "..", "-", "_", "btcusdtı", "ＢＴＣ"):
        with pytest.raises(SymbolError, match="e.g. BTCUSDT"):
            normalize_symbol(bad)


@given(st.text(max_size=70))
def test_parse_never_crashes_and_valid_names_are_safe(text: str) -> None:
    try:
        spec = parse_stream(text)
    except StreamNameError:
        return
    # Anything accepted is safe to embed in a Redis key and a Binance SUBSCRIBE.
    assert not any(c in spec.name for c in " \r\n\t*?[]{}\"'\\")
    assert spec.name == text


HOSTILE = ["btcusdt\n@trade", "btcusdt@trade\n", "btcusdt@kline_1m@+08:00\n", "..@trade", "-@trade", "_@aggTrade",
           "btcusdt@depth５", "btcusdt@depth²", "btcusdt@depth05", "btcusdt@depth020@100ms", "btcusdt@kline_1m@",
           "btcusdt@kline_1m@+0８:00", "bt\u0131@trade", "btcusdt@trade\x00", " btcusdt@trade", "btcusdt@ticker_1h\n"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(name: str) -> None:
    with pytest.raises(StreamNameError, match="Allowed forms"):
        parse_stream(name)


_pieces = st.sampled_from(["btcusdt", "@", "trade", "aggTrade", "kline_1m", "@+08:00", "depth", "5", "10",
                           "@100ms", "!miniTicker@arr", "ticker_1h", "\n", "５", "²", ".", "-", "ı", " ", "\x00"])


@given(st.one_of(st.text(max_size=70), st.lists(_pieces, max_size=8).map("".join)))
def test_every_accepted_name_is_safe_and_round_trips(name: str) -> None:
    from binance_common.streams import STREAM_CHARS_RE

    try:
        spec = parse_stream(name)
    except StreamNameError:
        return
    assert STREAM_CHARS_RE.fullmatch(spec.name) and spec.name == name
    assert parse_stream(spec.name) == spec


def test_partial_depth_needs_its_levels() -> None:
    from binance_common.streams import build_stream

    with pytest.raises(StreamNameError) as ei:
        build_stream("partialDepth", "BTCUSDT")
    assert str(ei.value) == "a partialDepth stream needs levels: 5, 10 or 20 (without levels: kind depth)"
    assert build_stream("depth", "BTCUSDT") == "btcusdt@depth"
    assert build_stream("partialDepth", "BTCUSDT", levels=5) == "btcusdt@depth5"
