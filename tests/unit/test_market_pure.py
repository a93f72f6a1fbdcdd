"""Pure helpers of the market tools: input parsing, conversions, summaries, symbol search and suggestions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from binance_mcp.answers.book import order_book, spread_bps
from binance_mcp.answers.convert import (
    agg_trade,
    change_percent,
    kline_rows,
    kline_summary,
    sort_tickers,
    ticker_from_rest,
    ticker_from_ws,
    trade_from_rest,
    trade_from_ws,
    trade_summary,
)
from binance_mcp.answers.inputs import (
    check_asset,
    check_time_range,
    check_time_zone,
    check_window,
    parse_time_ms,
)
from binance_mcp.answers.market import TickerStats
from binance_mcp.answers.numbers import fmt_q
from binance_mcp.symbols import (
    ExchangeSnapshot,
    UnknownSymbolError,
    compact_exchange_info,
    search,
    suggest,
    summarise_filters,
)


def test_parse_time() -> None:
    assert parse_time_ms(None, "t") is None
    assert parse_time_ms(1700000000000, "t") == 1700000000000
    assert parse_time_ms("1700000000000", "t") == 1700000000000
    assert parse_time_ms("2024-01-01", "t") == 1704067200000
    assert parse_time_ms("2024-01-01T00:00:00Z", "t") == 1704067200000
    assert parse_time_ms("2024-01-01T08:00:00+08:00", "t") == 1704067200000
    with pytest.raises(ValueError, match="looks like seconds"):
        parse_time_ms(1700000000, "start_time")
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_time_ms("yesterday", "start_time")
    with pytest.raises(ValueError, match="negative"):
        parse_time_ms(-5, "t")
    with pytest.raises(ValueError, match="after end_time"):
        check_time_range(2, 1)
    check_time_range(1, 1)


@pytest.mark.parametrize("tz", ["0", "8", "-5", "+05:30", "05:45", "-12:00", "+14:00", "14"])
def test_time_zone_ok(tz: str) -> None:
    assert check_time_zone(tz) == tz


@pytest.mark.parametrize("tz", ["UTC", "15", "-13", "+05:60", "8h", "", "+14:30"])
def test_time_zone_bad(tz: str) -> None:
    with pytest.raises(ValueError, match="time_zone"):
        check_time_zone(tz)


@pytest.mark.parametrize("w", ["1m", "59m", "1h", "23h", "1d", "7d", "15m"])
def test_window_ok(w: str) -> None:
    assert check_window(w) == w


@pytest.mark.parametrize("w", ["0m", "60m", "24h", "8d", "1d2h", "1w", "1M", "m", "01m"])
def test_window_bad(w: str) -> None:
    with pytest.raises(ValueError, match="window_size"):
        check_window(w)


def test_ticker_rest_and_ws_are_exact() -> None:
    rest = {
        "symbol": "BNBBTC", "priceChange": "-94.99999800", "priceChangePercent": "-95.960",
        "weightedAvgPrice": "0.29628482", "prevClosePrice": "0.10002000", "lastPrice": "4.00000200",
        "lastQty": "200.00000000", "bidPrice": "4.00000000", "bidQty": "100.00000000", "askPrice": "4.00000200",
        "askQty": "100.00000000", "openPrice": "99.00000000", "highPrice": "100.00000000", "lowPrice": "0.10000000",
        "volume": "8913.30000000", "quoteVolume": "15.30000000", "openTime": 1499783499040,
        "closeTime": 1499869899040, "firstId": 28385, "lastId": 28460, "count": 76,
    }
    t = ticker_from_rest(rest)
    assert t.price_change == "-94.99999800" and t.last_price == "4.00000200" and t.trade_count == 76
    mini = ticker_from_rest({k: v for k, v in rest.items() if k not in ("priceChange", "priceChangePercent")})
    assert mini.price_change_percent is None
    assert change_percent(mini) == (Decimal("4.00000200") - Decimal("99")) / Decimal("99") * 100
    ws = {
        "e": "24hrTicker", "E": 1, "s": "BNBBTC", "p": "0.0015", "P": "250.00", "w": "0.0018", "x": "0.0009",
        "c": "0.0025", "Q": "10", "b": "0.0024", "B": "10", "a": "0.0026", "A": "100", "o": "0.0010",
        "h": "0.0025", "l": "0.0010", "v": "10000", "q": "18", "O": 0, "C": 86400000, "F": 0, "L": 18150, "n": 18151,
    }
    w = ticker_from_ws(ws)
    assert (w.last_price, w.bid_price, w.trade_count, w.price_change_percent) == ("0.0025", "0.0024", 18151, "250.00")
    wm = ticker_from_ws(ws, mini=True)
    assert wm.bid_price is None and wm.price_change is None and wm.volume == "10000"


def test_sort_tickers() -> None:
    def t(sym: str, qv: str, o: str, c: str) -> TickerStats:
        return ticker_from_rest(
            {"symbol": sym, "lastPrice": c, "openPrice": o, "highPrice": c, "lowPrice": o, "volume": "1",
             "quoteVolume": qv, "count": int(qv)}
        )

    rows = [t("A", "10", "1", "2"), t("B", "30", "2", "1"), t("C", "20", "1", "1.2")]
    assert [x.symbol for x in sort_tickers(rows, "quote_volume", "desc")] == ["B", "C", "A"]
    assert [x.symbol for x in sort_tickers(rows, "price_change_percent", "desc")] == ["A", "C", "B"]
    assert [x.symbol for x in sort_tickers(rows, "price_change_percent", "asc")] == ["B", "C", "A"]
    assert [x.symbol for x in sort_tickers(rows, "abs_price_change_percent", "desc")] == ["A", "B", "C"]
    assert [x.symbol for x in sort_tickers(rows, "symbol", "asc")] == ["A", "B", "C"]
    assert [x.symbol for x in sort_tickers(rows, "trade_count", "asc")] == ["A", "C", "B"]


def test_trades_and_summary_exact() -> None:
    r = trade_from_rest(
        {"id": 28457, "price": "4.00000100", "qty": "12.00000000", "quoteQty": "48.000012", "time": 1,
         "isBuyerMaker": True, "isBestMatch": True}
    )
    assert r.quote_qty == "48.000012"
    w = trade_from_ws({"e": "trade", "E": 1, "s": "BNBBTC", "t": 12345, "p": "0.001", "q": "100", "T": 2, "m": False, "M": True})
    assert w.quote_qty == "0.100" and w.id == 12345
    s = trade_summary([r, w])
    assert s.volume == "112"
    assert Decimal(s.quote_volume) == Decimal("48.000012") + Decimal("0.100")
    assert s.taker_buy_volume == "100" and s.taker_sell_volume == "12"
    assert s.low == "0.001" and s.high == "4.00000100"
    assert s.vwap == fmt_q((Decimal("48.000012") + Decimal("0.1")) / Decimal(112))
    a = agg_trade({"a": 26129, "p": "0.01633102", "q": "4.70443515", "f": 27781, "l": 27781, "T": 1498793709153, "m": True, "M": True})
    assert (a.agg_id, a.price, a.first_trade_id) == (26129, "0.01633102", 27781)
    assert trade_summary([]).vwap is None


def test_book_stats() -> None:
    raw = {"bids": [["100.0", "1"], ["99.0", "2"], ["90", "5"]], "asks": [["101.0", "1.5"], ["150", "1"]]}
    book = order_book({"source": "rest", "as_of_ms": 1, "age_ms": 0}, "X", raw, 10, Decimal("2"))
    assert (book.mid, book.spread) == ("100.5", "1.0")
    assert book.spread_bps == "99.5025"
    band = book.depth_in_band
    assert band is not None and band.bid_qty == "3" and band.ask_qty == "1.5"
    assert band.bid_notional == "298"
    assert [lv.qty for lv in book.bids] == ["1", "2", "5"]
    one_sided = order_book({"source": "rest", "as_of_ms": 1, "age_ms": 0}, "X", {"bids": [], "asks": raw["asks"]}, 1, Decimal(1))
    assert (one_sided.mid, one_sided.spread, one_sided.spread_bps, one_sided.depth_in_band) == (None, None, None, None)
    assert [lv.price for lv in one_sided.asks] == ["101.0"]
    assert spread_bps("4.00000000", "4.00000200") == "0.0050"
    assert spread_bps("0", "0") is None


def test_klines_rows_and_summary() -> None:
    raw = [
        [1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100", "148976.11427815", 1499644799999,
         "2434.19055334", 308, "1756.87402397", "28.46694368", "0"],
        [1499644800000, "0.01577100", "0.02000000", "0.01500000", "0.01800000", "10", 1500249599999, "0.2", 3, "5",
         "0.1", "0"],
    ]
    rows = kline_rows(raw)
    assert rows[0] == [1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100", "148976.11427815",
                       1499644799999, "2434.19055334", 308, "1756.87402397", "28.46694368"]
    s = kline_summary(rows)
    assert s is not None
    assert (s.open, s.close, s.high, s.low) == ("0.01634790", "0.01800000", "0.80000000", "0.01500000")
    assert s.change == "0.00165210"
    assert s.volume == "148986.11427815"
    assert kline_summary([]) is None


RAW_INFO = {
    "timezone": "UTC",
    "serverTime": 1,
    "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}],
    "exchangeFilters": [],
    "symbols": [
        {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
         "permissionSets": [["SPOT", "MARGIN"], ["TRD_GRP_004"]], "permissions": [],
         "filters": [
             {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
             {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
             {"filterType": "NOTIONAL", "minNotional": "5.00000000", "maxNotional": "9000000.00000000"},
             {"filterType": "ICEBERG_PARTS", "limit": 10},
         ]},
        {"symbol": "BTCUSDC", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDC", "permissionSets": [["SPOT"]]},
        {"symbol": "ETHBTC", "status": "TRADING", "baseAsset": "ETH", "quoteAsset": "BTC", "permissionSets": [["SPOT"]]},
        {"symbol": "ETHUSDT", "status": "TRADING", "baseAsset": "ETH", "quoteAsset": "USDT", "permissionSets": [["SPOT"]]},
        {"symbol": "LUNAUSDT", "status": "BREAK", "baseAsset": "LUNA", "quoteAsset": "USDT", "permissionSets": [["SPOT"]]},
        {"symbol": "WBTCBTC", "status": "TRADING", "baseAsset": "WBTC", "quoteAsset": "BTC", "permissionSets": [["SPOT"]]},
    ],
}


def snapshot() -> ExchangeSnapshot:
    return ExchangeSnapshot.from_compact(compact_exchange_info(RAW_INFO, 1000), source="cache")


def test_compact_flattens_permission_sets() -> None:
    snap = snapshot()
    assert snap.symbols["BTCUSDT"]["permissions"] == ["MARGIN", "SPOT", "TRD_GRP_004"]
    assert "permissionSets" not in snap.symbols["BTCUSDT"]
    assert snap.symbols_for_quote("USDT") == ["BTCUSDT", "ETHUSDT", "LUNAUSDT"]


def test_search_ranks_and_filters() -> None:
    snap = snapshot()
    names = lambda hits: [h["symbol"] for h in hits]  # noqa: E731
    assert names(search(snap, query="BTC")) == ["BTCUSDC", "BTCUSDT", "ETHBTC", "WBTCBTC"]
    assert names(search(snap, query="btc/usdt")) == ["BTCUSDT"]
    assert names(search(snap, query="ETH")) == ["ETHBTC", "ETHUSDT"]
    assert names(search(snap, quote_asset="USDT")) == ["BTCUSDT", "ETHUSDT"]
    assert names(search(snap, quote_asset="USDT", status=None)) == ["BTCUSDT", "ETHUSDT", "LUNAUSDT"]
    assert names(search(snap, status="BREAK")) == ["LUNAUSDT"]
    assert names(search(snap, permission="MARGIN")) == ["BTCUSDT"]
    assert names(search(snap, base_asset="BTC", quote_asset="USDC")) == ["BTCUSDC"]


def test_suggestions() -> None:
    known = list(snapshot().symbols)
    assert suggest("USDTBTC", known)[0] == "BTCUSDT"
    assert suggest("BTCUSD", known)[:2] == ["BTCUSDC", "BTCUSDT"]
    assert "ETHUSDT" in suggest("ETHUSTD", known)
    assert suggest("ZZZZZZ", known) == []
    with pytest.raises(UnknownSymbolError, match="closest listed symbols: BTCUSDC, BTCUSDT") as ei:
        snapshot().require("btcusd")
    assert ei.value.code == -1121
    with pytest.raises(UnknownSymbolError, match="search_symbols"):
        snapshot().require("QQQQQQ")


def test_filters_summary() -> None:
    known, other = summarise_filters(snapshot().symbols["BTCUSDT"]["filters"])
    assert known["tick_size"] == "0.01000000" and known["step_size"] == "0.00001000"
    assert known["min_notional"] == "5.00000000" and known["max_notional"] == "9000000.00000000"
    assert other == [{"filterType": "ICEBERG_PARTS", "limit": 10}]
    known, _ = summarise_filters([{"filterType": "MIN_NOTIONAL", "minNotional": "0.001"}])
    assert known["min_notional"] == "0.001"


def test_check_asset() -> None:
    assert check_asset(" usdt ", "quote_asset") == "USDT"
    assert check_asset(None, "x") is None
    with pytest.raises(ValueError, match="asset code"):
        check_asset("US-DT", "quote_asset")
