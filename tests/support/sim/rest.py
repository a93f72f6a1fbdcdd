"""REST side of the simulator: Binance /api/v3 market-data endpoints, weights, limits, errors, faults."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import account_rest
from .market import Market, fmt
from .names import INTERVALS
from .price_rules import ApiError, PriceRuleEndpoints

if TYPE_CHECKING:
    from .server import BinanceSim

GEO_MSG = ("Service unavailable from a restricted location according to 'b. Eligibility' in "
           "https://www.binance.com/en/terms. Please contact customer service if you believe you received this "
           "message in error.")


def _ms() -> int:
    return time.time_ns() // 1_000_000


def _weight(path: str, q: dict[str, str]) -> int:
    nsym = 1 if q.get("symbol") else (len(json.loads(q["symbols"])) if q.get("symbols") else 0)
    if path in ("ticker/price", "ticker/bookTicker"):
        return 2 if q.get("symbol") else 4
    if path == "depth":
        lim = int(q.get("limit", "100") or 100)
        return 5 if lim <= 100 else 25 if lim <= 500 else 50 if lim <= 1000 else 250
    if path in ("trades", "historicalTrades", "historicalBlockTrades"):
        return 25
    if path in ("referencePrice", "referencePrice/calculation"):
        return 2
    if path == "executionRules":
        return min(40, 2 * nsym) if nsym and not q.get("symbolStatus") else 40
    if path == "exchangeInfo":
        return 20
    if path in ("aggTrades",):
        return 4
    if path in ("klines", "uiKlines", "avgPrice"):
        return 2
    if path == "ticker/24hr":
        return 80 if nsym == 0 else 2 if nsym <= 20 else 40 if nsym <= 100 else 80
    if path in ("ticker/tradingDay", "ticker"):
        return min(200, 4 * max(nsym, 1)) if nsym <= 50 else 200
    if path in ("ticker/price", "ticker/bookTicker"):
        return 2 if nsym == 1 else 4
    return 1


class RestApi(PriceRuleEndpoints):
    def __init__(self, sim: BinanceSim) -> None:
        self.sim = sim
        self.weight: dict[tuple[str, int], int] = defaultdict(int)  # (ip, minute) -> weight
        self.retry_until: dict[str, float] = {}
        self.ban_until: dict[str, float] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/api/v3/{path:path}", self.dispatch, methods=["GET"]),
            Route("/sapi/v1/{path:path}", self.dispatch, methods=["GET"]),
            Route("/fapi/{path:path}", self.sim.futures_rest.dispatch, methods=["GET"]),
            Route("/futures/data/{path:path}", self.sim.futures_rest.dispatch, methods=["GET"]),
            Route("/_sim/{action:path}", self.control, methods=["GET", "POST"]),
        ])

    # --- plumbing ----------------------------------------------------------------------------------
    def used(self, ip: str) -> int:
        return self.weight[(ip, _ms() // 60_000)]

    async def dispatch(self, request: Request) -> Response:
        path = request.path_params["path"]
        q = {k: v for k, v in request.query_params.items()}
        ip = request.client.host if request.client else "?"
        self.requests.append((path, q))
        self.sim.stats["rest_requests"] += 1
        now = time.monotonic()
        cfg = self.sim.config
        if self.ban_until.get(ip, 0) > now:
            ra = int(self.ban_until[ip] - now) + 1
            return self._err(418, -1003, f"Way too many requests; IP({ip}) banned until {_ms() + ra * 1000}. "
                             "Please use the websocket for live updates to avoid bans.", ra)
        if self.retry_until.get(ip, 0) > now:
            # continuing while told to back off: ban
            self.ban_until[ip] = now + cfg.ban_seconds
            self.sim.stats["bans"] += 1
            return self._err(418, -1003, f"Way too many requests; IP({ip}) banned.", int(cfg.ban_seconds))
        fault = self.sim.faults.take_rest_fault(path)
        if fault is not None:
            if fault.get("delay"):
                await asyncio.sleep(float(fault["delay"]))
            status = int(fault.get("status") or 0)
            if status == 451:
                return self._raw(451, {"code": 0, "msg": GEO_MSG})
            if status == 429:
                ra = int(fault.get("retry_after", 5))
                self.retry_until[ip] = now + ra
                return self._err(429, -1003, "Too many requests; current limit of IP(%s) request weight is %d per "
                                 "minute. Please use WebSocket Streams for live updates to avoid polling the API."
                                 % (ip, cfg.weight_limit), ra)
            if status == 418:
                ra = int(fault.get("retry_after", 10))
                self.ban_until[ip] = now + ra
                return self._err(418, -1003, f"Way too many requests; IP({ip}) banned.", ra)
            if status >= 500:
                return Response(b"<html><body><h1>%d</h1></body></html>" % status, status, media_type="text/html")
        full = request.url.path.lstrip("/")
        signed = full in account_rest.PATHS
        try:
            w = account_rest.weight(full, q) if signed else _weight(path, q)
        except (ValueError, TypeError):
            w = 1
        key = (ip, _ms() // 60_000)
        self.weight[key] += w
        if self.weight[key] > cfg.weight_limit:
            ra = 60 - int(time.time() % 60)
            self.retry_until[ip] = now + ra
            self.sim.stats["rate_limited"] += 1
            return self._err(429, -1003, "Too many requests; current limit of IP(%s) request weight is %d per "
                             "minute. Please use WebSocket Streams for live updates to avoid polling the API."
                             % (ip, cfg.weight_limit), ra, used=self.weight[key])
        if signed:
            status, body = self.sim.account_rest.handle(full, request.url.query, (await request.body()).decode(),
                                                        request.headers.get("x-mbx-apikey"), ip)
            return self._raw(status, body, used=self.weight[key])
        if full.startswith("sapi/"):
            return self._raw(404, {"code": -1, "msg": "Not found"}, used=self.weight[key])
        try:
            handler = getattr(self, "ep_" + path.replace("/", "_"), None)
            if handler is None:
                raise ApiError(-1, "Not found", 404)
            body = handler(q)
        except ApiError as e:
            return self._raw(e.status, {"code": e.code, "msg": e.msg}, used=self.weight[key])
        return self._raw(200, body, used=self.weight[key])

    def _raw(self, status: int, body: Any, used: int | None = None, retry_after: int | None = None) -> Response:
        headers = {"X-MBX-USED-WEIGHT-1M": str(used if used is not None else 0)}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")

    def _err(self, status: int, code: int, msg: str, retry_after: int, used: int | None = None) -> Response:
        return self._raw(status, {"code": code, "msg": msg}, used=used, retry_after=retry_after)

    # --- parameter helpers ---------------------------------------------------------------------------
    def market(self, q: dict[str, str], required: bool = True) -> Market:
        sym = q.get("symbol")
        if not sym:
            raise ApiError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if not re.fullmatch(r"[A-Z0-9\-_.]{1,20}", sym):  # Binance's own legal range
            raise ApiError(-1100, "Illegal characters found in parameter 'symbol'; legal range is "
                           "'^[A-Z0-9-_.]{1,20}$'.")
        m = self.sim.markets.get(sym)
        if m is None:
            raise ApiError(-1121, "Invalid symbol.")
        return m

    def markets(self, q: dict[str, str]) -> list[Market] | None:
        """One, several (symbols=[...]) or None meaning all."""
        if q.get("symbol") and q.get("symbols"):
            raise ApiError(-1101, "Parameter 'symbol' and 'symbols' cannot be sent together.")
        if q.get("symbol"):
            return [self.market(q)]
        if q.get("symbols"):
            try:
                names = json.loads(q["symbols"])
                assert isinstance(names, list) and all(isinstance(n, str) for n in names)
            except (ValueError, AssertionError):
                raise ApiError(-1100, "Illegal characters found in parameter 'symbols'; legal range is "
                               "'^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$'.") from None
            out = []
            for n in names:
                m = self.sim.markets.get(n)
                if m is None:
                    raise ApiError(-1121, "Invalid symbol.")
                out.append(m)
            return out
        return None

    @staticmethod
    def int_param(q: dict[str, str], name: str, default: int | None = None, lo: int | None = None,
                  hi: int | None = None) -> int | None:
        v = q.get(name)
        if v is None or v == "":
            return default
        try:
            n = int(v)
        except ValueError:
            raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                           "'^[0-9]{1,20}$'.") from None
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise ApiError(-1100 if name != "limit" else -1130, f"Invalid data sent for a parameter: {name}.")
        return n

    # --- endpoints -----------------------------------------------------------------------------------
    def ep_ping(self, q: dict[str, str]) -> Any:
        return {}

    def ep_time(self, q: dict[str, str]) -> Any:
        return {"serverTime": _ms() + self.sim.config.clock_offset_ms}

    def ep_exchangeInfo(self, q: dict[str, str]) -> Any:
        if self.sim.replay_data and self.sim.replay_data.exchange_info:
            info = dict(self.sim.replay_data.exchange_info)
        else:
            info = {"timezone": "UTC", "serverTime": _ms(), "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": self.sim.config.weight_limit},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}],
                "exchangeFilters": [], "symbols": [symbol_info(m) for m in self.sim.markets.values()]}
        syms = info["symbols"]
        if q.get("symbol") or q.get("symbols"):
            wanted = [q["symbol"]] if q.get("symbol") else json.loads(q["symbols"])
            by = {s["symbol"]: s for s in syms}
            missing = [w for w in wanted if w not in by]
            if missing:
                raise ApiError(-1121, "Invalid symbol.")
            syms = [by[w] for w in wanted]
        if q.get("symbolStatus"):
            syms = [s for s in syms if s.get("status") == q["symbolStatus"]]
        if q.get("permissions"):
            perms = json.loads(q["permissions"]) if q["permissions"].startswith("[") else [q["permissions"]]
            syms = [s for s in syms if any(p in sum(s.get("permissionSets", [[]]), s.get("permissions", []))
                                           for p in perms)]
        info["symbols"] = syms
        return info

    def ep_depth(self, q: dict[str, str]) -> Any:
        m = self.market(q)
        limit = self.int_param(q, "limit", 100, 1, 5000) or 100
        tl = self.sim.timeline
        if tl is not None and (snap := tl.depth(m.symbol, limit)) is not None:
            return snap
        if self.sim.replay_data and m.symbol in self.sim.replay_data.depth:
            snap = self.sim.replay_data.depth[m.symbol]
            return {"lastUpdateId": snap["lastUpdateId"], "bids": snap["bids"][:limit], "asks": snap["asks"][:limit]}
        return m.depth_snapshot(limit)

    def _trade_rows(self, m: Market, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"id": t["t"], "price": m.px(t["p"]), "qty": m.qty(t["q"]),
                 "quoteQty": fmt(m.tick * t["p"] * m.lot * t["q"]), "time": t["T"], "isBuyerMaker": t["m"],
                 "isBestMatch": True} for t in rows]

    def ep_trades(self, q: dict[str, str]) -> Any:
        m = self.market(q)
        limit = self.int_param(q, "limit", 500, 1, 1000) or 500
        if self.sim.timeline is not None and m.symbol in self.sim.timeline.symbols:
            return self.sim.timeline.recent_trades(m.symbol, from_id=None, limit=limit)
        return self._trade_rows(m, list(m.trades)[-limit:])

    def ep_historicalTrades(self, q: dict[str, str]) -> Any:
        m = self.market(q)
        limit = self.int_param(q, "limit", 500, 1, 1000) or 500
        from_id = self.int_param(q, "fromId", None, 0)
        if self.sim.timeline is not None and m.symbol in self.sim.timeline.symbols:
            return self.sim.timeline.recent_trades(m.symbol, from_id=from_id, limit=limit)
        rows = list(m.trades)
        if from_id is None:
            rows = rows[-limit:]
        else:
            rows = [t for t in rows if t["t"] >= from_id][:limit]
        return self._trade_rows(m, rows)

    def ep_aggTrades(self, q: dict[str, str]) -> Any:
        m = self.market(q)
        limit = self.int_param(q, "limit", 500, 1, 1000) or 500
        from_id = self.int_param(q, "fromId", None, 0)
        start = self.int_param(q, "startTime", None, 0)
        end = self.int_param(q, "endTime", None, 0)
        if start is not None and end is not None and end - start > 3_600_000:
            raise ApiError(-1127, "More than 1 hours between startTime and endTime.")
        if self.sim.timeline is not None and m.symbol in self.sim.timeline.symbols:
            return self.sim.timeline.agg_trades(m.symbol, from_id=from_id, start=start, end=end, limit=limit)
        rows = list(m.aggs)
        if from_id is not None:
            rows = [a for a in rows if a["a"] >= from_id]
        if start is not None:
            rows = [a for a in rows if a["T"] >= start]
        if end is not None:
            rows = [a for a in rows if a["T"] <= end]
        rows = rows[:limit] if (from_id is not None or start is not None) else rows[-limit:]
        return [{"a": a["a"], "p": m.px(a["p"]), "q": m.qty(a["q"]), "f": a["f"], "l": a["l"], "T": a["T"],
                 "m": a["m"], "M": True} for a in rows]

    def ep_klines(self, q: dict[str, str]) -> Any:
        m = self.market(q)
        iv = q.get("interval")
        if not iv:
            raise ApiError(-1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
        if iv not in INTERVALS:
            raise ApiError(-1120, "Invalid interval.")
        limit = self.int_param(q, "limit", 500, 1, 1000) or 500
        span = INTERVALS[iv]
        tz = q.get("timeZone", "0")
        try:
            h, _, mi = tz.lstrip("+-").partition(":")
            off = (int(h) * 60 + int(mi or 0)) * 60_000 * (-1 if tz.startswith("-") else 1)
            assert -12 * 3_600_000 <= off <= 14 * 3_600_000
        except (ValueError, AssertionError):
            raise ApiError(-1100, "Illegal characters found in parameter 'timeZone'.") from None
        end = self.int_param(q, "endTime", None, 0) or _ms()
        start = self.int_param(q, "startTime", None, 0)
        last_open = end - (end + off) % span
        if start is not None:
            first_open = start - (start + off) % span
            if first_open < start:
                first_open += span  # candles opening at or after startTime, oldest first
        else:
            first_open = last_open - (limit - 1) * span
        rows: list[list[Any]] = []
        t = first_open
        while t <= last_open and len(rows) < limit:
            k = m.kline(t, t + span - 1)
            rows.append([k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"], k["V"], k["Q"], "0"])
            t += span
        return rows

    ep_uiKlines = ep_klines

    def ep_avgPrice(self, q: dict[str, str]) -> Any:
        m = self.market(q)
        now = _ms()
        return {"mins": 5, "price": fmt(m.avg_price(now)), "closeTime": now}

    def ep_ticker_24hr(self, q: dict[str, str]) -> Any:
        ms = self.markets(q)
        typ = q.get("type", "FULL")
        if typ not in ("FULL", "MINI"):
            raise ApiError(-1100, "Illegal characters found in parameter 'type'; legal range is 'FULL, MINI'.")
        rows = [self._ticker(m, 86_400_000, typ, full_24=True) for m in (ms or self.sim.markets.values())]
        return rows[0] if q.get("symbol") else rows

    def ep_ticker_tradingDay(self, q: dict[str, str]) -> Any:
        ms = self.markets(q)
        if ms is None:
            raise ApiError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        typ = q.get("type", "FULL")
        now = _ms()
        day = now - now % 86_400_000
        rows = [self._ticker(m, now - day, typ) for m in ms]
        return rows[0] if q.get("symbol") else rows

    def ep_ticker(self, q: dict[str, str]) -> Any:
        ms = self.markets(q)
        if ms is None:
            raise ApiError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if len(ms) > 100:
            raise ApiError(-1101, "Too many values sent for parameter 'symbols', max is 100.")
        ws = q.get("windowSize", "1d")
        unit = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}.get(ws[-1:])
        try:
            n = int(ws[:-1])
            ok = unit is not None and ((ws[-1] == "m" and 1 <= n <= 59) or (ws[-1] == "h" and 1 <= n <= 23)
                                       or (ws[-1] == "d" and 1 <= n <= 7))
        except ValueError:
            ok = False
        if not ok or unit is None:
            raise ApiError(-1100, "Invalid windowSize.")
        rows = [self._ticker(m, n * unit, q.get("type", "FULL")) for m in ms]
        return rows[0] if q.get("symbol") else rows

    def _ticker(self, m: Market, span: int, typ: str, full_24: bool = False) -> dict[str, Any]:
        now = _ms()
        f = m.ticker_fields(now - span, now)
        if typ == "MINI":
            return {"symbol": m.symbol, "openPrice": f["o"], "highPrice": f["h"], "lowPrice": f["l"],
                    "lastPrice": f["c"], "volume": f["v"], "quoteVolume": f["q"], "openTime": f["O"],
                    "closeTime": f["C"], "firstId": f["F"], "lastId": f["L"], "count": f["n"]}
        row = {"symbol": m.symbol, "priceChange": f["p"], "priceChangePercent": f["P"],
               "weightedAvgPrice": f["w"], "openPrice": f["o"], "highPrice": f["h"], "lowPrice": f["l"],
               "lastPrice": f["c"], "volume": f["v"], "quoteVolume": f["q"], "openTime": f["O"],
               "closeTime": f["C"], "firstId": f["F"], "lastId": f["L"], "count": f["n"]}
        if full_24:
            bt = m.book_ticker()
            row = {"symbol": m.symbol, "priceChange": f["p"], "priceChangePercent": f["P"],
                   "weightedAvgPrice": f["w"], "prevClosePrice": f["o"], "lastPrice": f["c"], "lastQty": f["Q"],
                   "bidPrice": bt["b"], "bidQty": bt["B"], "askPrice": bt["a"], "askQty": bt["A"],
                   "openPrice": f["o"], "highPrice": f["h"], "lowPrice": f["l"], "volume": f["v"],
                   "quoteVolume": f["q"], "openTime": f["O"], "closeTime": f["C"], "firstId": f["F"],
                   "lastId": f["L"], "count": f["n"]}
        return row

    def ep_ticker_price(self, q: dict[str, str]) -> Any:
        ms = self.markets(q)
        rows = []
        for m in ms or self.sim.markets.values():
            last = m.trades[-1]["p"] if m.trades else m.best_bid()
            rows.append({"symbol": m.symbol, "price": m.px(last)})
        return rows[0] if q.get("symbol") else rows

    def ep_ticker_bookTicker(self, q: dict[str, str]) -> Any:
        ms = self.markets(q)
        rows = []
        for m in ms or self.sim.markets.values():
            bt = m.book_ticker()
            rows.append({"symbol": m.symbol, "bidPrice": bt["b"], "bidQty": bt["B"], "askPrice": bt["a"],
                         "askQty": bt["A"]})
        return rows[0] if q.get("symbol") else rows

    # --- control -------------------------------------------------------------------------------------
    async def control(self, request: Request) -> Response:
        action = request.path_params["action"]
        args: dict[str, Any] = {}
        if request.method == "POST":
            body = await request.body()
            args = orjson.loads(body) if body else {}
        try:
            result = await self.sim.faults.call(action, args)
        except (KeyError, TypeError, ValueError) as e:
            return Response(orjson.dumps({"error": str(e)}), 400, media_type="application/json")
        return Response(orjson.dumps({"ok": True, "result": result}, default=str), 200,
                        media_type="application/json")


def symbol_info(m: Market) -> dict[str, Any]:
    return {
        "symbol": m.symbol, "status": m.status, "baseAsset": m.base, "baseAssetPrecision": 8,
        "quoteAsset": m.quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True, "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": fmt(m.tick), "maxPrice": "1000000.00000000",
             "tickSize": fmt(m.tick)},
            {"filterType": "LOT_SIZE", "minQty": fmt(m.lot), "maxQty": "9000.00000000", "stepSize": fmt(m.lot)},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "100.00000000",
             "stepSize": "0.00000000"},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


_ = Decimal
