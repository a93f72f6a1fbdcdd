"""plan_fill against a fake REST venue: paging, the WebSocket payload format, bounds, holes as gap records,
fallbacks and errors. Pure: no network, no event-loop timing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from binance_common.errors import BinanceAPIError, InvalidSymbolError, ServerError
from binance_streamd import catchup
from binance_streamd.catchup import PAGE, DataRecord, GapRecord, TradeSource, plan_fill

BASE_T = 1_633_998_500_000


def trade_row(i: int) -> dict:
    return {"id": i, "price": "0.35210000", "qty": f"{i}.00000000", "quoteQty": "1.0",
            "time": BASE_T + i, "isBuyerMaker": i % 2 == 0, "isBestMatch": True}


def agg_row(i: int) -> dict:
    return {"a": i, "p": "6.25100000", "q": "1.20000000", "f": 10 * i, "l": 10 * i + 2,
            "T": BASE_T + i, "m": False, "M": True}


class FakeVenue:
    """Trades with ids first..last; ids in ``holes`` do not exist; historicalTrades optionally refused."""

    def __init__(self, first: int = 1, last: int = 5000, *, holes: frozenset[int] = frozenset(),
                 historical: bool = True, error: Exception | None = None) -> None:
        self.first, self.last, self.holes, self.historical, self.error = first, last, holes, historical, error
        self.calls: list[tuple[str, dict]] = []

    def _ids(self, start: int, limit: int) -> list[int]:
        out: list[int] = []
        i = max(start, self.first)
        while len(out) < limit and i <= self.last:
            if i not in self.holes:
                out.append(i)
            i += 1
        return out

    async def get(self, path: str, params: dict[str, Any]) -> Any:
        self.calls.append((path, dict(params)))
        if self.error is not None:
            raise self.error
        assert params["symbol"] == "NKNUSDT"
        limit = int(params.get("limit", 500))
        assert limit <= 1000
        if path == "/api/v3/historicalTrades":
            if not self.historical:
                raise BinanceAPIError("Binance error -2014 (HTTP 401): API-key format invalid.", status=401,
                                      code=-2014)
            return [trade_row(i) for i in self._ids(int(params["fromId"]), limit)]
        if path == "/api/v3/trades":
            return [trade_row(i) for i in self._ids(self.last - limit + 1, limit)]
        if path == "/api/v3/aggTrades":
            if "fromId" in params:
                return [agg_row(i) for i in self._ids(int(params["fromId"]), limit)]
            if "startTime" in params:
                return [agg_row(i) for i in self._ids(int(params["startTime"]) - BASE_T, limit)]
            return [agg_row(i) for i in self._ids(self.last - limit + 1, limit)]
        raise AssertionError(path)


def fill(venue: FakeVenue, stream: str, **kw: Any):
    return plan_fill(TradeSource(stream, venue.get), **kw)


def ids(records: list) -> list[int]:
    return [r.id for r in records if isinstance(r, DataRecord)]


def gaps(records: list) -> list[tuple[int | None, int]]:
    return [(r.from_id, r.to_id) for r in records if isinstance(r, GapRecord)]


async def test_trades_paged_in_id_order_with_ws_format() -> None:
    venue = FakeVenue()
    out = await fill(venue, "nknusdt@trade", last_id=99, start_ms=None, until_id=2599)
    assert ids(out) == list(range(100, 2600)) and gaps(out) == []
    assert [(p["fromId"], p["limit"]) for _, p in venue.calls] == [(100, 1000), (1100, 1000), (2100, 500)]
    assert {path for path, _ in venue.calls} == {"/api/v3/historicalTrades"}
    # Exactly the <s>@trade payload: field order and types as on the WebSocket, E = trade time.
    assert orjson.dumps(out[1].payload) == (b'{"e":"trade","E":1633998500101,"s":"NKNUSDT","t":101,"p":"0.35210000",'
                                            b'"q":"101.00000000","T":1633998500101,"m":false,"M":true}')


async def test_agg_trades_format() -> None:
    venue = FakeVenue()
    out = await fill(venue, "nknusdt@aggTrade", last_id=6, start_ms=None, until_id=8)
    assert orjson.dumps(out[0].payload) == (b'{"e":"aggTrade","E":1633998500007,"s":"NKNUSDT","a":7,"p":"6.25100000",'
                                            b'"q":"1.20000000","f":70,"l":72,"T":1633998500007,"m":false,"M":true}')
    assert venue.calls == [("/api/v3/aggTrades", {"symbol": "NKNUSDT", "fromId": 7, "limit": 2})]


async def test_catch_up_to_the_present_one_short_page() -> None:
    venue = FakeVenue(last=5000)
    out = await fill(venue, "nknusdt@aggTrade", last_id=4900, start_ms=None)
    assert ids(out) == list(range(4901, 5001))
    assert len(venue.calls) == 1  # a short page is the present


async def test_catch_up_longer_than_a_page_is_bounded_by_the_present_id() -> None:
    venue = FakeVenue(last=5000)
    out = await fill(venue, "nknusdt@aggTrade", last_id=3000, start_ms=None)
    assert ids(out) == list(range(3001, 5001)) and gaps(out) == []
    assert [p.get("fromId") for _, p in venue.calls] == [3001, None, 4001]  # page, newest id, page up to it
    assert venue.calls[1][1]["limit"] == 1


async def test_nothing_to_catch_up() -> None:
    venue = FakeVenue(last=5000)
    assert await fill(venue, "nknusdt@trade", last_id=5000, start_ms=None) == []
    assert await fill(venue, "nknusdt@trade", last_id=None, start_ms=None) == []
    assert len(venue.calls) == 1


async def test_single_id_and_empty_range() -> None:
    venue = FakeVenue()
    assert ids(await fill(venue, "nknusdt@trade", last_id=41, start_ms=None, until_id=42)) == [42]
    assert await fill(venue, "nknusdt@trade", last_id=4, start_ms=None, until_id=4) == []
    assert len(venue.calls) == 1


async def test_a_range_over_max_ids_keeps_the_newest_and_records_the_rest_as_a_gap() -> None:
    venue = FakeVenue(last=5000)
    out = await fill(venue, "nknusdt@trade", last_id=0, start_ms=None, until_id=5000, max_ids=1000)
    assert gaps(out) == [(1, 4000)] and ids(out) == list(range(4001, 5001))
    assert isinstance(out[0], GapRecord) and "BINANCE_MCP_BACKFILL_MAX_IDS" in out[0].reason
    # unknown end: one page, then the present id bounds the rest
    venue = FakeVenue(last=5000)
    out = await fill(venue, "nknusdt@aggTrade", last_id=0, start_ms=None, max_ids=2000)
    assert gaps(out) == [(1001, 4000)]
    assert ids(out) == [*range(1, 1001), *range(4001, 5001)]
    assert [r.from_id if isinstance(r, GapRecord) else r.id for r in out].index(1001) == PAGE  # in id order


async def test_ids_rest_does_not_have_become_gap_records_in_order() -> None:
    out = await fill(FakeVenue(holes=frozenset({20, 21})), "nknusdt@aggTrade", last_id=9, start_ms=None, until_id=30)
    assert gaps(out) == [(20, 21)] and ids(out) == [*range(10, 20), *range(22, 31)]
    assert [type(r).__name__ for r in out][9:12] == ["DataRecord", "GapRecord", "DataRecord"]
    out = await fill(FakeVenue(first=1000), "nknusdt@trade", last_id=989, start_ms=None, until_id=1005)
    assert gaps(out) == [(990, 999)] and ids(out) == list(range(1000, 1006))
    out = await fill(FakeVenue(last=50), "nknusdt@trade", last_id=44, start_ms=None, until_id=60)
    assert ids(out) == list(range(45, 51)) and gaps(out) == [(51, 60)]


async def test_falls_back_to_recent_trades_when_historical_is_refused() -> None:
    venue = FakeVenue(last=5000, historical=False)
    src = TradeSource("nknusdt@trade", venue.get)
    out = await plan_fill(src, last_id=4499, start_ms=None, until_id=4502)
    assert ids(out) == [4500, 4501, 4502] and not src.historical
    assert [path for path, _ in venue.calls] == ["/api/v3/historicalTrades", "/api/v3/trades"]
    out = await plan_fill(src, last_id=2999, start_ms=None, until_id=3001)  # older than the latest 1000
    assert ids(out) == [] and gaps(out) == [(3000, 3001)]
    assert venue.calls[-1][0] == "/api/v3/trades"  # it does not ask historicalTrades again


async def test_a_refusal_of_historical_trades_is_not_for_good(monkeypatch: pytest.MonkeyPatch) -> None:
    """A passing refusal (a firewall, a maintenance) must not leave a stream on /trades (the latest 1000 only)
    forever: after HISTORICAL_RETRY_S historicalTrades is asked again."""
    venue = FakeVenue(last=5000, historical=False)
    src = TradeSource("nknusdt@trade", venue.get)
    monkeypatch.setattr(catchup, "HISTORICAL_RETRY_S", 0.0)  # the retry period has passed at once
    await plan_fill(src, last_id=4499, start_ms=None, until_id=4502)
    assert not src.historical
    venue.historical = True  # served again
    out = await plan_fill(src, last_id=2999, start_ms=None, until_id=3001)  # older than the latest 1000
    assert ids(out) == [3000, 3001] and gaps(out) == [] and src.historical


async def test_no_id_yet_catches_up_by_time() -> None:
    venue = FakeVenue(last=5000)
    out = await fill(venue, "nknusdt@aggTrade", last_id=None, start_ms=BASE_T + 4950 + 1000)
    assert ids(out) == list(range(4950, 5001))  # one second of margin before the acknowledgement
    assert venue.calls[0][1]["startTime"] == BASE_T + 4950
    out = await fill(FakeVenue(last=5000), "nknusdt@trade", last_id=None, start_ms=BASE_T + 4990 + 1000)
    assert ids(out) == list(range(4990, 5001)) and gaps(out) == []
    out = await fill(FakeVenue(last=5000), "nknusdt@trade", last_id=None, start_ms=BASE_T + 1000)
    assert gaps(out) == [(None, 4000)] and ids(out) == list(range(4001, 5001))  # more than /trades holds


async def test_errors() -> None:
    with pytest.raises(ServerError):  # retryable: propagates so the caller can try again later
        await fill(FakeVenue(error=ServerError("503", status=503)), "nknusdt@trade", last_id=1, start_ms=None,
                   until_id=2)
    out = await fill(FakeVenue(error=InvalidSymbolError("bad", status=400, code=-1121)), "nknusdt@aggTrade",
                     last_id=0, start_ms=None, until_id=2)
    assert gaps(out) == [(1, 2)] and "refused" in out[0].reason
    with pytest.raises(ValueError):
        TradeSource("nknusdt@kline_1m", FakeVenue().get)


# --- exact conversions, endpoints and bounds (each assertion kills a deliberately introduced bug) ----------

def test_numeric_fields_keep_every_digit_and_flags_default_to_binances() -> None:
    from decimal import Decimal

    from binance_streamd.catchup import agg_trade_payload, trade_payload

    row = {"id": 1, "price": Decimal("0.35210000"), "qty": 5, "time": 7, "isBuyerMaker": True}
    assert trade_payload("X", row) == {"e": "trade", "E": 7, "s": "X", "t": 1, "p": "0.35210000", "q": "5",
                                       "T": 7, "m": True, "M": True}
    assert trade_payload("X", {**row, "isBuyerMaker": False, "isBestMatch": False})["M"] is False
    agg = {"a": 3, "p": "1.10", "q": Decimal("2E+1"), "f": 1, "l": 2, "T": 9, "m": True}
    out = agg_trade_payload("X", agg)
    assert out["q"] == "20" and out["m"] is True and out["M"] is True
    assert agg_trade_payload("X", {**agg, "m": False, "M": False})["M"] is False


def test_source_names_and_refusals() -> None:
    src = TradeSource("nknusdt@aggTrade", FakeVenue().get)
    assert (src.stream, src.symbol, src.agg, src.id_field) == ("nknusdt@aggTrade", "NKNUSDT", True, "a")
    with pytest.raises(ValueError, match="catch-up needs a trade or aggTrade stream, got 'nknusdt@depth'"):
        TradeSource("nknusdt@depth", FakeVenue().get)


async def test_a_refused_aggtrades_request_is_a_gap_not_a_fallback() -> None:
    venue = FakeVenue(error=BinanceAPIError("Binance error -1100: Illegal characters", status=400, code=-1100))
    out = await fill(venue, "nknusdt@aggTrade", last_id=4, start_ms=None, until_id=6)
    assert gaps(out) == [(5, 6)] and "Binance refused /api/v3/aggTrades" in out[0].reason


async def test_a_non_list_answer_is_no_rows() -> None:
    class Odd(FakeVenue):
        async def get(self, path: str, params: dict[str, Any]) -> Any:
            await super().get(path, params)
            return {"unexpected": True}

    out = await fill(Odd(), "nknusdt@aggTrade", last_id=4, start_ms=None, until_id=6)
    assert gaps(out) == [(5, 6)] and out[0].reason == "ids 5..6 are not served by REST"


async def test_the_historical_fallback_is_remembered_and_logged(caplog) -> None:
    import logging

    venue = FakeVenue(last=5000, historical=False)
    src = TradeSource("nknusdt@trade", venue.get)
    with caplog.at_level(logging.INFO, logger="binance_streamd.catchup"):
        await src.from_id(4990)
    assert src.historical is False
    assert "nknusdt@trade: historicalTrades refused (Binance error -2014" in caplog.text
    assert await src.newest_id() == 5000
    assert venue.calls[-1] == ("/api/v3/trades", {"symbol": "NKNUSDT", "limit": 1})


async def test_by_time_asks_a_full_page_and_is_complete_for_aggtrades() -> None:
    venue = FakeVenue(last=5000)
    out = await fill(venue, "nknusdt@aggTrade", last_id=None, start_ms=BASE_T + 4990 + 1000)
    assert venue.calls[0][1] == {"symbol": "NKNUSDT", "startTime": BASE_T + 4990, "limit": 1000}
    assert gaps(out) == [] and isinstance(out[0], DataRecord) and out[0].payload["a"] == 4990


async def test_by_time_a_full_page_goes_on_by_id() -> None:
    venue = FakeVenue(last=2500)
    out = await fill(venue, "nknusdt@aggTrade", last_id=None, start_ms=BASE_T + 1000)
    assert ids(out) == list(range(1, 2501)) and gaps(out) == []


async def test_max_ids_bounds_are_exact() -> None:
    venue = FakeVenue(last=5000)
    out = await fill(venue, "nknusdt@trade", last_id=2999, start_ms=None, until_id=4000, max_ids=1001)
    assert gaps(out) == [] and ids(out) == list(range(3000, 4001))  # exactly max_ids: all of them
    out = await fill(venue, "nknusdt@trade", last_id=2999, start_ms=None, until_id=4001, max_ids=1001)
    assert gaps(out) == [(3000, 3000)] and out[0].reason.startswith("1 ids older than the newest 1001 were")
    venue = FakeVenue(last=30_000)
    out = await fill(venue, "nknusdt@aggTrade", last_id=0, start_ms=None, until_id=20_001)  # default bound
    assert gaps(out) == [(1, 1)] and "(BINANCE_MCP_BACKFILL_MAX_IDS)" in out[0].reason


async def test_an_open_catch_up_counts_every_page_against_max_ids() -> None:
    venue = FakeVenue(last=3500)
    out = await fill(venue, "nknusdt@aggTrade", last_id=0, start_ms=None, max_ids=3000)
    assert gaps(out) == [(1001, 1500)] and ids(out) == [*range(1, 1001), *range(1501, 3501)]
    assert out[1000].reason == "500 ids older than the newest 3000 were not backfilled (BINANCE_MCP_BACKFILL_MAX_IDS)"
    venue = FakeVenue(last=3000)
    out = await fill(venue, "nknusdt@aggTrade", last_id=0, start_ms=None, max_ids=3000)
    assert gaps(out) == [] and ids(out) == list(range(1, 3001))  # exactly at the bound


async def test_a_hole_reason_names_the_ids() -> None:
    out = await fill(FakeVenue(holes=frozenset({20, 21})), "nknusdt@aggTrade", last_id=9, start_ms=None, until_id=30)
    assert [r.reason for r in out if isinstance(r, GapRecord)] == ["ids 20..21 are not served by REST"]
    out = await fill(FakeVenue(last=50), "nknusdt@trade", last_id=None, start_ms=BASE_T + 1000 + 45, max_ids=10)
    assert ids(out) == list(range(45, 51))


async def test_edges_of_the_open_catch_up() -> None:
    venue = FakeVenue(last=3001)
    out = await fill(venue, "nknusdt@aggTrade", last_id=0, start_ms=None, max_ids=3000)
    assert gaps(out) == [(1001, 1001)] and ids(out)[-1] == 3001 and len(ids(out)) == 3000
    venue = FakeVenue(last=3000)
    out = await fill(venue, "nknusdt@aggTrade", last_id=0, start_ms=None, max_ids=1000)
    assert gaps(out) == [(1001, 3000)] and ids(out) == list(range(1, 1001))  # the allowance is used up
    out = await fill(FakeVenue(last=0), "nknusdt@aggTrade", last_id=None, start_ms=BASE_T)
    assert out == []
    assert await TradeSource("nknusdt@trade", FakeVenue(last=0).get).newest_id() is None


async def test_an_open_catch_up_refused_is_a_one_id_gap_at_the_cursor() -> None:
    venue = FakeVenue(error=InvalidSymbolError("Invalid symbol.", status=400, code=-1121))
    out = await fill(venue, "nknusdt@aggTrade", last_id=4, start_ms=None)
    assert gaps(out) == [(5, 5)]


async def test_the_incomplete_by_time_gap_says_why() -> None:
    out = await fill(FakeVenue(last=5000), "nknusdt@trade", last_id=None, start_ms=BASE_T + 1000)
    assert out[0].reason == ("more trades since the subscription was acknowledged than one REST page holds; "
                             "the oldest were not fetched")
