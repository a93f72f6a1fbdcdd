"""One combined-stream WebSocket connection: live SUBSCRIBE/UNSUBSCRIBE with acks, rate-limited control.

The connection does not reconnect by itself: the pool decides (backoff, rotation, watchdog). It reports
every data frame to ``on_data(conn, stream, payload_bytes, recv_ms)`` and its end to ``on_closed``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .frames import control_reply, is_server_shutdown, split_combined
from .limits import SlidingWindow

log = logging.getLogger(__name__)
_conn_ids = itertools.count(1)
CONTROL_PER_S = 4  # Binance allows 5 incoming messages/s per connection (pongs included): keep one spare
SUBSCRIBE_BATCH = 200
ACK_TIMEOUT_S = 10.0

OnData = Callable[["WsConnection", str, bytes, int], None]


class SubscribeError(Exception):
    def __init__(self, streams: list[str], reason: str) -> None:
        super().__init__(reason)
        self.streams = streams
        self.reason = reason


class WsConnection:
    def __init__(self, base_url: str, on_data: OnData, *, proxy: str | None = None,
                 on_shutdown: Callable[[WsConnection], None] | None = None,
                 on_malformed: Callable[[WsConnection, bytes | str], None] | None = None,
                 backpressure: Any = None) -> None:
        self.id = next(_conn_ids)
        self.url = base_url.rstrip("/") + "/stream"
        self.proxy = proxy
        self.on_data = on_data
        self.on_shutdown = on_shutdown
        self.on_malformed = on_malformed
        self.backpressure = backpressure  # object with congested() and async drained()
        self.streams: set[str] = set()  # acknowledged subscriptions
        self.ws: ClientConnection | None = None
        self.opened_at: float = 0.0  # monotonic
        self.last_data: float = 0.0
        self.frames = 0
        self.closed = asyncio.Event()
        self.close_reason: str = ""
        self._ids = itertools.count(1)
        self._acks: dict[int, asyncio.Future[str | None]] = {}
        self._control = SlidingWindow(CONTROL_PER_S, 1.0)
        self._control_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self.control_sent = 0

    @property
    def age_s(self) -> float:
        return time.monotonic() - self.opened_at if self.opened_at else 0.0

    async def open(self, timeout: float = 10.0) -> None:
        kwargs: dict[str, Any] = {"open_timeout": timeout, "max_size": 2**22, "compression": None,
                                  "ping_interval": None, "close_timeout": 2}
        if self.proxy:
            kwargs["proxy"] = self.proxy
        else:
            kwargs["proxy"] = None
        self.ws = await websockets.connect(self.url, **kwargs)
        self.opened_at = self.last_data = time.monotonic()
        self._reader = asyncio.create_task(self._read(), name=f"ws-read-{self.id}")

    async def close(self, reason: str = "closing") -> None:
        self.close_reason = self.close_reason or reason
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 3)
            except Exception:
                pass
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass
        self._finish(reason)

    def abort(self, reason: str) -> None:
        self.close_reason = self.close_reason or reason
        if self.ws is not None and self.ws.transport is not None:
            self.ws.transport.abort()

    def _finish(self, reason: str) -> None:
        self.close_reason = self.close_reason or reason
        for fut in self._acks.values():
            if not fut.done():
                fut.set_result(f"connection closed: {self.close_reason}")
        self._acks.clear()
        self.closed.set()

    # --- control -------------------------------------------------------------------------------------
    async def _send_control(self, method: str, params: list[str] | None) -> str | None:
        assert self.ws is not None
        async with self._control_lock:
            while (d := self._control.delay(time.monotonic())) > 0:
                await asyncio.sleep(d)
            rid = next(self._ids)
            fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            self._acks[rid] = fut
            msg: dict[str, Any] = {"method": method, "id": rid}
            if params is not None:
                msg["params"] = params
            self._control.record(time.monotonic())
            self.control_sent += 1
            await self.ws.send(orjson.dumps(msg).decode())
        try:
            return await asyncio.wait_for(fut, ACK_TIMEOUT_S)
        except TimeoutError:
            return f"no answer to {method} within {ACK_TIMEOUT_S:.0f} s"
        finally:
            self._acks.pop(rid, None)

    async def subscribe(self, streams: list[str]) -> None:
        """Subscribe in batches; raises SubscribeError naming the streams of a refused batch."""
        for i in range(0, len(streams), SUBSCRIBE_BATCH):
            chunk = streams[i:i + SUBSCRIBE_BATCH]
            err = await self._send_control("SUBSCRIBE", chunk)
            if err:
                raise SubscribeError(chunk, err)
            self.streams.update(chunk)

    async def unsubscribe(self, streams: list[str]) -> None:
        self.streams.difference_update(streams)
        for i in range(0, len(streams), SUBSCRIBE_BATCH):
            err = await self._send_control("UNSUBSCRIBE", streams[i:i + SUBSCRIBE_BATCH])
            if err:
                log.warning("conn %d: UNSUBSCRIBE refused: %s", self.id, err)

    # --- reading -------------------------------------------------------------------------------------
    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for frame in self.ws:
                recv_ms = time.time_ns() // 1_000_000
                raw = frame.encode() if isinstance(frame, str) else frame
                split = split_combined(raw) if raw[:1] == b"{" else None
                if split is not None:
                    stream, payload = split
                    if stream == "!serverShutdown":
                        self._shutdown()
                        continue
                    self.last_data = time.monotonic()
                    self.frames += 1
                    self.on_data(self, stream, payload, recv_ms)
                    bp = self.backpressure
                    if bp is not None and bp.congested():
                        await bp.drained()  # stop reading: TCP pushes back on the sender
                    continue
                try:
                    obj = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    obj = None
                reply = control_reply(obj)
                if reply is not None:
                    rid, err = reply
                    fut = self._acks.get(rid) if isinstance(rid, int) else None
                    if fut is not None and not fut.done():
                        fut.set_result(err)
                    continue
                if is_server_shutdown(None, obj):
                    self._shutdown()
                    continue
                if self.on_malformed is not None:
                    self.on_malformed(self, frame)
        except ConnectionClosed as e:
            self._finish(f"closed by server ({e.rcvd.code if e.rcvd else 'no close frame'})")
        except Exception as e:
            log.exception("conn %d: reader failed", self.id)
            self._finish(f"reader error: {type(e).__name__}")
        else:
            self._finish("closed")

    def _shutdown(self) -> None:
        log.info("conn %d: serverShutdown received", self.id)
        if self.on_shutdown is not None:
            self.on_shutdown(self)
