"""The stream-name grammar in detail: exact specs, exact refusals and build_stream for every stream kind.

test_shared_streams.py checks that each form parses and that bad names are refused; this file pins the parsed
fields, the full error messages (each names the offending input and the allowed forms) and every build path.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binance_common.streams import (
    ALLOWED_FORMS,
    KLINE_INTERVALS,
    TICKER_WINDOWS,
    StreamKind,
    StreamNameError,
    StreamSpec,
    SymbolError,
    build_stream,
    normalize_symbol,
    parse_stream,
    validate_stream,
)

INTERVALS_TEXT = "1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M"
WINDOWS_TEXT = "1h, 4h, 1d"


def refusal(name: str, why: str) -> str:
    """The exact message of a refused stream name."""
    return f"invalid stream {name!r}: {why}. Allowed forms: {ALLOWED_FORMS}"


def test_allowed_forms_lists_every_form() -> None:
    for form in (
        "<symbol>@trade",
        "<symbol>@kline_<interval>[@+HH:MM]",
        "!miniTicker@arr",
        "!ticker_<1h|4h|1d>@arr",
        "<symbol>@depth<5|10|20>[@100ms]",
        "intervals: " + INTERVALS_TEXT,
    ):
        assert form in ALLOWED_FORMS


# --- parse_stream: the full spec -------------------------------------------------------------------------------

SPECS = [
    StreamSpec("!ticker_1h@arr", StreamKind.ALL_ROLLING_TICKERS, window="1h"),
    StreamSpec("!ticker_4h@arr", StreamKind.ALL_ROLLING_TICKERS, window="4h"),
    StreamSpec("!miniTicker@arr", StreamKind.ALL_MINI_TICKERS),
    StreamSpec("ethusdt@ticker_1d", StreamKind.ROLLING_TICKER, "ETHUSDT", window="1d"),
    StreamSpec("btcusdt@kline_1m", StreamKind.KLINE, "BTCUSDT", interval="1m"),
    StreamSpec("btcusdt@kline_1h@+08:00", StreamKind.KLINE, "BTCUSDT", interval="1h", timezone="+08:00"),
    StreamSpec("btcusdt@kline_1w@-05:30", StreamKind.KLINE, "BTCUSDT", interval="1w", timezone="-05:30"),
    StreamSpec("btcusdt@depth", StreamKind.DEPTH, "BTCUSDT", speed_ms=1000),
    StreamSpec("btcusdt@depth@100ms", StreamKind.DEPTH, "BTCUSDT", speed_ms=100),
    StreamSpec("btcusdt@depth20", StreamKind.PARTIAL_DEPTH, "BTCUSDT", levels=20, speed_ms=1000),
    StreamSpec("btcusdt@depth5@100ms", StreamKind.PARTIAL_DEPTH, "BTCUSDT", levels=5, speed_ms=100),
    StreamSpec("1000satsusdt@avgPrice", StreamKind.AVG_PRICE, "1000SATSUSDT"),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_parse_gives_the_full_spec(spec: StreamSpec) -> None:
    assert parse_stream(spec.name) == spec
    assert validate_stream(spec.name) == spec.name


def test_sequenced_kinds() -> None:
    assert parse_stream("btcusdt@trade").sequenced
    assert parse_stream("btcusdt@aggTrade").sequenced
    for name in ("btcusdt@kline_1m", "btcusdt@bookTicker", "!miniTicker@arr", "btcusdt@ticker"):
        assert not parse_stream(name).sequenced


# --- parse_stream: exact refusals -------------------------------------------------------------------------------

REFUSALS = [
    ("", "expected a non-empty name of at most 64 characters"),
    ("a" * 65, "expected a non-empty name of at most 64 characters"),
    # 64 characters is still within the length limit: refused for its shape, not its length.
    ("a" * 64, "expected <symbol>@<type>"),
    ("btcusdt", "expected <symbol>@<type>"),
    ("btcusdt@", "expected <symbol>@<type>"),
    ("!ticker_2h@arr", f"rolling window must be one of {WINDOWS_TEXT}"),
    ("!ticker_@arr", f"rolling window must be one of {WINDOWS_TEXT}"),
    ("!ticker@arr", "!ticker@arr was retired by Binance in 2026; use !miniTicker@arr"),
    ("BTCUSDT@trade", "symbol part 'BTCUSDT' must be lowercase letters/digits, e.g. btcusdt"),
    ("@trade", "symbol part '' must be lowercase letters/digits, e.g. btcusdt"),
    ("btcusdt@kline_2m", f"kline interval '2m' is not one of {INTERVALS_TEXT}"),
    ("btcusdt@kline_", f"kline interval '' is not one of {INTERVALS_TEXT}"),
    ("btcusdt@kline_1m@+8", "kline timezone '+8' must look like +08:00 or -05:00 (from -12:00 to +14:00)"),
    ("btcusdt@kline_1m@+15:00", "kline timezone '+15:00' must look like +08:00 or -05:00 (from -12:00 to +14:00)"),
    ("btcusdt@kline_1m@-12:01", "kline timezone '-12:01' must look like +08:00 or -05:00 (from -12:00 to +14:00)"),
    ("btcusdt@kline_1m@+14:01", "kline timezone '+14:01' must look like +08:00 or -05:00 (from -12:00 to +14:00)"),
    ("btcusdt@kline_1m@", "kline timezone '' must look like +08:00 or -05:00 (from -12:00 to +14:00)"),
    ("btcusdt@ticker_2h", f"rolling window must be one of {WINDOWS_TEXT}"),
    ("btcusdt@depth@500ms", "depth speed must be @100ms or omitted (1000 ms)"),
    ("btcusdt@depth5@1000ms", "depth speed must be @100ms or omitted (1000 ms)"),
    ("btcusdt@depth7", "partial depth levels must be 5, 10 or 20"),
    ("btcusdt@depthx@100ms", "partial depth levels must be 5, 10 or 20"),
    ("btcusdt@orders", "unknown stream type 'orders'"),
    ("btcusdt@Trade", "unknown stream type 'Trade'"),
]


@pytest.mark.parametrize(("name", "why"), REFUSALS, ids=lambda v: repr(v)[:30])
def test_refusal_names_the_input_and_the_allowed_forms(name: str, why: str) -> None:
    with pytest.raises(StreamNameError) as e:
        parse_stream(name)
    assert str(e.value) == refusal(name, why)
    with pytest.raises(StreamNameError):
        validate_stream(name)


def test_overlong_name_is_echoed_truncated_to_80_characters() -> None:
    with pytest.raises(StreamNameError) as e:
        parse_stream("a" * 100)
    assert str(e.value) == refusal("a" * 80, "expected a non-empty name of at most 64 characters")


def test_non_string_name_is_refused_not_crashed() -> None:
    with pytest.raises(StreamNameError) as e:
        parse_stream(12345)  # type: ignore[arg-type]
    assert str(e.value) == refusal("12345", "expected a non-empty name of at most 64 characters")


# --- normalize_symbol -------------------------------------------------------------------------------------------


def test_normalize_symbol_messages() -> None:
    with pytest.raises(SymbolError) as e:
        normalize_symbol(None)  # type: ignore[arg-type]
    assert str(e.value) == "symbol must be a string such as BTCUSDT"
    with pytest.raises(SymbolError) as e:
        normalize_symbol("BTC USDT")
    assert str(e.value) == (
        "invalid symbol 'BTC USDT': use the pair's letters and digits without separators, "
        "e.g. BTCUSDT (1-20 characters: A-Z 0-9 - _ .)"
    )
    assert normalize_symbol("BTC/USDT") == normalize_symbol(" btc/usdt ") == "BTCUSDT"  # as people write it


def test_normalize_symbol_keeps_allowed_punctuation_and_length() -> None:
    assert normalize_symbol("btc-usd_t.1") == "BTC-USD_T.1"
    assert normalize_symbol("x" * 20) == "X" * 20


# --- build_stream -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("trade", "btcusdt@trade"),
        ("TRADE", "btcusdt@trade"),
        ("aggTrade", "btcusdt@aggTrade"),
        ("aggtrade", "btcusdt@aggTrade"),
        ("miniTicker", "btcusdt@miniTicker"),
        (" MINITICKER ", "btcusdt@miniTicker"),
        ("ticker", "btcusdt@ticker"),
        ("Ticker", "btcusdt@ticker"),
        ("bookTicker", "btcusdt@bookTicker"),
        ("avgPrice", "btcusdt@avgPrice"),
        ("AVGPRICE", "btcusdt@avgPrice"),
    ],
)
def test_build_simple_kinds(kind: str, expected: str) -> None:
    assert build_stream(kind, "BtcUsdt") == expected


@pytest.mark.parametrize(
    ("kind", "stream_kind"),
    [
        ("trade", StreamKind.TRADE),
        ("aggTrade", StreamKind.AGG_TRADE),
        ("miniTicker", StreamKind.MINI_TICKER),
        ("ticker", StreamKind.TICKER),
        ("bookTicker", StreamKind.BOOK_TICKER),
        ("avgPrice", StreamKind.AVG_PRICE),
    ],
)
def test_built_simple_kinds_parse_back(kind: str, stream_kind: StreamKind) -> None:
    name = build_stream(kind, " ethbtc ")
    assert parse_stream(name) == StreamSpec(name, stream_kind, "ETHBTC")


@pytest.mark.parametrize("kind", ["allMiniTickers", "ALLMINITICKERS", "!miniTicker@arr", "!miniticker@arr"])
def test_build_all_mini_tickers(kind: str) -> None:
    assert build_stream(kind) == "!miniTicker@arr"


@pytest.mark.parametrize("window", TICKER_WINDOWS)
def test_build_all_rolling_tickers(window: str) -> None:
    assert build_stream("allRollingTickers", window=window) == f"!ticker_{window}@arr"
    assert build_stream("ALLROLLINGTICKERS", window=window) == f"!ticker_{window}@arr"


def test_build_all_rolling_tickers_needs_a_window() -> None:
    with pytest.raises(StreamNameError) as e:
        build_stream("allRollingTickers")
    assert str(e.value) == refusal("!ticker_@arr", f"rolling window must be one of {WINDOWS_TEXT}")
    with pytest.raises(StreamNameError) as e:
        build_stream("allRollingTickers", window="2h")
    assert str(e.value) == refusal("!ticker_2h@arr", f"rolling window must be one of {WINDOWS_TEXT}")


def test_build_kline_keeps_the_timezone() -> None:
    assert build_stream("kline", "BTCUSDT", interval="1m", timezone="+08:00") == "btcusdt@kline_1m@+08:00"
    assert build_stream("KLINE", "btcusdt", interval="1M", timezone="-05:00") == "btcusdt@kline_1M@-05:00"
    assert build_stream("kline", "BTCUSDT", interval="1d", timezone=None) == "btcusdt@kline_1d"
    assert build_stream("kline", "BTCUSDT", interval="1d", timezone="") == "btcusdt@kline_1d"


def test_build_kline_refusals() -> None:
    with pytest.raises(StreamNameError) as e:
        build_stream("kline", "BTCUSDT")
    assert str(e.value) == refusal("btcusdt@kline_", f"kline interval '' is not one of {INTERVALS_TEXT}")
    with pytest.raises(StreamNameError) as e:
        build_stream("kline", "BTCUSDT", interval="1m", timezone="+8")
    assert str(e.value) == refusal(
        "btcusdt@kline_1m@+8", "kline timezone '+8' must look like +08:00 or -05:00 (from -12:00 to +14:00)"
    )


@pytest.mark.parametrize("kind", ["rollingTicker", "ROLLINGTICKER", "ticker_window", "TICKER_WINDOW"])
def test_build_rolling_ticker(kind: str) -> None:
    assert build_stream(kind, "ETHUSDT", window="1d") == "ethusdt@ticker_1d"


def test_build_rolling_ticker_needs_a_window() -> None:
    with pytest.raises(StreamNameError) as e:
        build_stream("rollingTicker", "ETHUSDT")
    assert str(e.value) == refusal("ethusdt@ticker_", f"rolling window must be one of {WINDOWS_TEXT}")


@pytest.mark.parametrize(
    ("kind", "levels", "speed_ms", "expected"),
    [
        ("depth", None, 1000, "ethusdt@depth"),
        ("depth", None, None, "ethusdt@depth"),
        ("depth", None, 100, "ethusdt@depth@100ms"),
        ("depth", 20, 1000, "ethusdt@depth20"),
        ("partialDepth", 5, None, "ethusdt@depth5"),
        ("PARTIALDEPTH", 10, 100, "ethusdt@depth10@100ms"),
        ("partialdepth", 20, 1000, "ethusdt@depth20"),
    ],
)
def test_build_depth(kind: str, levels: int | None, speed_ms: int | None, expected: str) -> None:
    assert build_stream(kind, "ETHUSDT", levels=levels, speed_ms=speed_ms) == expected


def test_build_depth_refusals() -> None:
    with pytest.raises(StreamNameError) as e:
        build_stream("depth", "ETHUSDT", speed_ms=500)
    assert str(e.value) == refusal("ethusdt@depth@500ms", "depth speed must be @100ms or omitted (1000 ms)")
    with pytest.raises(StreamNameError) as e:
        build_stream("partialDepth", "ETHUSDT", levels=15)
    assert str(e.value) == refusal("ethusdt@depth15", "partial depth levels must be 5, 10 or 20")


@pytest.mark.parametrize("kind", ["trade", "kline", "depth", "rollingTicker"])
def test_build_needs_a_symbol(kind: str) -> None:
    with pytest.raises(StreamNameError) as e:
        build_stream(kind, interval="1m", window="1h")
    assert str(e.value) == f"stream kind {kind!r} needs a symbol, e.g. BTCUSDT"


def test_build_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(StreamNameError) as e:
        build_stream("orders", "BTCUSDT")
    assert str(e.value) == (
        "unknown stream kind 'orders'; allowed: trade, aggTrade, kline, miniTicker, ticker, "
        "rollingTicker, bookTicker, avgPrice, depth, allMiniTickers, allRollingTickers"
    )


def test_build_refuses_a_bad_symbol_with_the_symbol_message() -> None:
    with pytest.raises(SymbolError, match=r"^invalid symbol 'BTC USDT': .*e\.g\. BTCUSDT"):
        build_stream("avgPrice", "BTC USDT")


# --- build then parse: the round trip keeps every part ----------------------------------------------------------

symbols = st.from_regex(r"(?=[A-Za-z0-9._-]*[A-Za-z0-9])[A-Za-z0-9._-]{1,20}", fullmatch=True)
timezones = st.none() | st.from_regex(r"\+(0[0-9]|1[0-3]):[0-5][0-9]|\+14:00|-(0[0-9]|1[01]):[0-5][0-9]|-12:00",
                                      fullmatch=True)


@given(symbol=symbols, interval=st.sampled_from(KLINE_INTERVALS), timezone=timezones)
def test_kline_round_trip(symbol: str, interval: str, timezone: str | None) -> None:
    name = build_stream("kline", symbol, interval=interval, timezone=timezone)
    assert name == f"{symbol.lower()}@kline_{interval}" + (f"@{timezone}" if timezone else "")
    assert parse_stream(name) == StreamSpec(
        name, StreamKind.KLINE, symbol.upper(), interval=interval, timezone=timezone
    )


@given(
    symbol=symbols,
    levels=st.sampled_from([None, 5, 10, 20]),
    speed_ms=st.sampled_from([None, 100, 1000]),
)
def test_depth_round_trip(symbol: str, levels: int | None, speed_ms: int | None) -> None:
    name = build_stream("depth", symbol, levels=levels, speed_ms=speed_ms)
    spec = parse_stream(name)
    assert spec.symbol == symbol.upper()
    assert spec.kind == (StreamKind.DEPTH if levels is None else StreamKind.PARTIAL_DEPTH)
    assert (spec.levels, spec.speed_ms) == (levels, speed_ms or 1000)
    assert name.endswith("@100ms") == (speed_ms == 100)


def test_event_driven_streams_are_the_ones_a_calm_market_silences() -> None:
    quiet = ["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@depth", "btcusdt@depth@100ms", "btcusdt@bookTicker",
             "um:btcusdt@forceOrder", "um:btcusdt@aggTrade", "um:btcusdt@depth@500ms"]
    timed = ["btcusdt@kline_1m", "btcusdt@miniTicker", "btcusdt@ticker", "btcusdt@ticker_1h", "btcusdt@avgPrice",
             "btcusdt@depth5", "!miniTicker@arr", "um:btcusdt@markPrice@1s", "um:btcusdt@depth5@100ms"]
    assert [n for n in quiet if not parse_stream(n).event_driven] == []
    assert [n for n in timed if parse_stream(n).event_driven] == []


def test_the_2026_spot_streams_parse_and_build() -> None:
    assert build_stream("referencePrice", "BTC/USDT") == "btcusdt@referencePrice"
    assert build_stream("blockTrade", "ethusdt") == "ethusdt@blockTrade"
    assert parse_stream("btcusdt@referencePrice").kind is StreamKind.REFERENCE_PRICE
    assert parse_stream("btcusdt@blockTrade").kind is StreamKind.BLOCK_TRADE
    assert parse_stream("btcusdt@blockTrade").event_driven and not parse_stream("btcusdt@referencePrice").event_driven
