"""The codec of one account's user-data feed in Redis: written by the daemon, read by the front ends.

Keys (:meth:`binance_common.keys.Keys.account`), all under ``acct:<account id>:``:

* ``events`` STREAM, capped like a stream history. Fields ``k`` (kind) and ``d`` (JSON):
  ``event`` (``d`` = the Binance event as sent: executionReport, outboundAccountPosition, balanceUpdate,
  listStatus, externalLockUpdate, eventStreamTerminated), ``gap`` (``d`` = ``{from_ms, to_ms, reason}``: no
  connection was subscribed in that span and Binance does not replay), ``reconciled`` (``d`` = ``{at_ms,
  balances, orders, fills, symbols}``: the account was re-read over REST after a gap or a start).
* ``balances`` STRING JSON ``{"as_of_ms", "source": "rest"|"stream", "balances": {asset: [free, locked]}}``.
* ``orders`` HASH ``<SYMBOL>:<orderId>`` -> JSON order with REST field names (:data:`ORDER_FIELDS`).
* ``fills`` HASH ``<SYMBOL>:<tradeId>:<orderId>`` -> JSON fill (a self-trade has one trade id and two orders) with myTrades field names (:data:`FILL_FIELDS`).
* ``status`` HASH: ``state`` (:class:`AccountStreamState`), ``since_ms``, ``subscribed_ms``, ``last_event_ms``,
  ``last_alive_ms``, ``gaps``, ``reconciles``, ``events``, ``reason``, ``key_type``.

Pure functions; amounts stay the strings Binance sent.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import orjson

EVENT, GAP, RECONCILED = "event", "gap", "reconciled"
TERMINAL = ("FILLED", "CANCELED", "REJECTED", "EXPIRED", "EXPIRED_IN_MATCH")
"""Order statuses nothing follows: between two records of the same time and quantity, the terminal one wins."""
PARTS = ("events", "balances", "orders", "fills", "status")

ORDER_FIELDS = ("symbol", "orderId", "orderListId", "clientOrderId", "price", "origQty", "executedQty",
                "cummulativeQuoteQty", "status", "timeInForce", "type", "side", "stopPrice", "icebergQty", "time",
                "updateTime", "isWorking", "workingTime", "selfTradePreventionMode")
FILL_FIELDS = ("symbol", "id", "orderId", "price", "qty", "quoteQty", "commission", "commissionAsset", "time",
               "isBuyer", "isMaker")

# executionReport letter -> REST order field
_REPORT_ORDER = {"s": "symbol", "i": "orderId", "g": "orderListId", "c": "clientOrderId", "p": "price",
                 "q": "origQty", "z": "executedQty", "Z": "cummulativeQuoteQty", "X": "status", "f": "timeInForce",
                 "o": "type", "S": "side", "P": "stopPrice", "F": "icebergQty", "O": "time", "T": "updateTime",
                 "w": "isWorking", "W": "workingTime", "V": "selfTradePreventionMode"}


class AccountStreamState(StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    RECONCILING = "reconciling"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


def order_key(o: dict[str, Any]) -> str:
    return f"{o['symbol']}:{o['orderId']}"


def fill_key(t: dict[str, Any]) -> str:
    return f"{t['symbol']}:{t['id']}:{t['orderId']}"


def order_from_rest(o: dict[str, Any]) -> dict[str, Any]:
    return {k: o[k] for k in ORDER_FIELDS if k in o}


def order_from_report(e: dict[str, Any]) -> dict[str, Any]:
    """The order's state after an executionReport, with REST field names. For a cancel (``C`` set) the
    report's ``c`` is the cancel request's id and ``C`` the order's own: keep the order's."""
    o = {field: e[letter] for letter, field in _REPORT_ORDER.items() if letter in e}
    if e.get("C"):
        o["clientOrderId"] = e["C"]
    return o


def fill_from_report(e: dict[str, Any]) -> dict[str, Any] | None:
    """The fill an executionReport of execution type TRADE reports, with myTrades field names."""
    if e.get("x") != "TRADE":
        return None
    return {"symbol": e["s"], "id": e["t"], "orderId": e["i"], "price": e["L"], "qty": e["l"], "quoteQty": e["Y"],
            "commission": e["n"], "commissionAsset": e.get("N"), "time": e["T"], "isBuyer": e["S"] == "BUY",
            "isMaker": bool(e.get("m"))}


def fill_from_rest(t: dict[str, Any]) -> dict[str, Any]:
    return {k: t[k] for k in FILL_FIELDS if k in t}


def dumps(value: Any) -> bytes:
    """JSON with Decimals as strings (Binance numbers decoded exactly stay exact)."""
    return orjson.dumps(value, default=str)


def encode_entry(kind: str, data: Any) -> dict[str, bytes]:
    return {"k": kind.encode(), "d": dumps(data)}


def decode_entry(fields: dict[Any, Any]) -> tuple[str, Any]:
    def get(name: str) -> Any:
        return fields.get(name, fields.get(name.encode()))

    kind = get("k")
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    return kind, orjson.loads(get("d") or b"null")


def encode_balances(balances: dict[str, tuple[str, str]], as_of_ms: int, source: str) -> bytes:
    return dumps({"as_of_ms": as_of_ms, "source": source,
                  "balances": {a: [f, lk] for a, (f, lk) in sorted(balances.items())}})


def decode_balances(raw: bytes | str | None) -> tuple[dict[str, tuple[str, str]], int, str] | None:
    if raw is None:
        return None
    d = orjson.loads(raw)
    return {a: (str(v[0]), str(v[1])) for a, v in d["balances"].items()}, int(d["as_of_ms"]), str(d["source"])
