"""USD-M futures REST of the simulator (``/fapi/v1``, ``/fapi/v2``, ``/futures/data``): one perpetual per
simulated ``...USDT`` market, sharing its book and trades. Weights and the 2400/min limit counted apart from
spot's, parameters checked as fapi.binance.com checks them (depth limits, 1500 klines, period values, the
1-hour aggTrades window, 30 days of statistics)."""

from __future__ import annotations

import time
from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .market import Market, fmt
from .names import INTERVALS
from .rest import ApiError, RestApi

if TYPE_CHECKING:
    from .server import BinanceSim

DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
PERIODS = {"5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000,
           "4h": 14_400_000, "6h": 21_600_000, "12h": 43_200_000, "1d": 86_400_000}
FUNDING_MS = 8 * 3_600_000
FUTURES_INTERVALS = {k: v for k, v in INTERVALS.items() if k != "1s"}


KLINE_WEIGHT_PATHS = ("klines", "continuousKlines", "indexPriceKlines", "markPriceKlines", "premiumIndexKlines")


def _weight(path: str, q: dict[str, str]) -> int:
    """The simulator's own table (the USD-M docs), apart from the client's, so a wrong client weight shows."""
    name = path.rsplit("/", 1)[-1]
    one = bool(q.get("symbol"))
    if name == "depth":
        return {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}.get(int(q.get("limit") or 500), 20)
    if name in KLINE_WEIGHT_PATHS:
        n = int(q.get("limit") or 500)
        return 1 if n < 100 else 2 if n < 500 else 5 if n <= 1000 else 10
    table = {"trades": 5, "aggTrades": 20, "historicalTrades": 20, "24hr": 1 if one else 40,
             "price": 1 if one else 2, "bookTicker": 2 if one else 5, "premiumIndex": 1 if one else 10}
    return table.get(name, 1)


def _ms() -> int:
    return time.time_ns() // 1_000_000


