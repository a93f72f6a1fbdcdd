"""The simulator's account: API keys of the three types, signature and timestamp checks exactly as Binance
does them, balances, orders, fills, and the user-data events that activity produces.

Signature check (rest-api.md "SIGNED Endpoint security"): the payload is the query string as received
(percent-encoded) without the ``signature`` pair, followed by the body; HMAC signatures are compared
case-insensitively as hex, RSA (PKCS#1 v1.5, SHA-256) and Ed25519 signatures are base64 and verified with the
registered public key. A client that signs the unencoded text of a non-ASCII parameter gets -1022, as on
Binance. Timing: ``timestamp < serverTime + 1000 and serverTime - timestamp <= recvWindow``.

Activity is driven by tests (:meth:`SimAccount.place`, :meth:`fill`, :meth:`cancel`, :meth:`deposit`); every
event is appended to :attr:`SimAccount.events` (numbered by position) and pushed to the WebSocket API's
subscribers of this account (:mod:`.wsapi`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from .market import fmt


class AuthFailure(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        self.code, self.msg, self.status = code, msg, status


@dataclass
class SimKey:
    api_key: str
    key_type: str  # HMAC | RSA | Ed25519
    secret: str | None = None
    public_key: Any = None
    permissions: set[str] = field(default_factory=lambda: {"USER_DATA", "USER_STREAM"})
    allowed_ips: set[str] | None = None  # None: unrestricted

    def verify(self, payload: bytes, signature: str) -> bool:
        if self.key_type == "HMAC":
            assert self.secret is not None
            good = hmac.new(self.secret.encode(), payload, hashlib.sha256).hexdigest()
            return hmac.compare_digest(good, signature.lower())
        try:
            raw = base64.b64decode(signature, validate=True)
        except ValueError:
            return False
        try:
            if self.key_type == "Ed25519":
                assert isinstance(self.public_key, ed25519.Ed25519PublicKey)
                self.public_key.verify(raw, payload)
            else:
                assert isinstance(self.public_key, rsa.RSAPublicKey)
                self.public_key.verify(raw, payload, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True


def _ms() -> int:
    return time.time_ns() // 1_000_000


def _ws_text(v: Any) -> str:
    """A WebSocket API parameter as it is signed: JSON booleans lowercase, numbers and strings as written."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def D(x: Any) -> Decimal:
    return Decimal(str(x))


