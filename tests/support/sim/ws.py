"""WebSocket side of the simulator: /ws/<stream>, /stream?streams=, live control messages, limits, faults."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

if TYPE_CHECKING:
    from .server import BinanceSim

log = logging.getLogger(__name__)
_ids = itertools.count(1)
WS_API_PATH = "/ws-api/v3"
METHODS = "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"


class SimConnection:
    """One client connection: its subscriptions, its outgoing queue, its limits."""

    def __init__(self, sim: BinanceSim, ws: ServerConnection, combined: bool, streams: list[str],
                 route: str | None = None) -> None:
        self.sim = sim
        self.ws = ws
        self.route = route  # public / market: a USD-M futures connection (futures_ws)
        self.id = next(_ids)
        self.combined = combined
        self.streams: list[str] = []
        self.out: collections.deque[bytes | str] = collections.deque()
        self.wake = asyncio.Event()
        self.incoming: collections.deque[float] = collections.deque()
        self.micro = False
        self.opened = time.monotonic()
        self.closed = False
        for s in streams:
            self._add(s)

    def _add(self, s: str) -> None:
        if s not in self.streams:
            self.streams.append(s)
            if self.route is not None:
                self.sim.futures_hub.add(self, s)
                return
            self.sim.hub.add(self, s)
            self.sim.on_subscribe(self, s)

    def _remove(self, s: str) -> None:
        if s in self.streams:
            self.streams.remove(s)
            if self.route is not None:
                self.sim.futures_hub.remove(self, s)
                return
            self.sim.hub.remove(self, s)

    def known(self, stream: str) -> bool:
        return self.sim.futures_hub.known(stream) if self.route is not None else self.sim.hub.symbol_known(stream)

    def send_event(self, stream: str, raw: bytes) -> None:
        if self.closed:
            return
        if self.combined:
            frame = b'{"stream":"' + stream.encode() + b'","data":' + raw + b"}"
        else:
            frame = raw
        self.out.append(frame)
        self.wake.set()
        if len(self.out) > 100_000:  # a client that does not read: Binance drops it
            self.abort()

    def send_control(self, obj: Any) -> None:
        self.out.append(orjson.dumps(obj))
        self.wake.set()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.closed = True
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    async def writer(self) -> None:
        ws = self.ws
        while not self.closed:
            await self.wake.wait()
            self.wake.clear()
            while self.out and not self.closed:
                stall = self.sim.faults.stall_until - time.monotonic()
                if stall > 0:
                    await asyncio.sleep(stall)
                    continue
                frame = self.out.popleft()
                await ws.send(frame, text=type(frame).__name__ != "_Binary")
                self.sim.stats["frames_sent"] += 1

    def rate_exceeded(self) -> bool:
        now = time.monotonic()
        q = self.incoming
        q.append(now)
        while q and now - q[0] > 1.0:
            q.popleft()
        return len(q) > self.sim.config.max_incoming_per_s

    async def handle_message(self, msg: str | bytes) -> None:
        self.sim.stats["control_messages"] += 1
        self.sim.control_log.append((time.monotonic(), self.id, msg if isinstance(msg, str) else msg.decode()))
        if self.rate_exceeded():
            self.sim.stats["rate_limit_disconnects"] += 1
            await self.ws.close(1008, "Too many requests")
            return
        try:
            req = orjson.loads(msg)
        except orjson.JSONDecodeError:
            self.send_control({"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"})
            return
        if not isinstance(req, dict):
            self.send_control({"code": 2, "msg": "Invalid request: expected an object"})
            return
        rid = req.get("id")
        if "id" not in req or not (rid is None or (isinstance(rid, int) and not isinstance(rid, bool))
                                   or (isinstance(rid, str) and len(rid) <= 36)):
            self.send_control({"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"})
            return
        method = req.get("method")
        if method is None:
            self.send_control({"code": 2, "msg": "Invalid request: missing field `method`", "id": rid})
            return
        params = req.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                self.send_control({"code": 1, "msg": "Invalid value type: expected array of strings", "id": rid})
                return
            bad = [p for p in params if not self.known(p)]
            if bad:
                self.send_control({"code": 2, "msg": f"Invalid request: invalid stream name {bad[0]}", "id": rid})
                return
            if method == "SUBSCRIBE":
                hook, self.sim.faults.before_subscribe = self.sim.faults.before_subscribe, None
                if hook is not None:  # a test's one-off fault, run before this subscription takes effect
                    hook(self)
                if len(set(self.streams) | set(params)) > self.sim.config.max_streams:
                    self.send_control({"code": 2, "msg": "Invalid request: too many streams", "id": rid})
                    return
                for p in params:
                    self._add(p)
            else:
                for p in params:
                    self._remove(p)
            self.send_control({"result": None, "id": rid})
        elif method == "LIST_SUBSCRIPTIONS":
            self.send_control({"result": list(self.streams), "id": rid})
        elif method == "SET_PROPERTY":
            if not isinstance(params, list) or len(params) != 2 or params[0] != "combined":
                self.send_control({"code": 0, "msg": "Unknown property", "id": rid})
            elif not isinstance(params[1], bool):
                self.send_control({"code": 1, "msg": "Invalid value type: expected Boolean", "id": rid})
            else:
                self.combined = params[1]
                self.send_control({"result": None, "id": rid})
        elif method == "GET_PROPERTY":
            if params == ["combined"]:
                self.send_control({"result": self.combined, "id": rid})
            else:
                self.send_control({"code": 0, "msg": "Unknown property", "id": rid})
        else:
            self.send_control({"code": 2, "msg": f"Invalid request: unknown variant {method}, expected one of "
                               f"{METHODS}", "id": rid})

    def release(self) -> None:
        self.closed = True
        for s in list(self.streams):
            if self.route is not None:
                self.sim.futures_hub.remove(self, s)
            else:
                self.sim.hub.remove(self, s)


def split_route(path: str) -> tuple[str | None, str]:
    """(public / market / None, the rest of the path): the USD-M futures routed paths."""
    for route in ("public", "market"):
        if path.startswith(f"/{route}/"):
            return route, path[len(route) + 1:]
    return None, path


def parse_path(path: str) -> tuple[bool, list[str], dict[str, list[str]]] | None:
    parts = urlsplit(path)
    q = parse_qs(parts.query)
    _route, rest = split_route(parts.path)
    parts = parts._replace(path=rest)
    if parts.path in ("/ws", "/ws/"):
        return False, [], q
    if parts.path.startswith("/ws/"):
        return False, [s for s in parts.path[4:].split("/") if s], q
    if parts.path in ("/stream", "/stream/"):
        streams = q.get("streams", [""])[0]
        return True, [s for s in streams.split("/") if s], q
    return None


def make_process_request(sim: BinanceSim):
    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        sim.stats["handshakes"] += 1
        now = time.monotonic()
        att = sim.attempts
        att.append(now)
        while att and now - att[0] > sim.config.connect_window_s:
            att.popleft()
        if len(att) > sim.config.max_connects_per_window:
            return _http(429, {"code": -1003, "msg": "Too many connection attempts."})
        if sim.faults.reject_handshakes > 0:
            sim.faults.reject_handshakes -= 1
            return _http(503, {"code": -1001, "msg": "Internal error; unable to process your request."})
        if urlsplit(request.path).path == WS_API_PATH:
            return None
        parsed = parse_path(request.path)
        if parsed is None:
            return _http(404, {"code": -1, "msg": "Not found"})
        _, streams, _q = parsed
        route = split_route(urlsplit(request.path).path)[0]
        known = sim.futures_hub.known if route else sim.hub.symbol_known
        bad = [s for s in streams if not known(s)]
        if bad:
            return _http(400, {"code": -1121, "msg": f"Invalid stream name: {bad[0]}"})
        if len(streams) > sim.config.max_streams:
            return _http(400, {"code": -1, "msg": "Too many streams"})
        return None

    return process_request


def _http(status: int, body: dict[str, Any]) -> Response:
    raw = orjson.dumps(body)
    reason = {400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 503: "Service Unavailable"}
    return Response(status, reason.get(status, "Error"),
                    Headers([("Content-Type", "application/json"), ("Content-Length", str(len(raw)))]), raw)


async def handler(sim: BinanceSim, ws: ServerConnection) -> None:
    if ws.request is not None and urlsplit(ws.request.path).path == WS_API_PATH:
        from . import wsapi

        await wsapi.handler(sim, ws)
        return
    parsed = parse_path(ws.request.path if ws.request else "/ws")
    assert parsed is not None
    combined, streams, q = parsed
    conn = SimConnection(sim, ws, combined, streams, route=split_route(urlsplit(ws.request.path).path)[0]
                         if ws.request else None)
    conn.micro = q.get("timeUnit", [""])[0].upper() == "MICROSECOND"
    sim.connections.add(conn)
    sim.stats["connections_opened"] += 1
    writer = asyncio.create_task(conn.writer())
    lifetime = asyncio.create_task(_lifetime(sim, conn))
    try:
        async for msg in ws:
            await conn.handle_message(msg)
    except ConnectionClosed:
        pass
    finally:
        conn.release()
        sim.connections.discard(conn)
        for t in (writer, lifetime):
            t.cancel()
        for t in (writer, lifetime):
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, Exception):
                await t


async def _lifetime(sim: BinanceSim, conn: SimConnection) -> None:
    await asyncio.sleep(sim.config.connection_lifetime)
    if sim.config.shutdown_before_close:
        await send_server_shutdown(conn)
    await conn.ws.close(1001, "Connection lifetime expired")


async def send_server_shutdown(conn: SimConnection) -> None:
    payload = {"e": "serverShutdown", "E": time.time_ns() // 1_000_000}
    if conn.combined:
        conn.send_control({"stream": "!serverShutdown", "data": payload})
    else:
        conn.send_control(payload)
    # let the writer flush the event before the close
    for _ in range(100):
        if not conn.out:
            break
        await asyncio.sleep(0.01)
