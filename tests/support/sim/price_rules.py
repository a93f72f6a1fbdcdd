"""The simulator's price-range execution rule and block-trade endpoints (rest-api.md, 2026): /api/v3/executionRules,
/referencePrice, /referencePrice/calculation, /historicalBlockTrades. A market quoted in BTC has never had a
reference price (-2043), like a pair the rule does not cover; the others use the 5-minute average price."""

from __future__ import annotations

import time
from typing import Any

from .market import Market, fmt

NO_REFERENCE = (-2043, "This symbol doesn't have a reference price.")
STATUSES = ("TRADING", "HALT", "BREAK")


class ApiError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        self.code, self.msg, self.status = code, msg, status


def has_reference(m: Market) -> bool:
    return m.quote != "BTC"


class PriceRuleEndpoints:
    """Mixed into the simulator's RestApi (it provides ``market``, ``markets``, ``int_param`` and ``sim``)."""

    sim: Any

    def market(self, q: dict[str, str], required: bool = True) -> Market:
        raise NotImplementedError

    def markets(self, q: dict[str, str]) -> list[Market] | None:
        raise NotImplementedError

    @staticmethod
    def int_param(q: dict[str, str], name: str, default: int | None = None, lo: int | None = None,
                  hi: int | None = None) -> int | None:
        raise NotImplementedError

    def _status_param(self, q: dict[str, str]) -> str | None:
        st = q.get("symbolStatus")
        if st is not None and st not in STATUSES:
            raise ApiError(-1100, "Illegal characters found in parameter 'symbolStatus'; legal range is "
                           "'TRADING, HALT, BREAK'.")
        return st

    def ep_executionRules(self, q: dict[str, str]) -> Any:
        st = self._status_param(q)
        if st is not None and (q.get("symbol") or q.get("symbols")):
            raise ApiError(-1128, "Combination of optional parameters invalid.")
        ms = self.markets(q) or list(self.sim.markets.values())
        if st is not None:
            ms = [m for m in ms if m.status == st]
        rules = [{"ruleType": "PRICE_RANGE", "bidLimitMultUp": "1.0001", "bidLimitMultDown": "0.9999",
                  "askLimitMultUp": "1.0001", "askLimitMultDown": "0.9999"}]
        return {"symbolRules": [{"symbol": m.symbol, "rules": rules if has_reference(m) else []} for m in ms]}

    def ep_referencePrice(self, q: dict[str, str]) -> Any:
        m = self.market(q)
        if not has_reference(m):
            raise ApiError(*NO_REFERENCE)
        now = time.time_ns() // 1_000_000
        return {"symbol": m.symbol, "referencePrice": m.reference_price(now), "timestamp": now}

    def ep_referencePrice_calculation(self, q: dict[str, str]) -> Any:
        m = self.market(q)
        st = self._status_param(q)
        if st is not None and m.status != st:
            raise ApiError(-1220, "The symbol's status does not match the requested symbolStatus.")
        if not has_reference(m):
            raise ApiError(*NO_REFERENCE)
        return {"symbol": m.symbol, "calculationType": "ARITHMETIC_MEAN", "bucketCount": 10, "bucketWidthMs": 1000}

    def ep_historicalBlockTrades(self, q: dict[str, str]) -> Any:
        m = self.market(q)
        if not q.get("fromId"):
            raise ApiError(-1102, "Mandatory parameter 'fromId' was not sent, was empty/null, or malformed.")
        from_id = self.int_param(q, "fromId", None, 0)
        limit = self.int_param(q, "limit", 500, 1, 1000) or 500
        rows = [b for b in m.blocks if b["t"] >= (from_id or 0)][:limit]
        return [{"id": b["t"], "price": m.px(b["p"]), "qty": m.qty(b["q"]),
                 "quoteQty": fmt(m.tick * b["p"] * m.lot * b["q"]), "time": b["T"], "isBuyerMaker": b["m"]}
                for b in rows]
