"""One combined-stream WebSocket connection: live SUBSCRIBE/UNSUBSCRIBE with acks, rate-limited control.

The transport is picows (WebSocket frame parsing in Cython): every data frame is handed to
``on_data(conn, stream, payload_bytes, recv_ms)`` synchronously from the socket's ``data_received``, with no
per-message coroutine or queue. With the pure-Python websockets client, its frame parser and message
assembler were ~45% of the daemon's CPU at 80k msg/s (docs/benchmarks.md). Pings are answered
automatically; a server CLOSE is echoed and the connection ends with its code as the reason.

The connection does not reconnect by itself: the pool decides (backoff, rotation, watchdog). Its end is
signalled by ``closed`` and explained by ``close_reason``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import orjson
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from .frames import control_reply, is_server_shutdown, split_combined
from .limits import SlidingWindow

log = logging.getLogger(__name__)
_conn_ids = itertools.count(1)
CONTROL_PER_S = 4  # Binance allows 5 incoming messages/s per connection (pongs included): keep one spare
SUBSCRIBE_BATCH = 200
ACK_TIMEOUT_S = 10.0
MAX_MESSAGE = 2**22
# Receive buffer per connection. picows hands over everything one read returns in one callback, and reads
# grow with the kernel's buffer (autotuned up to net.ipv4.tcp_rmem max, 32 MiB here): 4 MiB bounds one read to
# ~25k frames (the backlog past the pause mark) and still allows 40 MB/s at 100 ms round trip.
RCVBUF = 4 * 2**20

OnData = Callable[["WsConnection", str, bytes, int], None]
_TEXT, _BINARY, _CONT, _CLOSE = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION, WSMsgType.CLOSE
_HEAD, _DATA = b'{"stream":"', b'","data":'
_HEAD_LEN, _DATA_LEN = len(_HEAD), len(_DATA)


class SubscribeError(Exception):
    def __init__(self, streams: list[str], reason: str) -> None:
        super().__init__(reason)
        self.streams = streams
        self.reason = reason


class WsConnection(WSListener):  # type: ignore[misc]
    """picows calls ``on_ws_frame`` / ``on_ws_disconnected`` on this object from the event loop."""

    def __init__(self, base_url: str, on_data: OnData, *, proxy: str | None = None,
                 on_shutdown: Callable[[WsConnection], None] | None = None,
                 on_malformed: Callable[[WsConnection, bytes | str], None] | None = None,
                 backpressure: Any = None) -> None:
        super().__init__()
        self.id = next(_conn_ids)
        self.url = base_url.rstrip("/") + "/stream"
        self.proxy = proxy
        self.on_data = on_data
        self.on_shutdown = on_shutdown
        self.on_malformed = on_malformed
        self.backpressure = backpressure  # object with congested() and async drained()
        self.streams: set[str] = set()  # acknowledged subscriptions
        self.transport: WSTransport | None = None
        self.opened_at: float = 0.0  # monotonic
        self.last_data: float = 0.0
        self.frames = 0
        self.closed = asyncio.Event()
        self.close_reason: str = ""
        self._ids = itertools.count(1)
        self._acks: dict[int, asyncio.Future[tuple[str | None, Any]]] = {}
        self._control = SlidingWindow(CONTROL_PER_S, 1.0)
        self._control_lock = asyncio.Lock()
        self._fragments: list[bytes] | None = None
        self._paused: asyncio.Task[None] | None = None
        self.pauses = 0  # times reading stopped for backpressure, and for how long in total
        self.paused_s = 0.0
        self.control_sent = 0

    @property
    def age_s(self) -> float:
        return time.monotonic() - self.opened_at if self.opened_at else 0.0

    async def open(self, timeout: float = 10.0) -> None:
        transport, _ = await asyncio.wait_for(
            ws_connect(lambda: self, self.url, websocket_handshake_timeout=timeout,
                       enable_auto_pong=True, max_frame_size=MAX_MESSAGE, proxy=self.proxy or None,
                       logger_name=f"conn{self.id}"),
            timeout)
        self.transport = transport
        sock = transport.underlying_transport.get_extra_info("socket")
        if sock is not None:  # bound one read (picows grows its buffer to whatever the kernel holds): see RCVBUF
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.opened_at = self.last_data = time.monotonic()

    async def close(self, reason: str = "closing") -> None:
        self.close_reason = self.close_reason or reason
        t = self.transport
        if t is not None and not t.is_disconnected:
            try:
                if not t.is_close_frame_sent:
                    t.send_close(WSCloseCode.OK)
                await asyncio.wait_for(t.wait_disconnected(), 3)  # the server answers CLOSE and closes TCP
            except Exception:
                t.disconnect(graceful=False)
        if self._paused is not None:
            self._paused.cancel()
        self._finish(reason)

    def abort(self, reason: str) -> None:
        self.close_reason = self.close_reason or reason
        if self.transport is not None:
            self.transport.disconnect(graceful=False)

    def _finish(self, reason: str) -> None:
        self.close_reason = self.close_reason or reason
        for fut in self._acks.values():
            if not fut.done():
                fut.set_result((f"connection closed: {self.close_reason}", None))
        self._acks.clear()
        self.closed.set()

    # --- control -------------------------------------------------------------------------------------
    async def _send_control(self, method: str, params: list[str] | None,
                            timeout: float = ACK_TIMEOUT_S) -> tuple[str | None, Any]:
        """(error or None, the answer's ``result``)."""
        assert self.transport is not None
        async with self._control_lock:
            while (d := self._control.delay(time.monotonic())) > 0:
                await asyncio.sleep(d)
            if self.closed.is_set():
                return f"connection closed: {self.close_reason}", None
            rid = next(self._ids)
            fut: asyncio.Future[tuple[str | None, Any]] = asyncio.get_running_loop().create_future()
            self._acks[rid] = fut
            msg: dict[str, Any] = {"method": method, "id": rid}
            if params is not None:
                msg["params"] = params
            self._control.record(time.monotonic())
            self.control_sent += 1
            self.transport.send(_TEXT, orjson.dumps(msg))
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return f"no answer to {method} within {timeout:g} s", None
        finally:
            self._acks.pop(rid, None)

    async def list_subscriptions(self, timeout: float = ACK_TIMEOUT_S) -> set[str] | None:
        """The streams Binance says this connection carries (``LIST_SUBSCRIPTIONS``); None without an answer."""
        err, result = await self._send_control("LIST_SUBSCRIPTIONS", None, timeout)
        if err or not isinstance(result, list):
            return None
        return {x for x in result if isinstance(x, str)}

    async def subscribe(self, streams: list[str]) -> None:
        """Subscribe in batches; raises SubscribeError naming the streams of a refused batch."""
        for i in range(0, len(streams), SUBSCRIBE_BATCH):
            chunk = streams[i:i + SUBSCRIBE_BATCH]
            err, _ = await self._send_control("SUBSCRIBE", chunk)
            if err:
                raise SubscribeError(chunk, err)
            self.streams.update(chunk)

    async def unsubscribe(self, streams: list[str]) -> None:
        self.streams.difference_update(streams)
        for i in range(0, len(streams), SUBSCRIBE_BATCH):
            err, _ = await self._send_control("UNSUBSCRIBE", streams[i:i + SUBSCRIBE_BATCH])
            if err:
                log.warning("conn %d: UNSUBSCRIBE refused: %s", self.id, err)

    # --- reading: called by picows for every frame ---------------------------------------------------
    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._finish(self.close_reason or "closed by server (no close frame)")

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        mt = frame.msg_type
        if mt is _TEXT and frame.fin:  # the hot path: one complete text frame, {"stream":"..","data":..}
            raw = frame.get_payload_as_bytes()
            if raw.startswith(_HEAD):
                end = raw.find(_DATA, _HEAD_LEN)
                if end > 0 and raw[-1] == 125:  # ends with }
                    stream = raw[_HEAD_LEN:end].decode(errors="replace")  # never raises in the callback
                    if stream and stream[0] != "!":
                        self.last_data = time.monotonic()
                        self.frames += 1
                        self.on_data(self, stream, raw[end + _DATA_LEN:-1], time.time_ns() // 1_000_000)
                        if frame.last_in_buffer:  # once per socket read, not per frame
                            self._check_backpressure()
                        return
            self._on_message(raw)
        elif mt is _TEXT or mt is _BINARY:
            if frame.fin:
                self._on_message(frame.get_payload_as_bytes())
            else:
                self._fragments = [frame.get_payload_as_bytes()]
        elif mt is _CONT:
            if self._fragments is None:
                return  # continuation without a start: nothing to attach it to
            self._fragments.append(frame.get_payload_as_bytes())
            if sum(map(len, self._fragments)) > MAX_MESSAGE:
                self._fragments = None
                self.close_reason = "message too big"
                transport.send_close(WSCloseCode.MESSAGE_TOO_BIG)
                transport.disconnect()
            elif frame.fin:
                raw, self._fragments = b"".join(self._fragments), None
                self._on_message(raw)
        elif mt is _CLOSE:
            code = frame.get_close_code()
            num = code.value if isinstance(code, WSCloseCode) else int(code)
            self.close_reason = self.close_reason or f"closed by server ({num or 'no code'})"
            if not transport.is_close_frame_sent:
                transport.send_close(code if num else WSCloseCode.OK)
            transport.disconnect()

    def _deliver(self, stream: str, payload: bytes, recv_ms: int) -> None:
        self.last_data = time.monotonic()
        self.frames += 1
        self.on_data(self, stream, payload, recv_ms)
        self._check_backpressure()

    def _check_backpressure(self) -> None:
        bp = self.backpressure
        if bp is not None and self._paused is None and bp.congested():
            self._pause(bp)

    def _on_message(self, raw: bytes) -> None:
        """Any complete message off the fast path: other layouts, control replies, shutdown, garbage."""
        recv_ms = time.time_ns() // 1_000_000
        split = split_combined(raw) if raw[:1] == b"{" else None
        if split is not None:
            stream, payload = split
            if stream == "!serverShutdown":
                self._shutdown()
                return
            self._deliver(stream, payload, recv_ms)
            return
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        reply = control_reply(obj)
        if reply is not None:
            rid, err = reply
            fut = self._acks.get(rid) if isinstance(rid, int) else None
            if fut is not None and not fut.done():
                fut.set_result((err, obj.get("result")))
            return
        if is_server_shutdown(None, obj):
            self._shutdown()
            return
        if self.on_malformed is not None:
            self.on_malformed(self, raw)

    def _pause(self, bp: Any) -> None:
        """Stop reading until the writer drains: TCP pushes back on the sender instead of us dropping."""
        assert self.transport is not None
        under = self.transport.underlying_transport
        under.pause_reading()
        self.pauses += 1
        t0 = time.monotonic()

        async def resume() -> None:
            try:
                await bp.drained()
            finally:
                self._paused = None
                self.paused_s += time.monotonic() - t0
                if not under.is_closing():
                    under.resume_reading()

        self._paused = asyncio.get_running_loop().create_task(resume(), name=f"ws-resume-{self.id}")

    def _shutdown(self) -> None:
        log.info("conn %d: serverShutdown received", self.id)
        if self.on_shutdown is not None:
            self.on_shutdown(self)
