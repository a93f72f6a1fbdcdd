"""Re-reading an account over REST after a user-data gap (nothing was subscribed, Binance does not replay).

What it reads: the balances (GET /api/v3/account), the open orders, what became of every order the daemon
knew open, and the orders and fills since the gap's start of every pair it knows (seen in orders and fills,
``account_symbols``) or that may have traded (base and quote balances both changed during the gap).

It never gives up on the whole account for one pair: an order Binance no longer has (-2013), a pair it does
not list (-1121) or any other refusal is recorded in the ``reconciled`` entry's ``failed`` list and the rest
goes on; a rate-limit answer is waited out (the governor says how long) up to a deadline. Transport errors
and 5xx propagate: the caller retries the whole reconcile. Paging: allOrders by ``orderId``, myTrades by
``fromId``, each within day windows (Binance's limit on a time range), at most ``MAX_RECONCILE_DAYS`` back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import orjson
import redis.asyncio as aioredis

import binance_common.accountstore as store
from binance_common.errors import BinanceAPIError, RateLimitedError
from binance_common.exchange_info import CACHE_NAME, symbol_assets
from binance_common.signed import SignedRest
from binance_common.timeutil import now_ms

from .account_state import AccountState, Command

log = logging.getLogger(__name__)
DAY_MS = 86_400_000
PAGE = 1000
MAX_RECONCILE_DAYS = 7
MAX_GUESSED_PAIRS = 30
RATE_LIMIT_PATIENCE_S = 300.0


class AccountReconciler:
    def __init__(self, r: aioredis.Redis, signed: SignedRest, state: AccountState, account_symbols: list[str],
                 *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.r = r
        self.signed = signed
        self.state = state
        self.account_symbols = account_symbols
        self.sleep = sleep
        self.failed: list[dict[str, Any]] = []
        self._deadline = 0.0

    async def commands(self, gap_from: int | None, to_ms: int, reason: str) -> list[Command]:
        """Every command recording the account as REST shows it now (gap entry first, reconciled entry last).
        ``state`` must hold what Redis holds (it is changed as commands are built). Finished orders and old
        fills are pruned first (:meth:`AccountState.prune`)."""
        st = self.state
        self.failed = []
        self._deadline = time.monotonic() + RATE_LIMIT_PATIENCE_S
        cmds: list[Command] = st.prune(now_ms())
        if gap_from is not None:
            cmds.append(st.entry(store.GAP, {"from_ms": gap_from, "to_ms": to_ms, "reason": reason}))
            cmds.append(["HINCRBY", st.key("status"), "gaps", 1])
        before = {k: (Decimal(f), Decimal(lk)) for k, (f, lk, _t) in st.balances.items()}
        a = await self._get("/api/v3/account", {}, "balances")
        if a is not None:
            cmds += st.balance_rows([(b["asset"], b["free"], b["locked"]) for b in a.get("balances", [])],
                                    now_ms(), "rest", complete=True)
        open_now = await self._get("/api/v3/openOrders", {}, "open orders") or []
        open_keys = {store.order_key(o) for o in open_now}
        for o in open_now:
            cmds += st.order(store.order_from_rest(o))
        for o in st.open_orders():  # known open before, not open now: what became of it
            if store.order_key(o) not in open_keys:
                got = await self._get("/api/v3/order", {"symbol": o["symbol"], "orderId": o["orderId"]},
                                      f"order {o['symbol']} {o['orderId']}")
                if got is not None:
                    cmds += st.order(store.order_from_rest(got))
        symbols = sorted(st.symbols | set(self.account_symbols) | {o["symbol"] for o in open_now})
        orders = fills = 0
        if gap_from is not None:
            changed = {k for k, (f, lk, _t) in st.balances.items() if before.get(k) != (Decimal(f), Decimal(lk))}
            symbols = sorted(set(symbols) | await self._pairs_of(changed))
            for sym in symbols:
                n_o, n_f = await self._since(sym, gap_from - 1000, cmds)
                orders, fills = orders + n_o, fills + n_f
        cmds.append(st.entry(store.RECONCILED, {
            "at_ms": now_ms(), "reason": reason, "balances": len(st.balances), "open_orders": len(open_now),
            "orders": orders, "fills": fills, "symbols": symbols, "failed": self.failed}))
        cmds.append(["HINCRBY", st.key("status"), "reconciles", 1])
        return cmds

    async def _get(self, path: str, params: dict[str, Any], what: str) -> Any:
        """One signed read: a refusal is recorded in ``failed`` (None); a rate limit is waited out."""
        while True:
            try:
                return await self.signed.get(path, params)
            except RateLimitedError as e:
                wait = max(0.5, e.retry_after_s)
                if time.monotonic() + wait > self._deadline:
                    raise
                log.info("user-data reconcile: rate limited; waiting %.1f s", wait)
                await self.sleep(wait)
            except BinanceAPIError as e:
                if e.status is not None and e.status >= 500:
                    raise
                log.warning("user-data reconcile: %s refused (%s); going on without it", what, e)
                self.failed.append({"what": what, "code": e.code, "error": str(e)[:200]})
                return None

    async def _pairs_of(self, assets: set[str]) -> set[str]:
        """Pairs whose base and quote both changed balance during a gap: where an order unknown to the daemon
        (created and filled while nothing was subscribed) can only have traded. At most MAX_GUESSED_PAIRS."""
        if len(assets) < 2:
            return set()
        raw = await self.r.get(self.state.keys.cache(CACHE_NAME))
        info = orjson.loads(raw) if raw else await self._get("/api/v3/exchangeInfo", {}, "exchangeInfo")
        pairs = {sym for sym, (base, quote) in symbol_assets(info or {}).items() if base in assets and quote in assets}
        if len(pairs) > MAX_GUESSED_PAIRS:
            log.warning("user-data reconcile: %d pairs may have traded during the gap; reading the first %d (list "
                        "the account's pairs in BINANCE_MCP_ACCOUNT_SYMBOLS)", len(pairs), MAX_GUESSED_PAIRS)
        return set(sorted(pairs)[:MAX_GUESSED_PAIRS])

    async def _since(self, symbol: str, start: int, cmds: list[Command]) -> tuple[int, int]:
        """Orders and fills of ``symbol`` since ``start``: (orders read, fills read)."""
        st = self.state
        end_all = now_ms()
        start = max(start, end_all - MAX_RECONCILE_DAYS * DAY_MS)
        orders = fills = 0
        first = await self._get("/api/v3/allOrders", {"symbol": symbol, "startTime": start,
                                                      "endTime": min(start + DAY_MS - 1, end_all), "limit": PAGE},
                                f"orders of {symbol}")
        rows: list[dict[str, Any]] = first or []
        # orders: the first page of the window by time, then on by orderId (every order since, any window)
        while rows:
            for o in rows:
                cmds += st.order(store.order_from_rest(o))
                orders += 1
            if len(rows) < PAGE:
                break
            rows = await self._get("/api/v3/allOrders", {"symbol": symbol, "orderId": rows[-1]["orderId"] + 1,
                                                         "limit": PAGE}, f"orders of {symbol}") or []
        if first is not None and len(first) < PAGE and start + DAY_MS - 1 < end_all:
            # a longer gap: later day windows hold orders created after the first window
            w = start + DAY_MS
            while w <= end_all:
                for o in await self._get("/api/v3/allOrders", {"symbol": symbol, "startTime": w,
                                                               "endTime": min(w + DAY_MS - 1, end_all), "limit": PAGE},
                                         f"orders of {symbol}") or []:
                    cmds += st.order(store.order_from_rest(o))
                    orders += 1
                w += DAY_MS
        trades = await self._get("/api/v3/myTrades", {"symbol": symbol, "startTime": start,
                                                      "endTime": min(start + DAY_MS - 1, end_all), "limit": PAGE},
                                 f"fills of {symbol}") or []
        last_id: int | None = None
        while True:
            for t in trades:
                cmds += st.fill(store.fill_from_rest(t))
                fills += 1
                last_id = int(t["id"])
            if last_id is None:
                # nothing in the first day: look further with time windows (no id to page from yet)
                start += DAY_MS
                if start > end_all:
                    break
                trades = await self._get("/api/v3/myTrades", {"symbol": symbol, "startTime": start,
                                                              "endTime": min(start + DAY_MS - 1, end_all),
                                                              "limit": PAGE}, f"fills of {symbol}") or []
                continue
            trades = await self._get("/api/v3/myTrades", {"symbol": symbol, "fromId": last_id + 1, "limit": PAGE},
                                     f"fills of {symbol}") or []
            if not trades:
                break
        return orders, fills