class SimAccount:
    """One Binance account (every registered key belongs to it)."""

    def __init__(self, clock_offset_ms: Callable[[], int]) -> None:
        self.keys: dict[str, SimKey] = {}
        self.clock_offset_ms = clock_offset_ms
        self.balances: dict[str, list[Decimal]] = {"BTC": [D("1.5"), D(0)], "USDT": [D("10000"), D(0)],
                                                   "ETH": [D(0), D(0)], "BNB": [D("0.25"), D(0)]}
        self.orders: dict[int, dict[str, Any]] = {}
        self.fills: list[dict[str, Any]] = []
        self.prevented: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.order_count_10s: list[float] = []
        self._next_order = 1000
        self._next_trade = 5000
        self._next_exec = 1
        self.update_time = _ms()

    # --- keys and checks -----------------------------------------------------------------------------
    def add_key(self, key: SimKey) -> SimKey:
        self.keys[key.api_key] = key
        return key

    def server_ms(self) -> int:
        return _ms() + self.clock_offset_ms()

    def check_timing(self, params: dict[str, str]) -> None:
        ts = params.get("timestamp")
        if not ts:
            raise AuthFailure(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        try:
            t = int(ts)
            window = Decimal(params.get("recvWindow") or "5000")
        except (ValueError, ArithmeticError):
            raise AuthFailure(-1100, "Illegal characters found in a parameter.") from None
        if window > 60000 or window <= 0:
            raise AuthFailure(-1131, "recvWindow must be less than 60000")
        now = self.server_ms()
        if t >= now + 1000:
            raise AuthFailure(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - t > window:
            raise AuthFailure(-1021, "Timestamp for this request is outside of the recvWindow.")

    def authorize(self, api_key: str | None, ip: str, permission: str) -> SimKey:
        if not api_key:
            raise AuthFailure(-2014, "API-key format invalid.", 401)
        key = self.keys.get(api_key)
        if key is None or (key.allowed_ips is not None and ip not in key.allowed_ips) \
                or permission not in key.permissions:
            raise AuthFailure(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return key

    def verify_rest(self, raw_query: str, body: str, api_key: str | None, ip: str, permission: str) -> dict[str, str]:
        """The request's parameters once its key, signature and timing are good; AuthFailure otherwise."""
        key = self.authorize(api_key, ip, permission)
        pairs = raw_query.split("&") if raw_query else []
        sig = [p for p in pairs if p.startswith("signature=")]
        if len(sig) != 1:
            raise AuthFailure(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        payload = "&".join(p for p in pairs if not p.startswith("signature=")) + body
        params = dict(parse_qsl(payload, keep_blank_values=True))
        if not key.verify(payload.encode(), unquote(sig[0][len("signature="):])):
            raise AuthFailure(-1022, "Signature for this request is not valid.")
        self.check_timing(params)
        return params

    def verify_ws(self, params: dict[str, Any], ip: str, permission: str) -> SimKey:
        """WebSocket API signature: every parameter but ``signature``, sorted by name, raw ``k=v`` UTF-8 text
        (web-socket-api.md: no percent-encoding)."""
        key = self.authorize(params.get("apiKey"), ip, permission)
        rest = {k: v for k, v in params.items() if k != "signature"}
        payload = "&".join(f"{k}={_ws_text(v)}" for k, v in sorted(rest.items()))
        if not isinstance(params.get("signature"), str) or not key.verify(payload.encode(), params["signature"]):
            raise AuthFailure(-1022, "Signature for this request is not valid.")
        self.check_timing({k: str(v) for k, v in rest.items()})
        return key

    # --- activity ------------------------------------------------------------------------------------
    def publish(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        for listener in list(self.listeners):
            listener(event)
        return event

    def _position(self, assets: list[str]) -> None:
        now = _ms()
        self.update_time = now
        self.publish({"e": "outboundAccountPosition", "E": now, "u": now,
                      "B": [{"a": a, "f": fmt(self.balances[a][0]), "l": fmt(self.balances[a][1])} for a in assets]})

    def _report(self, o: dict[str, Any], exec_type: str, last_qty: Decimal = D(0), last_price: Decimal = D(0),
                trade_id: int = -1, commission: Decimal = D(0), maker: bool = False) -> None:
        now = o["updateTime"]
        self._next_exec += 1
        # a cancel reports the cancel request's own client id in c and the order's in C (as Binance does)
        c, orig = (f"cancel{self._next_exec}", o["clientOrderId"]) if exec_type == "CANCELED" else (o["clientOrderId"], "")
        self.publish({
            "e": "executionReport", "E": now, "s": o["symbol"], "c": c, "S": o["side"],
            "o": o["type"], "f": o["timeInForce"], "q": o["origQty"], "p": o["price"], "P": "0.00000000",
            "F": "0.00000000", "g": -1, "C": orig, "x": exec_type, "X": o["status"], "r": "NONE", "i": o["orderId"],
            "l": fmt(last_qty), "z": o["executedQty"], "L": fmt(last_price), "n": fmt(commission),
            "N": None if trade_id < 0 else "BNB", "T": now, "t": trade_id, "I": self._next_exec,
            "w": o["status"] in ("NEW", "PARTIALLY_FILLED"), "m": maker, "M": False, "O": o["time"],
            "Z": o["cummulativeQuoteQty"], "Y": fmt(last_qty * last_price), "Q": "0.00000000",
            "W": o["workingTime"], "V": "EXPIRE_MAKER",
        })

    @staticmethod
    def split(symbol: str) -> tuple[str, str]:
        for q in ("USDT", "BTC", "ETH", "BNB"):
            if symbol.endswith(q) and len(symbol) > len(q):
                return symbol[: -len(q)], q
        return symbol[:-3], symbol[-3:]

    def place(self, symbol: str, side: str, price: str, qty: str) -> dict[str, Any]:
        """A resting LIMIT GTC order: funds locked, NEW reported."""
        base, quote = self.split(symbol)
        p, q = D(price), D(qty)
        lock_asset, amount = (quote, p * q) if side == "BUY" else (base, q)
        bal = self.balances.setdefault(lock_asset, [D(0), D(0)])
        bal[0] -= amount
        bal[1] += amount
        now = _ms()
        self._next_order += 1
        self.order_count_10s.append(time.monotonic())
        o = {"symbol": symbol, "orderId": self._next_order, "orderListId": -1,
             "clientOrderId": f"sim{self._next_order}", "price": fmt(p), "origQty": fmt(q), "executedQty": fmt(D(0)),
             "cummulativeQuoteQty": fmt(D(0)), "status": "NEW", "timeInForce": "GTC", "type": "LIMIT", "side": side,
             "stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": now, "updateTime": now,
             "isWorking": True, "workingTime": now, "origQuoteOrderQty": "0.00000000",
             "selfTradePreventionMode": "EXPIRE_MAKER"}
        self.orders[o["orderId"]] = o
        self._report(o, "NEW")
        self._position([lock_asset])
        return o

    def fill(self, order_id: int, qty: str | None = None, trade_id: int | None = None) -> dict[str, Any]:
        """Fill ``qty`` (default: the rest) of an open order at its price; BNB commission. ``trade_id``: reuse
        a trade id (a self-trade: both orders of the account in one trade)."""
        o = self.orders[order_id]
        base, quote = self.split(o["symbol"])
        left = D(o["origQty"]) - D(o["executedQty"])
        q = min(left, D(qty)) if qty else left
        p = D(o["price"])
        commission = (q * p / 1000).quantize(D("0.00000001")) if o["symbol"].endswith("USDT") else D("0.00001")
        if o["side"] == "BUY":
            self.balances[quote][1] -= q * p
            self.balances.setdefault(base, [D(0), D(0)])[0] += q
        else:
            self.balances[base][1] -= q
            self.balances.setdefault(quote, [D(0), D(0)])[0] += q * p
        self.balances["BNB"][0] -= commission
        o["executedQty"] = fmt(D(o["executedQty"]) + q)
        o["cummulativeQuoteQty"] = fmt(D(o["cummulativeQuoteQty"]) + q * p)
        o["status"] = "FILLED" if D(o["executedQty"]) == D(o["origQty"]) else "PARTIALLY_FILLED"
        o["isWorking"] = o["status"] != "FILLED"
        o["updateTime"] = _ms()
        if trade_id is None:
            self._next_trade += 1
        tid = self._next_trade if trade_id is None else trade_id
        trade = {"symbol": o["symbol"], "id": tid, "orderId": order_id, "orderListId": -1,
                 "price": fmt(p), "qty": fmt(q), "quoteQty": fmt(q * p), "commission": fmt(commission),
                 "commissionAsset": "BNB", "time": o["updateTime"], "isBuyer": o["side"] == "BUY",
                 "isMaker": True, "isBestMatch": True}
        self.fills.append(trade)
        self._report(o, "TRADE", q, p, tid, commission, maker=trade_id is None)
        self._position([base, quote, "BNB"])
        return trade

    def cancel(self, order_id: int) -> dict[str, Any]:
        o = self.orders[order_id]
        base, quote = self.split(o["symbol"])
        left = D(o["origQty"]) - D(o["executedQty"])
        asset, amount = (quote, left * D(o["price"])) if o["side"] == "BUY" else (base, left)
        self.balances[asset][0] += amount
        self.balances[asset][1] -= amount
        o["status"], o["isWorking"], o["updateTime"] = "CANCELED", False, _ms()
        self._report(o, "CANCELED")
        self._position([asset])
        return o

    def deposit(self, asset: str, amount: str) -> None:
        bal = self.balances.setdefault(asset, [D(0), D(0)])
        bal[0] += D(amount)
        now = _ms()
        self.publish({"e": "balanceUpdate", "E": now, "a": asset, "d": fmt(D(amount)), "T": now})
        self._position([asset])

    def balance_rows(self, omit_zero: bool = False) -> list[dict[str, str]]:
        return [{"asset": a, "free": fmt(f), "locked": fmt(lk)} for a, (f, lk) in sorted(self.balances.items())
                if not (omit_zero and f == 0 and lk == 0)]
