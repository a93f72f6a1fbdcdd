"""What the daemon knows of one account, and the Redis commands that record it.

Events and REST answers arrive in any order around a reconnect (an event may be older than the REST read that
follows it, or newer), so every record is kept newest-wins: a balance by the account update time (``u`` of
``outboundAccountPosition``, ``updateTime`` of GET /api/v3/account), an order by its update time (``T`` of
``executionReport``, ``updateTime`` of the REST order; an equal time keeps the larger executed quantity).
Fills are facts: a fill is written once by its ``<SYMBOL>:<tradeId>:<orderId>``. Layouts: :mod:`binance_common.accountstore`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import redis.asyncio as aioredis

import binance_common.accountstore as store
from binance_common.keys import Keys

Command = list[Any]
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED", "PENDING_NEW", "PENDING_CANCEL")
DAY_MS = 86_400_000
ORDER_DAYS = 7
FILL_DAYS = 30


def _rank(o: dict[str, Any]) -> tuple[int, Decimal, bool]:
    """Which of two records of one order is newer: update time, then executed quantity, then terminal status
    (an IOC order's last fill and its expiry can share a millisecond and a quantity)."""
    return (int(o.get("updateTime") or 0), Decimal(str(o.get("executedQty") or "0")),
            o.get("status") in store.TERMINAL)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class AccountState:
    def __init__(self, keys: Keys, account: str, maxlen: int) -> None:
        self.keys = keys
        self.account = account
        self.maxlen = maxlen
        self.balances: dict[str, tuple[str, str, int]] = {}  # asset -> free, locked, update time
        self.balances_as_of = 0
        self.orders: dict[str, dict[str, Any]] = {}  # "<SYMBOL>:<orderId>" -> order (REST field names)
        self.fill_keys: set[str] = set()
        self.fill_times: dict[str, int] = {}
        self.symbols: set[str] = set()

    def key(self, part: str) -> str:
        return self.keys.account(self.account, part)

    async def load(self, r: aioredis.Redis) -> dict[str, str]:
        """Read back what Redis holds (a restart resumes from it); returns the status hash."""
        pipe = r.pipeline(transaction=False)
        pipe.get(self.key("balances"))
        pipe.hgetall(self.key("orders"))
        pipe.hgetall(self.key("fills"))
        pipe.hgetall(self.key("status"))
        raw_bal, orders, fills, status = await pipe.execute()
        decoded = store.decode_balances(raw_bal)
        if decoded is not None:
            bal, as_of, _src = decoded
            self.balances = {a: (f, lk, as_of) for a, (f, lk) in bal.items()}
            self.balances_as_of = as_of
        self.orders = {_text(k): orjson.loads(v) for k, v in (orders or {}).items()}
        self.fill_times = {_text(k): int(orjson.loads(v).get("time") or 0) for k, v in (fills or {}).items()}
        self.fill_keys = set(self.fill_times)
        self.symbols |= {o["symbol"] for o in self.orders.values()} | {k.split(":")[0] for k in self.fill_keys}
        return {_text(k): _text(v) for k, v in (status or {}).items()}

    def open_orders(self) -> list[dict[str, Any]]:
        return [o for o in self.orders.values() if o.get("status") in OPEN_STATUSES]

    # --- commands ------------------------------------------------------------------------------------
    def entry(self, kind: str, data: Any) -> Command:
        fields = store.encode_entry(kind, data)
        return ["XADD", self.key("events"), "MAXLEN", "~", self.maxlen, "*", "k", fields["k"], "d", fields["d"]]

    def event(self, event: dict[str, Any]) -> list[Command]:
        """Commands recording one user-data event (the history entry first)."""
        cmds = [self.entry(store.EVENT, event)]
        kind = event.get("e")
        if kind == "executionReport":
            cmds += self.order(store.order_from_report(event))
            fill = store.fill_from_report(event)
            if fill is not None:
                cmds += self.fill(fill)
        elif kind == "outboundAccountPosition":
            cmds += self.balance_rows([(b["a"], b["f"], b["l"]) for b in event.get("B", [])],
                                      int(event.get("u") or event.get("E") or 0), "stream")
        cmds.append(["HSET", self.key("status"), "last_event_ms", int(event.get("E") or 0)])
        cmds.append(["HINCRBY", self.key("status"), "events", 1])
        return cmds

    def balance_rows(self, rows: list[tuple[str, str, str]], as_of: int, source: str, *,
                     complete: bool = False) -> list[Command]:
        """Apply balances true at ``as_of``; ``complete``: the rows are every asset (REST), so an asset no
        longer listed is zero."""
        changed = False
        seen = set()
        for asset, free, locked in rows:
            seen.add(asset)
            old = self.balances.get(asset)
            if old is None or as_of >= old[2]:
                self.balances[asset] = (str(free), str(locked), as_of)
                changed = True
        if complete:
            for asset, old in list(self.balances.items()):
                if asset not in seen and as_of >= old[2]:
                    self.balances[asset] = ("0", "0", as_of)
                    changed = True
        if not changed:
            return []
        self.balances_as_of = max(self.balances_as_of, as_of)
        value = store.encode_balances({a: (f, lk) for a, (f, lk, _t) in self.balances.items()},
                                      self.balances_as_of, source)
        return [["SET", self.key("balances"), value]]

    def order(self, order: dict[str, Any]) -> list[Command]:
        k = store.order_key(order)
        self.symbols.add(order["symbol"])
        old = self.orders.get(k)
        if old is not None:
            if _rank(order) < _rank(old):
                return []
            order = {**old, **order}
        self.orders[k] = order
        return [["HSET", self.key("orders"), k, store.dumps(order)]]

    def fill(self, fill: dict[str, Any]) -> list[Command]:
        k = store.fill_key(fill)
        self.symbols.add(fill["symbol"])
        if k in self.fill_keys:
            return []
        self.fill_keys.add(k)
        self.fill_times[k] = int(fill.get("time") or 0)
        return [["HSET", self.key("fills"), k, store.dumps(fill)]]

    def prune(self, now: int) -> list[Command]:
        """Forget finished orders older than ORDER_DAYS and fills older than FILL_DAYS (Redis memory, the
        read at every start and the pairs every reconcile reads stay bounded); Binance keeps them all."""
        old_orders = [k for k, o in self.orders.items() if o.get("status") in store.TERMINAL
                      and int(o.get("updateTime") or 0) < now - ORDER_DAYS * DAY_MS]
        for k in old_orders:
            del self.orders[k]
        cmds: list[Command] = [["HDEL", self.key("orders"), *old_orders]] if old_orders else []
        old_fills = [k for k, t in self.fill_times.items() if t < now - FILL_DAYS * DAY_MS]
        for k in old_fills:
            self.fill_keys.discard(k)
            del self.fill_times[k]
        if old_fills:
            cmds.append(["HDEL", self.key("fills"), *old_fills])
        self.symbols = {o["symbol"] for o in self.orders.values()} | {k.split(":")[0] for k in self.fill_keys}
        return cmds

    def status(self, **fields: Any) -> Command:
        flat: list[Any] = []
        for k, v in fields.items():
            flat += [k, "" if v is None else v]
        return ["HSET", self.key("status"), *flat]
