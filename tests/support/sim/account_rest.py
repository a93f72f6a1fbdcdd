"""Signed REST endpoints of the simulator (USER_DATA): account, commission, trade fees, orders, fills,
order-count limits, prevented matches. Parameters, limits and errors as rest-api.md describes them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .account import AuthFailure

if TYPE_CHECKING:
    from .server import BinanceSim

DAY_MS = 86_400_000
PATHS = {
    "api/v3/account": ("USER_DATA", 20), "api/v3/account/commission": ("USER_DATA", 20),
    "sapi/v1/asset/tradeFee": ("USER_DATA", 1), "api/v3/openOrders": ("USER_DATA", 6),
    "api/v3/order": ("USER_DATA", 4), "api/v3/allOrders": ("USER_DATA", 20), "api/v3/myTrades": ("USER_DATA", 20),
    "api/v3/rateLimit/order": ("USER_DATA", 40), "api/v3/myPreventedMatches": ("USER_DATA", 2),
}


def weight(path: str, q: dict[str, str]) -> int:
    if path == "api/v3/openOrders":
        return 6 if q.get("symbol") else 80
    if path == "api/v3/myTrades":
        return 5 if q.get("orderId") else 20
    if path == "api/v3/myPreventedMatches":
        return 20 if q.get("orderId") else 2
    return PATHS[path][1]


def _int(q: dict[str, str], name: str, default: int | None = None) -> int | None:
    v = q.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise AuthFailure(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                          "'^[0-9]{1,20}$'.") from None


class AccountRest:
    def __init__(self, sim: BinanceSim) -> None:
        self.sim = sim
        self.requests: list[tuple[str, dict[str, str]]] = []

    @property
    def acct(self) -> Any:
        return self.sim.account

    def handle(self, path: str, raw_query: str, body: str, api_key: str | None, ip: str) -> tuple[int, Any]:
        permission = PATHS[path][0]
        try:
            q = self.acct.verify_rest(raw_query, body, api_key, ip, permission)
            self.requests.append((path, q))
            return 200, getattr(self, "ep_" + path.split("/", 2)[2].replace("/", "_"))(q)
        except AuthFailure as e:
            return e.status, {"code": e.code, "msg": e.msg}

    def _symbol(self, q: dict[str, str], required: bool = True) -> str | None:
        sym = q.get("symbol")
        if not sym:
            if required:
                raise AuthFailure(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
            return None
        if sym not in self.sim.markets:
            raise AuthFailure(-1121, "Invalid symbol.")
        return sym

    @staticmethod
    def _limit(q: dict[str, str]) -> int:
        n = _int(q, "limit", 500)
        assert n is not None
        if not 1 <= n <= 1000:
            raise AuthFailure(-1130, "Invalid data sent for a parameter.")
        return n

    @staticmethod
    def _window(q: dict[str, str]) -> tuple[int | None, int | None]:
        start, end = _int(q, "startTime"), _int(q, "endTime")
        if start is not None and end is not None and end - start > DAY_MS:
            raise AuthFailure(-1127, "More than 24 hours between startTime and endTime.")
        return start, end

    # --- endpoints -----------------------------------------------------------------------------------
    def ep_account(self, q: dict[str, str]) -> Any:
        return {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                                "seller": "0.00000000"},
            "canTrade": True, "canWithdraw": False, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": self.acct.update_time,
            "accountType": "SPOT", "balances": self.acct.balance_rows(q.get("omitZeroBalances") == "true"),
            "permissions": ["SPOT"], "uid": 354937868,
        }

    def ep_account_commission(self, q: dict[str, str]) -> Any:
        sym = self._symbol(q)
        rates = {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000", "seller": "0.00000000"}
        return {"symbol": sym, "standardCommission": rates,
                "specialCommission": {k: "0.00000000" for k in rates},
                "taxCommission": {k: "0.00000000" for k in rates},
                "discount": {"enabledForAccount": True, "enabledForSymbol": True, "discountAsset": "BNB",
                             "discount": "0.75000000"}}

    def ep_asset_tradeFee(self, q: dict[str, str]) -> Any:
        sym = self._symbol(q, required=False)
        names = [sym] if sym else sorted(self.sim.markets)
        return [{"symbol": s, "makerCommission": "0.001", "takerCommission": "0.001"} for s in names]

    def ep_openOrders(self, q: dict[str, str]) -> Any:
        sym = self._symbol(q, required=False)
        return [o for o in self.acct.orders.values()
                if o["status"] in ("NEW", "PARTIALLY_FILLED") and (sym is None or o["symbol"] == sym)]

    def ep_order(self, q: dict[str, str]) -> Any:
        sym = self._symbol(q)
        oid, coid = _int(q, "orderId"), q.get("origClientOrderId")
        if oid is None and not coid:
            raise AuthFailure(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        for o in self.acct.orders.values():
            if o["symbol"] == sym and (o["orderId"] == oid if oid is not None else o["clientOrderId"] == coid):
                if coid and o["clientOrderId"] != coid:
                    break
                return o
        raise AuthFailure(-2013, "Order does not exist.")

    def ep_allOrders(self, q: dict[str, str]) -> Any:
        sym = self._symbol(q)
        limit = self._limit(q)
        start, end = self._window(q)
        oid = _int(q, "orderId")
        rows = [o for o in self.acct.orders.values() if o["symbol"] == sym]
        if oid is not None:
            rows = [o for o in rows if o["orderId"] >= oid][:limit]
        elif start is not None:
            rows = [o for o in rows if o["time"] >= start and (end is None or o["time"] <= end)][:limit]
        else:
            rows = [o for o in rows if end is None or o["time"] <= end][-limit:]
        return rows

    def ep_myTrades(self, q: dict[str, str]) -> Any:
        sym = self._symbol(q)
        limit = self._limit(q)
        start, end = self._window(q)
        oid, from_id = _int(q, "orderId"), _int(q, "fromId")
        if (from_id is not None or oid is not None) and (start is not None or end is not None):
            raise AuthFailure(-1128, "Combination of optional parameters invalid.")
        rows = [t for t in self.acct.fills if t["symbol"] == sym and (oid is None or t["orderId"] == oid)]
        if from_id is not None:
            return [t for t in rows if t["id"] >= from_id][:limit]
        if start is not None:
            return [t for t in rows if t["time"] >= start and (end is None or t["time"] <= end)][:limit]
        return [t for t in rows if end is None or t["time"] <= end][-limit:]

    def ep_rateLimit_order(self, q: dict[str, str]) -> Any:
        return [{"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50,
                 "count": len(self.acct.order_count_10s)},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 160000,
                 "count": len(self.acct.orders)}]

    def ep_myPreventedMatches(self, q: dict[str, str]) -> Any:
        sym = self._symbol(q)
        pm, oid = _int(q, "preventedMatchId"), _int(q, "orderId")
        if pm is None and oid is None:
            raise AuthFailure(-1128, "Combination of optional parameters invalid.")
        rows = [r for r in self.acct.prevented if r["symbol"] == sym]
        if pm is not None:
            return [r for r in rows if r["preventedMatchId"] == pm]
        if q.get("limit") and q.get("fromPreventedMatchId") is None:
            raise AuthFailure(-1128, "Combination of optional parameters invalid.")
        from_pm = _int(q, "fromPreventedMatchId", 0) or 0
        return [r for r in rows if oid in (r["takerOrderId"], r["makerOrderId"])
                and r["preventedMatchId"] >= from_pm][: self._limit(q)]