class FuturesRest:
    def __init__(self, sim: BinanceSim) -> None:
        self.sim = sim
        self.weight: dict[tuple[str, int], int] = defaultdict(int)
        self.limit = 2400
        self.requests: list[tuple[str, dict[str, str]]] = []

    def markets(self) -> dict[str, Market]:
        return {s: m for s, m in self.sim.markets.items() if s.endswith("USDT")}

    async def dispatch(self, request: Request) -> Response:
        path = request.url.path
        q = dict(request.query_params.items())
        ip = request.client.host if request.client else "?"
        self.requests.append((path, q))
        self.sim.stats["futures_rest_requests"] += 1
        key = (ip, _ms() // 60_000)
        try:
            w = _weight(path, q)
        except (ValueError, TypeError):
            w = 1
        self.weight[key] += w
        headers = {"X-MBX-USED-WEIGHT-1M": str(self.weight[key])}
        if self.weight[key] > self.limit:
            headers["Retry-After"] = str(60 - int(time.time() % 60))
            return _json(429, {"code": -1003, "msg": "Too many requests; current limit is 2400 requests per "
                                                     "minute."}, headers)
        handler = getattr(self, "ep_" + path.strip("/").replace("/", "_"), None)
        if handler is None:
            return _json(404, {"code": -5000, "msg": "Path not found"}, headers)
        try:
            return _json(200, handler(q), headers)
        except ApiError as e:
            return _json(e.status, {"code": e.code, "msg": e.msg}, headers)

    # --- parameters ------------------------------------------------------------------------------------
    def market(self, q: dict[str, str], name: str = "symbol") -> Market:
        sym = q.get(name)
        if not sym:
            raise ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        m = self.markets().get(sym)
        if m is None:
            raise ApiError(-1121, "Invalid symbol.")
        return m

    num = staticmethod(RestApi.int_param)

    def period(self, q: dict[str, str]) -> int:
        p = q.get("period")
        if p not in PERIODS:
            raise ApiError(-1102 if not p else -1130, "Invalid period." if p else
                           "Mandatory parameter 'period' was not sent, was empty/null, or malformed.")
        return PERIODS[p]

    # --- derived prices ---------------------------------------------------------------------------------
    @staticmethod
    def mark(m: Market) -> Decimal:
        return m.tick * (m.best_bid() + m.best_ask()) / 2

    def premium(self, m: Market, now: int) -> dict[str, Any]:
        mark = self.mark(m)
        return {"symbol": m.symbol, "markPrice": fmt(mark), "indexPrice": fmt(mark - m.tick),
                "estimatedSettlePrice": fmt(mark), "lastFundingRate": "0.00010000", "interestRate": "0.00010000",
                "nextFundingTime": now - now % FUNDING_MS + FUNDING_MS, "time": now}

    # --- endpoints ---------------------------------------------------------------------------------------
    def ep_fapi_v1_ping(self, q: dict[str, str]) -> Any:
        return {}

    def ep_fapi_v1_time(self, q: dict[str, str]) -> Any:
        return {"serverTime": _ms()}

    def ep_fapi_v1_exchangeInfo(self, q: dict[str, str]) -> Any:
        return {"timezone": "UTC", "serverTime": _ms(), "futuresType": "U_MARGINED",
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                "limit": 2400},
                               {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200}],
                "exchangeFilters": [], "assets": [{"asset": "USDT", "marginAvailable": True}],
                "symbols": [{"symbol": s, "pair": s, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
                             "onboardDate": 1569398400000, "status": m.status, "baseAsset": m.base,
                             "quoteAsset": m.quote, "marginAsset": "USDT", "pricePrecision": 2,
                             "quantityPrecision": 3, "underlyingType": "COIN",
                             "filters": [{"filterType": "PRICE_FILTER", "tickSize": fmt(m.tick), "minPrice": "0.10",
                                          "maxPrice": "4529764"},
                                         {"filterType": "LOT_SIZE", "stepSize": "0.001", "minQty": "0.001",
                                          "maxQty": "1000"}],
                             "orderTypes": ["LIMIT", "MARKET", "STOP", "TAKE_PROFIT"], "timeInForce": ["GTC", "IOC"]}
                            for s, m in sorted(self.markets().items())]}

    def ep_fapi_v1_depth(self, q: dict[str, str]) -> Any:
        m = self.market(q)
        limit = self.num(q, "limit", 500)
        if limit not in DEPTH_LIMITS:
            raise ApiError(-1130, "Invalid data sent for a parameter: limit.")
        snap = m.depth_snapshot(limit)
        now = _ms()
        return {"lastUpdateId": snap["lastUpdateId"], "E": now, "T": now, "bids": snap["bids"], "asks": snap["asks"]}

    def ep_fapi_v1_trades(self, q: dict[str, str]) -> Any:
        m = self.market(q)
        limit = self.num(q, "limit", 500, 1, 1000) or 500
        return [{"id": t["t"], "price": m.px(t["p"]), "qty": m.qty(t["q"]),
                 "quoteQty": fmt(m.tick * t["p"] * m.lot * t["q"]), "time": t["T"], "isBuyerMaker": t["m"],
                 "isRPITrade": False} for t in list(m.trades)[-limit:]]

    def ep_fapi_v1_aggTrades(self, q: dict[str, str]) -> Any:
        m = self.market(q)
        limit = self.num(q, "limit", 500, 1, 1000) or 500
        from_id, start, end = self.num(q, "fromId"), self.num(q, "startTime"), self.num(q, "endTime")
        if start is not None and end is not None and end - start >= 3_600_000:
            raise ApiError(-1127, "More than 1 hours between startTime and endTime.")
        if from_id is not None and (start is not None or end is not None):
            raise ApiError(-1128, "Combination of optional parameters invalid.")
        rows = [a for a in m.aggs if (from_id is None or a["a"] >= from_id) and (start is None or a["T"] >= start)
                and (end is None or a["T"] <= end)]
        rows = rows[:limit] if (from_id is not None or start is not None) else rows[-limit:]
        return [{"a": a["a"], "p": m.px(a["p"]), "q": m.qty(a["q"]), "f": a["f"], "l": a["l"], "T": a["T"],
                 "m": a["m"]} for a in rows]

    def _klines(self, m: Market, q: dict[str, str], shift: Decimal = Decimal(0), volume: bool = True) -> Any:
        iv = q.get("interval")
        if not iv:
            raise ApiError(-1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
        if iv not in FUTURES_INTERVALS:
            raise ApiError(-1120, "Invalid interval.")
        limit = self.num(q, "limit", 500, 1, 1500) or 500
        span = FUTURES_INTERVALS[iv]
        end = self.num(q, "endTime") or _ms()
        start = self.num(q, "startTime")
        last_open = end - end % span
        first = (start + (-start) % span) if start is not None else last_open - (limit - 1) * span
        rows = []
        t = first
        while t <= last_open and len(rows) < limit:
            k = m.kline(t, t + span - 1)
            o, h, lo, c = (fmt(Decimal(k[x]) - shift) for x in ("o", "h", "l", "c"))
            rows.append([k["t"], o, h, lo, c, k["v"] if volume else "0", k["T"], k["q"] if volume else "0",
                         k["n"] if volume else 0, k["V"] if volume else "0", k["Q"] if volume else "0", "0"])
            t += span
        return rows

    def ep_fapi_v1_klines(self, q: dict[str, str]) -> Any:
        return self._klines(self.market(q), q)

    def ep_fapi_v1_markPriceKlines(self, q: dict[str, str]) -> Any:
        return self._klines(self.market(q), q, volume=False)

    def ep_fapi_v1_indexPriceKlines(self, q: dict[str, str]) -> Any:
        m = self.market(q, "pair")
        return self._klines(m, q, shift=m.tick, volume=False)

    def ep_fapi_v1_premiumIndexKlines(self, q: dict[str, str]) -> Any:
        m = self.market(q)
        rows = self._klines(m, q, volume=False)
        return [[r[0], "0.00010000", "0.00020000", "0.00000000", "0.00010000", *r[5:]] for r in rows]

    def ep_fapi_v1_continuousKlines(self, q: dict[str, str]) -> Any:
        if q.get("contractType") not in ("PERPETUAL", "CURRENT_QUARTER", "NEXT_QUARTER"):
            raise ApiError(-1102, "Mandatory parameter 'contractType' was not sent, was empty/null, or malformed.")
        return self._klines(self.market(q, "pair"), q)

    def ep_fapi_v1_premiumIndex(self, q: dict[str, str]) -> Any:
        now = _ms()
        if q.get("symbol"):
            return self.premium(self.market(q), now)
        return [self.premium(m, now) for _, m in sorted(self.markets().items())]

    def ep_fapi_v1_fundingRate(self, q: dict[str, str]) -> Any:
        m = self.market(q)
        limit = self.num(q, "limit", 100, 1, 1000) or 100
        now = _ms()
        end = self.num(q, "endTime") or now
        start = self.num(q, "startTime")
        times = []
        t = end - end % FUNDING_MS
        while len(times) < 1000 and (start is None or t >= start):
            times.append(t)
            t -= FUNDING_MS
        times.reverse()
        times = times[:limit] if start is not None else times[-limit:]
        return [{"symbol": m.symbol, "fundingTime": x, "fundingRate": "0.00010000", "markPrice": fmt(self.mark(m))}
                for x in times]

    def ep_fapi_v1_openInterest(self, q: dict[str, str]) -> Any:
        m = self.market(q)
        return {"symbol": m.symbol, "openInterest": m.qty(sum(m.bids.values())), "time": _ms()}

    def _stats(self, q: dict[str, str], row: Any) -> Any:
        m = self.market(q)
        span = self.period(q)
        limit = self.num(q, "limit", 30, 1, 500) or 30
        now = _ms()
        end = self.num(q, "endTime") or now
        start = self.num(q, "startTime")
        if start is not None and start < now - 30 * 86_400_000:
            raise ApiError(-1130, "startTime is older than 30 days.")
        times = [end - end % span - i * span for i in range(limit)][::-1]
        if start is not None:
            times = [t for t in times if t >= start]
        return [row(m, t) for t in times]

    def ep_futures_data_openInterestHist(self, q: dict[str, str]) -> Any:
        return self._stats(q, lambda m, t: {"symbol": m.symbol, "sumOpenInterest": m.qty(sum(m.bids.values())),
                                            "sumOpenInterestValue": fmt(self.mark(m) * m.lot * sum(m.bids.values())),
                                            "timestamp": t})

    def _ratio(self, q: dict[str, str]) -> Any:
        return self._stats(q, lambda m, t: {"symbol": m.symbol, "longShortRatio": "1.2500", "longAccount": "0.5556",
                                            "shortAccount": "0.4444", "timestamp": str(t)})

    ep_futures_data_globalLongShortAccountRatio = _ratio
    ep_futures_data_topLongShortAccountRatio = _ratio
    ep_futures_data_topLongShortPositionRatio = _ratio

    def ep_futures_data_takerlongshortRatio(self, q: dict[str, str]) -> Any:
        return self._stats(q, lambda m, t: {"buySellRatio": "1.0500", "buyVol": "105.000", "sellVol": "100.000",
                                            "timestamp": str(t)})

    def _ticker(self, m: Market, now: int) -> dict[str, Any]:
        f = m.ticker_fields(now - 86_400_000, now)
        return {"symbol": m.symbol, "priceChange": f["p"], "priceChangePercent": f["P"], "weightedAvgPrice": f["w"],
                "lastPrice": f["c"], "lastQty": f["Q"], "openPrice": f["o"], "highPrice": f["h"], "lowPrice": f["l"],
                "volume": f["v"], "quoteVolume": f["q"], "openTime": f["O"], "closeTime": f["C"], "firstId": f["F"],
                "lastId": f["L"], "count": f["n"]}

    def ep_fapi_v1_ticker_24hr(self, q: dict[str, str]) -> Any:
        now = _ms()
        if q.get("symbol"):
            return self._ticker(self.market(q), now)
        return [self._ticker(m, now) for _, m in sorted(self.markets().items())]

    def ep_fapi_v2_ticker_price(self, q: dict[str, str]) -> Any:
        now = _ms()
        rows = [self.market(q)] if q.get("symbol") else [m for _, m in sorted(self.markets().items())]
        out = [{"symbol": m.symbol, "price": m.px(m.trades[-1]["p"]) if m.trades else fmt(self.mark(m)), "time": now}
               for m in rows]
        return out[0] if q.get("symbol") else out

    def ep_fapi_v1_ticker_bookTicker(self, q: dict[str, str]) -> Any:
        now = _ms()
        rows = [self.market(q)] if q.get("symbol") else [m for _, m in sorted(self.markets().items())]
        out = []
        for m in rows:
            bt = m.book_ticker()
            out.append({"symbol": m.symbol, "bidPrice": bt["b"], "bidQty": bt["B"], "askPrice": bt["a"],
                        "askQty": bt["A"], "time": now, "lastUpdateId": bt["u"]})
        return out[0] if q.get("symbol") else out


def _json(status: int, body: Any, headers: dict[str, str]) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")
