"""The account's user-data stream: a WebSocket API subscription kept alive like any stream.

Since 2026-02-20 a user-data stream is ``userDataStream.subscribe.signature`` on the WebSocket API (the
listenKey endpoints are gone). This keeper, run by the leading daemon when an API key is configured:

* connects, subscribes (signed with the account's key), and records every event into the account's Redis
  keys (:mod:`.account_state`), each write fenced by the leadership token;
* rotates before the connection's lifetime ends, and on ``serverShutdown``, make-before-break: the new
  connection subscribes first, then the old one is unsubscribed (its answer comes after every event it
  carried) and closed; events seen on both are recorded once;
* on an abrupt end (drop, ``eventStreamTerminated``, failed ping, the old connection dying during a
  rotation) or at a start, it cannot know what Binance sent meanwhile (Binance does not replay), so after
  subscribing again it writes a ``gap`` entry (from the last moment the old connection was known alive, with
  every event before it written, to the new subscription), re-reads the account over REST
  (:mod:`.account_reconcile`) and writes a ``reconciled`` entry. Events arriving meanwhile are held and
  applied after; an event leaves the write queue only once it is in Redis.

The transport is the ``websockets`` client: a few messages a second at most, with request/response pairs,
where picows' speed buys nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

import binance_common.accountstore as store
from binance_common.accountstore import AccountStreamState as State
from binance_common.errors import BinanceError
from binance_common.keys import Keys
from binance_common.settings import Settings
from binance_common.signed import SignedRest
from binance_common.timeutil import now_ms

from .account_reconcile import AccountReconciler
from .account_state import AccountState

log = logging.getLogger(__name__)
WS_LOG = logging.getLogger(__name__ + ".frames")
WS_LOG.setLevel(logging.WARNING)  # websockets logs every frame at DEBUG, and the subscribe frame holds the API key
Execute = Callable[[Sequence[Sequence[Any]]], Awaitable[None]]
PING_EVERY_S = 5.0
ACK_TIMEOUT_S = 10.0
DEDUP = 4096
CONNECTION_EVENTS = ("serverShutdown", "eventStreamTerminated")
ROTATE_RETRY_S = 5.0


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
        self.seen: Counter[bytes] = Counter()  # copies of each event this link delivered
        self.notice = asyncio.Event()  # set when the link ends or the server says it will end it
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
        try:
            await self._frames()
        finally:
            self.notice.set()

    async def _frames(self) -> None:
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
                self.notice.set()
            elif event.get("e") == "eventStreamTerminated":
                self.ending = "eventStreamTerminated"
                self.notice.set()
            self.on_event(self, event)

    async def _ping(self) -> None:
        try:
            while True:
                await asyncio.sleep(PING_EVERY_S)
                sent = now_ms()
                pong = await self.ws.ping()
                await asyncio.wait_for(pong, ACK_TIMEOUT_S)
                self.last_alive_ms = max(self.last_alive_ms, sent)
        finally:
            self.notice.set()

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
        self.reconciler = AccountReconciler(redis, signed, self.state, settings.account_symbols)
        self._recorded: dict[bytes, int] = {}  # event digest -> copies recorded (recent events only)
        self._order: deque[bytes] = deque()
        self._held: list[dict[str, Any]] | None = None
        self._pending: deque[dict[str, Any]] = deque()  # events not yet in Redis, oldest first
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self.stats = {"events": 0, "duplicates": 0, "gaps": 0, "reconciles": 0, "rotations": 0, "connects": 0,
                      "unreadable": 0}

    # --- events --------------------------------------------------------------------------------------
    def _on_event(self, link: Link, event: dict[str, Any]) -> None:
        """Record an event once. During a rotation both connections carry the same events: the n-th copy of
        an event on one connection is a duplicate when n copies of it were already recorded (identical
        events on one connection, e.g. two equal deposits in one millisecond, are all kept)."""
        if event.get("e") in CONNECTION_EVENTS:
            return  # about the connection, not the account: the link's ``ending`` handles it
        digest = hashlib.blake2b(orjson.dumps(event, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
        link.seen[digest] += 1
        if self._recorded.get(digest, 0) >= link.seen[digest]:
            self.stats["duplicates"] += 1
            return
        if digest not in self._recorded:
            if len(self._order) == DEDUP:
                self._recorded.pop(self._order.popleft(), None)
            self._order.append(digest)
        self._recorded[digest] = link.seen[digest]
        if self._held is not None:
            self._held.append(event)
        else:
            self._enqueue([event])

    def _enqueue(self, events: list[dict[str, Any]]) -> None:
        if events:
            self._pending.extend(events)
            self._drained.clear()
            self._wake.set()

    async def _write_events(self) -> None:
        """Write events in arrival order. An event leaves the queue only once it is in Redis: while Redis is
        unreachable it is retried, and a cancelled writer leaves it for the next one."""
        while True:
            if not self._pending:
                self._drained.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            event = self._pending[0]
            try:
                cmds = self.state.event(event)
            except (KeyError, TypeError, ValueError, ArithmeticError) as e:  # a payload we do not understand
                self.stats["unreadable"] += 1
                log.warning("user-data event %s not applied (%s: %s); kept in the history only",
                            event.get("e"), type(e).__name__, e)
                cmds = [self.state.entry(store.EVENT, event)]
            pause = 0.1
            while True:
                try:
                    await self.execute(cmds)
                    break
                except (RedisError, OSError) as e:
                    log.warning("user-data stream: Redis write failed (%s); retrying", type(e).__name__)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 2.0)
            self._pending.popleft()
            self.stats["events"] += 1

    async def _status(self, **fields: Any) -> None:
        """A status write; Redis being unreachable never ends the subscription (the status is advisory)."""
        try:
            await self.execute([self.state.status(**fields)])
        except (RedisError, OSError) as e:
            log.debug("user-data status not written (%s)", type(e).__name__)

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
        """Keep the subscription until cancelled (then write what is queued, within a few seconds)."""
        status = await self.state.load(self.r)
        gap_from = int(status["last_alive_ms"]) if status.get("last_alive_ms") else None
        reason = "daemon restarted" if gap_from else "first start"
        writer = asyncio.create_task(self._write_events(), name="user-data-write")
        delay = 0.5
        link: Link | None = None
        try:
            while True:
                await self._status(state=State.CONNECTING.value, since_ms=now_ms(), key_type=self.signed.key_type)
                try:
                    self._held = []
                    link = await self._open()
                    await self._catch_up(gap_from, link, reason)
                except (OSError, WebSocketException, SubscribeRefused, TimeoutError, BinanceError, RedisError) as e:
                    self._enqueue(self._held or [])
                    self._held = None
                    if link is not None:
                        await link.close()
                        link = None
                    log.warning("user-data stream: cannot subscribe and reconcile (%s); retrying in %.1f s", e, delay)
                    await self._status(state=State.RECONNECTING.value, reason=str(e)[:300])
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.settings.reconnect_max_delay_s)
                    continue
                delay = 0.5
                gap_from, reason = await self._serve(link)
                link = None
                self.stats["gaps"] += 1
                await self._status(state=State.RECONNECTING.value, reason=reason)
        finally:
            if link is not None:
                await link.close()
            with contextlib.suppress(asyncio.TimeoutError, RedisError, OSError):
                await asyncio.wait_for(self._drained.wait(), 2.0)
            writer.cancel()
            with contextlib.suppress(BaseException):
                await writer
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._status(state=State.STOPPED.value, since_ms=now_ms()), 1.0)

    async def _catch_up(self, gap_from: int | None, link: Link, reason: str) -> None:
        """After a subscription whose events are held: the earlier events, then the reconcile, then the held."""
        await self._drained.wait()  # the old connection's events first, then the gap entry
        await self._status(state=State.RECONCILING.value, subscribed_ms=link.subscribed_ms)
        await self.state.load(self.r)  # what Redis holds: a failed attempt changed only memory
        await self.execute(await self.reconciler.commands(gap_from, link.subscribed_ms, reason))
        self.stats["reconciles"] += 1
        held, self._held = self._held or [], None
        self._enqueue(held)
        await self._status(state=State.LIVE.value, reason="", since_ms=now_ms(), subscribed_ms=link.subscribed_ms)

    async def _serve(self, link: Link) -> tuple[int, str]:
        """Serve ``link`` (rotating it when due) until it ends abruptly; returns (known alive until, why)."""
        lifetime = self.settings.connection_lifetime_s
        retry_at = 0.0
        while True:
            if not self._pending:  # alive up to here *and* every event before it written
                await self._status(last_alive_ms=link.last_alive_ms)
            if not link.alive or link.ending == "eventStreamTerminated":
                why = link.ending or "connection lost"
                alive = link.last_alive_ms
                await link.close()
                log.warning("user-data stream ended (%s); resubscribing and reconciling over REST", why)
                return alive, why
            due = link.ending == "serverShutdown" or time.monotonic() - link.opened >= lifetime
            if due and time.monotonic() >= retry_at:
                new = await self._rotate(link)
                if new is None:
                    retry_at = time.monotonic() + ROTATE_RETRY_S
                else:
                    link, retry_at = new, 0.0
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.notice.wait(), min(1.0, max(0.05, lifetime / 10)))

    async def _rotate(self, old: Link) -> Link | None:
        """Make before break: subscribe on a new connection, then end the old one. Events are held meanwhile;
        if the old connection died before the new one was subscribed, that span is a gap (reconciled)."""
        self._held = []
        try:
            new = await self._open()
        except (OSError, WebSocketException, SubscribeRefused, TimeoutError, BinanceError) as e:
            self._enqueue(self._held)
            self._held = None
            log.warning("user-data stream: rotation failed (%s); keeping the current connection", e)
            return None
        self.stats["rotations"] += 1
        broken = not old.alive or old.ending == "eventStreamTerminated"
        if not broken:
            with contextlib.suppress(Exception):  # its answer follows every event it carried
                await old.request("userDataStream.unsubscribe", {"subscriptionId": old.subscription})
        await old.close()
        if broken:
            self.stats["gaps"] += 1
            log.warning("user-data stream: the old connection ended before the new one subscribed; reconciling")
            try:
                await self._catch_up(old.last_alive_ms, new, "connection lost during a rotation")
            except (BinanceError, RedisError, OSError) as e:
                log.warning("user-data stream: reconcile after the rotation failed (%s); reconnecting", e)
                self._enqueue(self._held or [])
                self._held = None
                await new.close()
                new.ending = "eventStreamTerminated"  # makes _serve end it and mark the gap again
                new.last_alive_ms = old.last_alive_ms
            return new
        self._enqueue(self._held or [])
        self._held = None
        await self._status(state=State.LIVE.value, subscribed_ms=new.subscribed_ms, last_alive_ms=new.last_alive_ms)
        return new
