"""The simulator's WebSocket API (``/ws-api/v3``): ``ping``, ``time``, ``userDataStream.subscribe.signature``
(any key type, several subscriptions per connection, one per account), ``userDataStream.unsubscribe``,
``session.subscriptions``; user-data events pushed as ``{"subscriptionId": n, "event": {...}}``; the 24 h
lifetime (``connection_lifetime``) with an optional ``serverShutdown`` event first.

Faults (:class:`~.faults.Faults`): ``drop_ws_api`` aborts the TCP connections (no close frame: the client
sees a drop, events published meanwhile are lost, as on Binance), ``terminate_user_streams`` ends every
subscription with ``eventStreamTerminated``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import TYPE_CHECKING, Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .account import AuthFailure

if TYPE_CHECKING:
    from .server import BinanceSim

PATH = "/ws-api/v3"
_ids = itertools.count(1)


class WsApiConnection:
    def __init__(self, sim: BinanceSim, ws: ServerConnection) -> None:
        self.sim = sim
        self.ws = ws
        self.id = next(_ids)
        self.subs: dict[int, str] = {}  # subscription id -> api key
        self._next_sub = 0
        self.out: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False

    def send(self, obj: Any) -> None:
        if not self.closed:
            self.out.put_nowait(orjson.dumps(obj))

    def on_event(self, event: dict[str, Any]) -> None:
        for sid in self.subs:
            self.send({"subscriptionId": sid, "event": event})
            self.sim.stats["user_events_sent"] += 1

    def abort(self) -> None:
        self.closed = True
        if self.ws.transport is not None:
            self.ws.transport.abort()

    def terminate(self) -> None:
        for sid in list(self.subs):
            self.send({"subscriptionId": sid, "event": {"e": "eventStreamTerminated", "E": _ms()}})
        self.subs.clear()
        self._unlisten()

    def _unlisten(self) -> None:
        if not self.subs and self.on_event in self.sim.account.listeners:
            self.sim.account.listeners.remove(self.on_event)

    async def writer(self) -> None:
        while not self.closed:
            frame = await self.out.get()
            await self.ws.send(frame.decode())

    def handle(self, raw: str | bytes) -> None:
        self.sim.stats["ws_api_requests"] += 1
        try:
            req = orjson.loads(raw)
            assert isinstance(req, dict)
        except (orjson.JSONDecodeError, AssertionError):
            self.send({"id": None, "status": 400, "error": {"code": -1102, "msg": "Invalid JSON request."}})
            return
        rid, method, params = req.get("id"), req.get("method"), req.get("params") or {}
        try:
            result = self._call(method, params)
        except AuthFailure as e:
            self.send({"id": rid, "status": e.status, "error": {"code": e.code, "msg": e.msg}})
            return
        self.send({"id": rid, "status": 200, "result": result,
                   "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                   "limit": 6000, "count": 2}]})

    def _call(self, method: Any, params: dict[str, Any]) -> Any:
        acct = self.sim.account
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": acct.server_ms()}
        if method == "userDataStream.subscribe.signature":
            ip = self.ws.remote_address[0] if self.ws.remote_address else "?"
            key = acct.verify_ws(params, ip, "USER_STREAM")
            if key.api_key in self.subs.values():
                raise AuthFailure(-2013, "This account already has a subscription on this connection.")
            sid = self._next_sub
            self._next_sub += 1
            self.subs[sid] = key.api_key
            if self.on_event not in acct.listeners:
                acct.listeners.append(self.on_event)
            self.sim.stats["user_subscriptions"] += 1
            return {"subscriptionId": sid}
        if method == "userDataStream.unsubscribe":
            sid = params.get("subscriptionId")
            ended = list(self.subs) if sid is None else [sid] if sid in self.subs else []
            for s in ended:
                self.send({"subscriptionId": s, "event": {"e": "eventStreamTerminated", "E": _ms()}})
                del self.subs[s]
            self._unlisten()
            return {}
        if method == "session.subscriptions":
            return [{"subscriptionId": s} for s in self.subs]
        raise AuthFailure(-1100 if method else -1102, f"Unknown method {method!r}.")


def _ms() -> int:
    return time.time_ns() // 1_000_000


async def handler(sim: BinanceSim, ws: ServerConnection) -> None:
    conn = WsApiConnection(sim, ws)
    sim.ws_api_connections.add(conn)
    sim.stats["ws_api_connections"] += 1
    writer = asyncio.create_task(conn.writer())
    lifetime = asyncio.create_task(_lifetime(sim, conn))
    try:
        async for msg in ws:
            conn.handle(msg)
    except ConnectionClosed:
        pass
    finally:
        conn.closed = True
        conn.subs.clear()
        conn._unlisten()
        sim.ws_api_connections.discard(conn)
        for t in (writer, lifetime):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, Exception):
                await t


SHUTDOWN_NOTICE_S = 0.5
"""How long the connection keeps carrying events after serverShutdown (Binance warns before it closes)."""


async def _lifetime(sim: BinanceSim, conn: WsApiConnection) -> None:
    await asyncio.sleep(sim.config.connection_lifetime)
    if sim.config.shutdown_before_close:
        conn.send({"event": {"e": "serverShutdown", "E": _ms()}})
        await asyncio.sleep(SHUTDOWN_NOTICE_S)
    while not conn.out.empty():  # flush what was queued before the close
        await asyncio.sleep(0.005)
    await conn.ws.close(1001, "Connection lifetime expired")
