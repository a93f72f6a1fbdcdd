"""The account's user-data stream: a WebSocket API subscription kept alive like any stream.

Since 2026-02-20 a user-data stream is ``userDataStream.subscribe.signature`` on the WebSocket API (the
listenKey endpoints are gone). This keeper, run by the leading daemon when an API key is configured:

* connects, subscribes (signed with the account's key), and records every event into the account's Redis
  keys (:mod:`.account_state`), each write fenced by the leadership token;
* rotates before the connection's lifetime ends, and on ``serverShutdown``, make-before-break: the new
  connection subscribes first, then the old one is unsubscribed (its answer comes after every event it
  carried) and closed; events seen on both are recorded once;
* on an abrupt end (drop, ``eventStreamTerminated``, failed ping) or at a start, it cannot know what Binance
  sent meanwhile (Binance does not replay), so after subscribing again it writes a ``gap`` entry (from the
  last moment the old connection was known alive to the new subscription) and re-reads the account over REST:
  balances, open orders, every order it knew open, and the orders and fills since the gap's start of every
  pair it knows (seen in orders and fills, ``account_symbols``) or that may have traded (base and quote
  balances both changed during the gap), then writes a ``reconciled`` entry. Events arriving meanwhile are held and applied after.

The transport is the ``websockets`` client: a few messages a second at most, with request/response pairs,
where picows' speed buys nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from binance_common import accountstore as store
from binance_common.accountstore import AccountStreamState as State
from binance_common.errors import BinanceError
from binance_common.exchange_info import CACHE_NAME, symbol_assets
from binance_common.keys import Keys
from binance_common.settings import Settings
from binance_common.signed import SignedRest
from binance_common.timeutil import now_ms

from .account_state import AccountState
from .leadership import is_fenced

log = logging.getLogger(__name__)
WS_LOG = logging.getLogger(__name__ + ".frames")
WS_LOG.setLevel(logging.WARNING)  # websockets logs every frame at DEBUG, and the subscribe frame holds the API key
Execute = Callable[[Sequence[Sequence[Any]]], Awaitable[None]]
PING_EVERY_S = 5.0
ACK_TIMEOUT_S = 10.0
DEDUP = 4096
CONNECTION_EVENTS = ("serverShutdown", "eventStreamTerminated")
DAY_MS = 86_400_000
MAX_RECONCILE_DAYS = 7
MAX_GUESSED_PAIRS = 30


class SubscribeRefused(Exception):
    pass


class Link:
    """One WebSocket API connection carrying the account's subscription."""

    def __init__(self, ws: ClientConnection, on_event: Callable[[Link, dict[str, Any]], None]) -> None:
        self.ws = ws
        self.on_event = on_event
        self.opened = time.monotonic()
        self.subscription: int | None = None
        self.subscribed_ms = 0
        self.last_alive_ms = now_ms()
        self.ending: str | None = None  # why the server is ending it (serverShutdown, eventStreamTerminated)
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = 0
        self.reader = asyncio.create_task(self._read(), name="user-data-read")
        self.pinger = asyncio.create_task(self._ping(), name="user-data-ping")

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._ids += 1
        rid = f"u{self._ids}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        msg: dict[str, Any] = {"id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        await self.ws.send(orjson.dumps(msg).decode())
        try:
            return await asyncio.wait_for(fut, ACK_TIMEOUT_S)
        finally:
            self.pending.pop(rid, None)

    async def _read(self) -> None:
        async for raw in self.ws:
            self.last_alive_ms = now_ms()
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError:
                log.warning("user-data stream: unreadable frame ignored")
                continue
            if not isinstance(msg, dict):
                continue
            if "id" in msg and msg.get("id") in self.pending:
                self.pending[msg["id"]].set_result(msg)
                continue
            event = msg.get("event")
            if not isinstance(event, dict):
                continue
            if event.get("e") == "serverShutdown":
                self.ending = "serverShutdown"
            elif event.get("e") == "eventStreamTerminated":
                self.ending = "eventStreamTerminated"
            self.on_event(self, event)

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(PING_EVERY_S)
            sent = now_ms()
            pong = await self.ws.ping()
            await asyncio.wait_for(pong, ACK_TIMEOUT_S)
            self.last_alive_ms = max(self.last_alive_ms, sent)

    @property
    def alive(self) -> bool:
        return not self.reader.done() and not self.pinger.done()

    async def close(self) -> None:
        for t in (self.reader, self.pinger):
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2.0)
        for t in (self.reader, self.pinger):
            with contextlib.suppress(BaseException):
                await t


