"""plan_fill against a fake REST venue: paging, the WebSocket payload format, bounds, holes as gap records,
fallbacks and errors. Pure: no network, no event-loop timing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from binance_common.errors import BinanceAPIError, InvalidSymbolError, ServerError
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
