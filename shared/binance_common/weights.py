"""Request weights of the public REST endpoints (binance-facts.md, rest-api.md). Pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _depth_weight(limit: int) -> int:
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def _count_symbols(params: Mapping[str, Any]) -> int | None:
    """Number of symbols named by ``symbol``/``symbols`` params, None for 'all symbols'."""
    if params.get("symbol"):
        return 1
    syms = params.get("symbols")
    if syms:
        if isinstance(syms, str):
            return max(1, syms.count(",") + 1)
        return len(syms)
    return None


def _ticker_24hr(n: int | None) -> int:
    if n is None:
        return 80
    if n <= 20:
        return 2
    if n <= 100:
        return 40
    return 80


def request_weight(path: str, params: Mapping[str, Any] | None = None) -> int:
    """Weight of one GET ``path`` (e.g. ``/api/v3/depth``) with ``params``."""
    p = params or {}
    n = _count_symbols(p)
    if path == "/api/v3/depth":
        return _depth_weight(int(p.get("limit", 100)))
    if path in ("/api/v3/ping", "/api/v3/time"):
        return 1
    if path == "/api/v3/exchangeInfo":
        return 20
    if path in ("/api/v3/trades", "/api/v3/historicalTrades", "/api/v3/historicalBlockTrades"):
        return 25
    if path in ("/api/v3/referencePrice", "/api/v3/referencePrice/calculation"):
        return 2
    if path == "/api/v3/executionRules":  # 2 a symbol up to 40; every symbol (or one status): 40
        return min(40, 2 * n) if n is not None and not p.get("symbolStatus") else 40
    if path == "/api/v3/aggTrades":
        return 4
    if path in ("/api/v3/klines", "/api/v3/uiKlines", "/api/v3/avgPrice"):
        return 2
    if path == "/api/v3/ticker/24hr":
        return _ticker_24hr(n)
    if path in ("/api/v3/ticker/tradingDay", "/api/v3/ticker"):
        return 4 * (n or 1) if (n or 1) <= 50 else 200
    if path in ("/api/v3/ticker/price", "/api/v3/ticker/bookTicker"):
        return 2 if p.get("symbol") else 4  # `symbols` costs 4 whatever its length
    return _signed_weight(path, p)


SIGNED_WEIGHTS = {
    "/api/v3/account": 20,
    "/api/v3/account/commission": 20,
    "/api/v3/order": 4,
    "/api/v3/allOrders": 20,
    "/api/v3/rateLimit/order": 40,
    "/sapi/v1/asset/tradeFee": 1,
}
"""USER_DATA endpoints of fixed weight (rest-api.md); the others depend on their parameters below."""


def _signed_weight(path: str, p: Mapping[str, Any]) -> int:
    if path in SIGNED_WEIGHTS:
        return SIGNED_WEIGHTS[path]
    if path == "/api/v3/openOrders":
        return 6 if p.get("symbol") else 80
    if path == "/api/v3/myTrades":
        return 5 if p.get("orderId") is not None else 20
    if path == "/api/v3/myPreventedMatches":
        return 20 if p.get("orderId") is not None else 2
    return 1


FUTURES_KLINE_PATHS = ("/fapi/v1/klines", "/fapi/v1/continuousKlines", "/fapi/v1/indexPriceKlines",
                       "/fapi/v1/markPriceKlines", "/fapi/v1/premiumIndexKlines")


def futures_request_weight(path: str, params: Mapping[str, Any] | None = None) -> int:
    """Weight of one USD-M futures GET (fapi.binance.com; its own 2400/min budget). ``/futures/data/*``
    weigh 0 but have their own 1000 requests / 5 min limit (counted as 1 here, so the governor sees them)."""
    p = params or {}
    if path == "/fapi/v1/depth":
        lim = int(p.get("limit", 500))
        return 2 if lim <= 50 else 5 if lim <= 100 else 10 if lim <= 500 else 20
    if path in FUTURES_KLINE_PATHS:
        lim = int(p.get("limit", 500))
        return 1 if lim < 100 else 2 if lim < 500 else 5 if lim <= 1000 else 10
    if path == "/fapi/v1/trades":
        return 5
    if path in ("/fapi/v1/aggTrades", "/fapi/v1/historicalTrades"):
        return 20
    if path == "/fapi/v1/ticker/24hr":
        return 1 if p.get("symbol") else 40
    if path in ("/fapi/v1/ticker/price", "/fapi/v2/ticker/price"):
        return 1 if p.get("symbol") else 2
    if path == "/fapi/v1/ticker/bookTicker":
        return 2 if p.get("symbol") else 5
    if path == "/fapi/v1/premiumIndex":
        return 1 if p.get("symbol") else 10
    return 1