class UserDataKeeper:
    def __init__(self, settings: Settings, redis: aioredis.Redis, keys: Keys, signed: SignedRest,
                 execute: Execute, *, url: str | None = None) -> None:
        self.settings = settings
        self.r = redis
        self.signed = signed
        self.execute = execute
        self.url = url or settings.ws_api_url
        self.state = AccountState(keys, signed.account, settings.history_maxlen)
        self._seen: deque[bytes] = deque(maxlen=DEDUP)
        self._seen_set: set[bytes] = set()
        self._held: list[dict[str, Any]] | None = None
        self._writes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.stats = {"events": 0, "duplicates": 0, "gaps": 0, "reconciles": 0, "rotations": 0, "connects": 0}

    # --- events --------------------------------------------------------------------------------------
    def _on_event(self, link: Link, event: dict[str, Any]) -> None:
        if event.get("e") in CONNECTION_EVENTS:
            return  # about the connection, not the account: the link's ``ending`` handles it
        digest = hashlib.blake2b(orjson.dumps(event, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
        if digest in self._seen_set:
            self.stats["duplicates"] += 1  # the same event on both connections of a rotation
            return
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(digest)
        self._seen_set.add(digest)
        if self._held is not None:
            self._held.append(event)
        else:
            self._writes.put_nowait(event)

    async def _write_events(self) -> None:
        """Write events in arrival order; while Redis is unreachable, keep the event and retry."""
        while True:
            event = await self._writes.get()
            try:
                cmds = self.state.event(event)
                pause = 0.1
                while True:
                    try:
                        await self.execute(cmds)
                        break
                    except (RedisError, OSError) as e:
                        if is_fenced(e):
                            raise
                        log.warning("user-data stream: Redis write failed (%s); retrying", type(e).__name__)
                        await asyncio.sleep(pause)
                        pause = min(pause * 2, 2.0)
                self.stats["events"] += 1
            finally:
                self._writes.task_done()

    # --- connection ----------------------------------------------------------------------------------
    async def _open(self) -> Link:
        self.stats["connects"] += 1
        ws = await connect(self.url, open_timeout=ACK_TIMEOUT_S, ping_interval=None, max_size=2**22, logger=WS_LOG,
                           proxy=self.settings.ws_proxy or self.settings.proxy or None)
        link = Link(ws, self._on_event)
        try:
            params = {"apiKey": self.signed.api_key, "recvWindow": self.signed.recv_window_ms,
                      "timestamp": await self.signed.timestamp_ms()}
            answer = await link.request("userDataStream.subscribe.signature", self.signed.signer.sign_ws_params(params))
            if answer.get("status") != 200:
                err = answer.get("error") or {}
                if err.get("code") == -1021:
                    await self.signed.rest.server_time_ms()  # measure the clock again for the next attempt
                raise SubscribeRefused(f"Binance refused the user-data subscription ({err.get('code')}): "
                                       f"{err.get('msg')}")
            link.subscription = int(answer["result"]["subscriptionId"])
            link.subscribed_ms = now_ms()
        except BaseException:
            await link.close()
            raise
        return link

    async def run(self) -> None:
        """Keep the subscription until cancelled."""
        status = await self.state.load(self.r)
        gap_from = int(status["last_alive_ms"]) if status.get("last_alive_ms") else None
        reason = "daemon restarted" if gap_from else "first start"
        writer = asyncio.create_task(self._write_events(), name="user-data-write")
        delay = 0.5
        link: Link | None = None
        try:
            while True:
                await self.execute([self.state.status(state=State.CONNECTING.value, since_ms=now_ms(),
                                                      key_type=self.signed.key_type)])
                try:
                    self._held = []
                    link = await self._open()
                except (OSError, WebSocketException, SubscribeRefused, TimeoutError, BinanceError) as e:
                    self._held = None
                    log.warning("user-data stream: cannot subscribe (%s); retrying in %.1f s", e, delay)
                    await self.execute([self.state.status(state=State.RECONNECTING.value, reason=str(e)[:300])])
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.settings.reconnect_max_delay_s)
                    continue
                try:
                    await self._writes.join()  # the old connection's events first, then the gap entry
                    await self._reconcile(gap_from, link.subscribed_ms, reason)
                except BinanceError as e:
                    self._held = None
                    await link.close()
                    link = None
                    log.warning("user-data stream: reconcile failed (%s); retrying in %.1f s", e, delay)
                    await self.execute([self.state.status(state=State.RECONNECTING.value, reason=str(e)[:300])])
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.settings.reconnect_max_delay_s)
                    continue
                delay = 0.5
                ended = await self._serve(link)
                link = None
                gap_from, reason = ended
                self.stats["gaps"] += 1
                await self.execute([self.state.status(state=State.RECONNECTING.value, reason=reason)])
        finally:
            writer.cancel()
            if link is not None:
                await link.close()
            with contextlib.suppress(BaseException):
                await writer

    async def _serve(self, link: Link) -> tuple[int, str]:
        """Serve ``link`` (rotating it when due) until it ends abruptly; returns (known alive until, why)."""
        lifetime = self.settings.connection_lifetime_s
        while True:
            await self.execute([self.state.status(last_alive_ms=link.last_alive_ms)])
            if not link.alive or link.ending == "eventStreamTerminated":
                why = link.ending or "connection lost"
                alive = link.last_alive_ms
                await link.close()
                log.warning("user-data stream ended (%s); resubscribing and reconciling over REST", why)
                return alive, why
            if link.ending == "serverShutdown" or time.monotonic() - link.opened >= lifetime:
                link = await self._rotate(link)
                continue
            await asyncio.wait([link.reader, link.pinger], timeout=min(1.0, max(0.05, lifetime / 10)))

    async def _rotate(self, old: Link) -> Link:
        """Make before break: subscribe on a new connection, then end the old one."""
        try:
            new = await self._open()
        except (OSError, WebSocketException, SubscribeRefused, TimeoutError, BinanceError) as e:
            log.warning("user-data stream: rotation failed (%s); keeping the current connection", e)
            old.opened = time.monotonic() - self.settings.connection_lifetime_s + 5.0  # retry in 5 s
            return old
        self.stats["rotations"] += 1
        with contextlib.suppress(Exception):  # its answer follows every event it carried
            await old.request("userDataStream.unsubscribe", {"subscriptionId": old.subscription})
        await old.close()
        await self.execute([self.state.status(state=State.LIVE.value, subscribed_ms=new.subscribed_ms,
                                               last_alive_ms=new.last_alive_ms)])
        return new

    # --- REST reconcile ------------------------------------------------------------------------------
    async def _reconcile(self, gap_from: int | None, to_ms: int, reason: str) -> None:
        """Re-read the account after subscribing (events meanwhile are held, then applied newest-wins)."""
        st = self.state
        await self.execute([st.status(state=State.RECONCILING.value, subscribed_ms=to_ms)])
        cmds: list[list[Any]] = []
        if gap_from is not None:
            cmds.append(st.entry(store.GAP, {"from_ms": gap_from, "to_ms": to_ms, "reason": reason}))
            cmds.append(["HINCRBY", st.key("status"), "gaps", 1])
        a = await self.signed.get("/api/v3/account")
        before = {k: (Decimal(f), Decimal(lk)) for k, (f, lk, _t) in st.balances.items()}
        cmds += st.balance_rows([(b["asset"], b["free"], b["locked"]) for b in a.get("balances", [])],
                                int(a.get("updateTime") or 0), "rest", complete=True)
        open_now = await self.signed.get("/api/v3/openOrders")
        open_keys = {store.order_key(o) for o in open_now}
        for o in open_now:
            cmds += st.order(store.order_from_rest(o))
        for o in st.open_orders():  # known open before, not open now: what became of it
            if store.order_key(o) not in open_keys:
                got = await self.signed.get("/api/v3/order", {"symbol": o["symbol"], "orderId": o["orderId"]})
                cmds += st.order(store.order_from_rest(got))
        fills = orders = 0
        symbols = sorted(st.symbols | set(self.settings.account_symbols) | {o["symbol"] for o in open_now})
        if gap_from is not None:
            changed = {k for k, (f, lk, _t) in st.balances.items() if before.get(k) != (Decimal(f), Decimal(lk))}
            symbols = sorted(set(symbols) | await self._pairs_of(changed))
            for sym in symbols:
                n_o, n_f = await self._since(sym, gap_from - 1000, cmds)
                orders, fills = orders + n_o, fills + n_f
        cmds.append(st.entry(store.RECONCILED, {"at_ms": now_ms(), "reason": reason, "balances": len(st.balances),
                                                "open_orders": len(open_now), "orders": orders, "fills": fills,
                                                "symbols": symbols}))
        cmds.append(["HINCRBY", st.key("status"), "reconciles", 1])
        await self.execute(cmds)
        self.stats["reconciles"] += 1
        held, self._held = self._held or [], None
        for event in held:
            self._writes.put_nowait(event)
        await self.execute([st.status(state=State.LIVE.value, reason="", since_ms=now_ms())])

    async def _pairs_of(self, assets: set[str]) -> set[str]:
        """Pairs whose base and quote both changed balance during a gap: where an order unknown to the daemon
        (created and filled while nothing was subscribed) can only have traded. At most MAX_GUESSED_PAIRS."""
        if len(assets) < 2:
            return set()
        raw = await self.r.get(self.state.keys.cache(CACHE_NAME))
        info = orjson.loads(raw) if raw else await self.signed.rest.get("/api/v3/exchangeInfo")
        pairs = {sym for sym, (base, quote) in symbol_assets(info).items() if base in assets and quote in assets}
        if len(pairs) > MAX_GUESSED_PAIRS:
            log.warning("user-data reconcile: %d pairs may have traded during the gap; reading the first %d (list "
                        "the account's pairs in BINANCE_MCP_ACCOUNT_SYMBOLS)", len(pairs), MAX_GUESSED_PAIRS)
        return set(sorted(pairs)[:MAX_GUESSED_PAIRS])

    async def _since(self, symbol: str, start: int, cmds: list[list[Any]]) -> tuple[int, int]:
        """Orders and fills of ``symbol`` since ``start``, a day window at a time (Binance's limit)."""
        st = self.state
        orders = fills = 0
        end_all = now_ms()
        start = max(start, end_all - MAX_RECONCILE_DAYS * DAY_MS)
        while start <= end_all:
            end = min(start + DAY_MS - 1, end_all)
            for o in await self.signed.get("/api/v3/allOrders", {"symbol": symbol, "startTime": start,
                                                                 "endTime": end, "limit": 1000}):
                cmds += st.order(store.order_from_rest(o))
                orders += 1
            rows = await self.signed.get("/api/v3/myTrades", {"symbol": symbol, "startTime": start, "endTime": end,
                                                              "limit": 1000})
            while rows:
                for t in rows:
                    cmds += st.fill(store.fill_from_rest(t))
                    fills += 1
                if len(rows) < 1000:
                    break
                rows = await self.signed.get("/api/v3/myTrades", {"symbol": symbol, "fromId": rows[-1]["id"] + 1,
                                                                  "limit": 1000})
            start = end + 1
        return orders, fills
