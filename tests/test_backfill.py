"""backfill_trades against a fake REST venue: paging, WebSocket payload format, fallbacks and typed errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from binance_common.errors import BinanceAPIError, InvalidSymbolError, ServerError
from binance_streamd.backfill import (
    BackfillError,
    BackfillTooLarge,
    BackfillUnavailable,
    backfill_trades,
)


def trade_row(i: int) -> dict:
    return {"id": i, "price": "0.35210000", "qty": f"{i}.00000000", "quoteQty": "1.0",
            "time": 1_633_998_500_000 + i, "isBuyerMaker": i % 2 == 0, "isBestMatch": True}


def agg_row(i: int) -> dict:
    return {"a": i, "p": "6.25100000", "q": "1.20000000", "f": 10 * i, "l": 10 * i + 2,
            "T": 1_633_998_500_000 + i, "m": False, "M": True}


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
            return [agg_row(i) for i in self._ids(int(params["fromId"]), limit)]
        raise AssertionError(path)


async def test_trades_paged_in_id_order_with_ws_format() -> None:
    venue = FakeVenue()
    out = await backfill_trades(venue, "nknusdt@trade", 100, 2599)
    assert [orjson.loads(b)["t"] for b in out] == list(range(100, 2600))
    assert [(p["fromId"], p["limit"]) for _, p in venue.calls] == [(100, 1000), (1100, 1000), (2100, 500)]
    assert {path for path, _ in venue.calls} == {"/api/v3/historicalTrades"}
    # Exactly the <s>@trade payload: field order and types as on the WebSocket, E = trade time.
    assert out[1] == (b'{"e":"trade","E":1633998500101,"s":"NKNUSDT","t":101,"p":"0.35210000",'
                      b'"q":"101.00000000","T":1633998500101,"m":false,"M":true}')


async def test_agg_trades_format() -> None:
    venue = FakeVenue()
    out = await backfill_trades(venue, "nknusdt@aggTrade", 7, 8)
    assert out[0] == (b'{"e":"aggTrade","E":1633998500007,"s":"NKNUSDT","a":7,"p":"6.25100000",'
                      b'"q":"1.20000000","f":70,"l":72,"T":1633998500007,"m":false,"M":true}')
    assert venue.calls == [("/api/v3/aggTrades", {"symbol": "NKNUSDT", "fromId": 7, "limit": 2})]


async def test_single_id_and_empty_range() -> None:
    venue = FakeVenue()
    assert [orjson.loads(b)["t"] for b in await backfill_trades(venue, "nknusdt@trade", 42, 42)] == [42]
    assert await backfill_trades(venue, "nknusdt@trade", 5, 4) == []
    assert len(venue.calls) == 1


async def test_too_large_is_refused_without_requests() -> None:
    venue = FakeVenue()
    with pytest.raises(BackfillTooLarge) as ei:
        await backfill_trades(venue, "nknusdt@trade", 1, 101, max_items=100)
    assert (ei.value.stream, ei.value.from_id, ei.value.to_id) == ("nknusdt@trade", 1, 101)
    assert venue.calls == []


async def test_range_older_than_venue_retention_is_unavailable() -> None:
    venue = FakeVenue(first=1000)
    with pytest.raises(BackfillUnavailable, match="no id 990"):
        await backfill_trades(venue, "nknusdt@trade", 990, 1005)


async def test_missing_ids_and_future_ids_are_unavailable() -> None:
    with pytest.raises(BackfillUnavailable, match="no id 20"):
        await backfill_trades(FakeVenue(holes=frozenset({20})), "nknusdt@aggTrade", 10, 30)
    with pytest.raises(BackfillUnavailable, match="no rows"):
        await backfill_trades(FakeVenue(last=50), "nknusdt@trade", 45, 60)


async def test_falls_back_to_recent_trades_when_historical_is_refused() -> None:
    venue = FakeVenue(last=5000, historical=False)
    out = await backfill_trades(venue, "nknusdt@trade", 4500, 4502)
    assert [orjson.loads(b)["t"] for b in out] == [4500, 4501, 4502]
    assert [path for path, _ in venue.calls] == ["/api/v3/historicalTrades", "/api/v3/trades"]
    with pytest.raises(BackfillUnavailable, match="latest 1000"):
        await backfill_trades(venue, "nknusdt@trade", 3000, 3001)  # older than the latest 1000


async def test_errors() -> None:
    with pytest.raises(ServerError):  # retryable: propagates so the caller can try again later
        await backfill_trades(FakeVenue(error=ServerError("503", status=503)), "nknusdt@trade", 1, 2)
    with pytest.raises(BackfillUnavailable) as ei:
        await backfill_trades(FakeVenue(error=InvalidSymbolError("bad", status=400, code=-1121)),
                              "nknusdt@aggTrade", 1, 2)
    assert isinstance(ei.value, BackfillError)
    with pytest.raises(ValueError):
        await backfill_trades(FakeVenue(), "nknusdt@kline_1m", 1, 2)
