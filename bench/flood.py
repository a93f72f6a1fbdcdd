"""A flood sender for benchmarks: a minimal Binance-compatible combined-stream server that answers
SUBSCRIBE/UNSUBSCRIBE and sends pre-formatted frames as fast as it can (or at a target rate).

The kind of each stream comes from its name: ``<s>@aggTrade``, ``<s>@trade``, ``<s>@bookTicker`` and
``<s>@depth@100ms`` get Binance's payload layouts, with contiguous ids (``a``, ``t``, ``u``; depth diffs
have ``U`` = previous ``u`` + 1). Each payload carries its send time in µs, a benchmark-only convention so a
consumer can measure send -> visibility latency: ``T`` for trade, aggTrade and depth (whose real ``T`` is
ms), and ``E`` for bookTicker (which has no time field on Binance spot; cryptofeed reads ``E`` when present).
Run several processes on one port (SO_REUSEPORT) so the sender out-runs the daemon:
``python bench/flood.py --port P --procs 2``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve

TEMPLATE = (b'{"stream":"%s","data":{"e":"aggTrade","E":%d,"s":"%s","a":%d,"p":"0.00100000","q":"100.00000000",'
            b'"f":%d,"l":%d,"T":%d,"m":true,"M":true}}')
_TRADE = (b'{"stream":"%s","data":{"e":"trade","E":%d,"s":"%s","t":%d,"p":"0.00100000","q":"100.00000000",'
          b'"T":%d,"m":true,"M":true}}')
_BOOK_TICKER = (b'{"stream":"%s","data":{"u":%d,"s":"%s","b":"0.00100000","B":"31.21000000","a":"0.00110000",'
                b'"A":"40.66000000","E":%d}}')
_DEPTH = (b'{"stream":"%s","data":{"e":"depthUpdate","E":%d,"s":"%s","U":%d,"u":%d,'
          b'"b":[["0.00100000","10.00000000"]],"a":[["0.00110000","12.00000000"]],"T":%d}}')
Build = Callable[[bytes, bytes, int, int, int], bytes]  # stream, SYMBOL, id, now ms, now µs -> frame payload
BUILDERS: dict[str, Build] = {
    "aggTrade": lambda s, sym, i, ms, us: TEMPLATE % (s, ms, sym, i, i, i, us),
    "trade": lambda s, sym, i, ms, us: _TRADE % (s, ms, sym, i, us),
    "bookTicker": lambda s, sym, i, ms, us: _BOOK_TICKER % (s, i, sym, us),
    "depth@100ms": lambda s, sym, i, ms, us: _DEPTH % (s, ms, sym, i, i, us),
    "depth": lambda s, sym, i, ms, us: _DEPTH % (s, ms, sym, i, i, us),
}


def builder(stream: str) -> Build:
    kind = stream.split("@", 1)[1] if "@" in stream else ""
    if kind not in BUILDERS:
        raise ValueError(f"flood serves {', '.join(BUILDERS)} streams, not {stream!r}")
    return BUILDERS[kind]


ROUND = 16  # frames per stream per write at max rate
FIRST_ID = 1_000_000  # ids of a stream's frames start after this (per connection)
HIGH_WATER = 1 << 20


def frame(payload: bytes) -> bytes:
    """An unmasked server text frame (FIN + opcode 1), as RFC 6455 section 5.2 lays it out."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


async def handler(ws: ServerConnection, rate_per_stream: float, counter: list[int], limit: int = 0) -> None:
    """``limit``: frames per stream, then that stream falls silent (0 = no limit)."""
    streams: list[bytes] = []
    syms: list[bytes] = []
    builds: list[Build] = []
    ids: list[int] = []
    first_id = FIRST_ID

    def add(name: str) -> None:
        b = name.encode()
        if b not in streams:
            builds.append(builder(name))
            streams.append(b)
            syms.append(name.split("@")[0].upper().encode())
            ids.append(first_id)

    async def sender() -> None:
        # Frames are formatted here and written straight to the transport as one buffer per round: the
        # websockets handshake and control replies stay with the library, the data path costs ~1 µs a frame,
        # so the sender out-runs the daemon it measures (see docs/benchmarks.md).
        transport = ws.transport
        batch_t = time.monotonic()
        per_round = 1 if rate_per_stream > 0 else ROUND
        while True:
            if not streams:
                await asyncio.sleep(0.01)
                continue
            while transport.get_write_buffer_size() > HIGH_WATER:
                await asyncio.sleep(0.001)  # the reader is behind: TCP backpressure, as Binance would see it
            if transport.is_closing():
                return
            now_us = time.time_ns() // 1000
            now_ms = now_us // 1000
            out = []
            for i in range(len(streams)):
                s, sym, a, build = streams[i], syms[i], ids[i], builds[i]
                k_max = per_round if not limit else min(per_round, first_id + limit - a)
                for k in range(1, k_max + 1):
                    out.append(frame(build(s, sym, a + k, now_ms, now_us)))
                ids[i] = a + max(0, k_max)
            if out:
                transport.write(b"".join(out))
                counter[0] += len(out)
            if rate_per_stream > 0:
                batch_t += 1.0 / rate_per_stream
                d = batch_t - time.monotonic()
                await asyncio.sleep(d if d > 0 else 0)
            else:
                await asyncio.sleep(0 if out else 0.01)

    # streams named in the URL (/stream?streams=a/b, as cryptofeed connects) are subscribed at once
    from urllib.parse import parse_qs, urlsplit

    q = parse_qs(urlsplit(ws.request.path if ws.request else "/").query)
    for name in (q.get("streams", [""])[0]).split("/"):
        if name:
            add(name)
    task = asyncio.create_task(sender())
    try:
        async for msg in ws:
            req = orjson.loads(msg)
            if req.get("method") == "SUBSCRIBE":
                for name in req.get("params", []):
                    add(name)
            elif req.get("method") == "UNSUBSCRIBE":
                for name in req.get("params", []):
                    b = name.encode()
                    if b in streams:
                        i = streams.index(b)
                        del streams[i], syms[i], ids[i], builds[i]
            await ws.send(orjson.dumps({"result": None, "id": req.get("id")}), text=True)
    except Exception:
        pass
    finally:
        task.cancel()


def rest_stub(n: int) -> tuple[ThreadingHTTPServer, int]:
    """Binance REST as the flood's peers need it: exchangeInfo of its ``n`` symbols, and a depth snapshot
    (``lastUpdateId`` = the id before the flood's first diff, so a book syncs from the first buffered diff)."""
    from tests.support.redis_server import free_port

    info = orjson.dumps({"timezone": "UTC", "serverTime": 0, "rateLimits": [], "exchangeFilters": [], "symbols": [
        {"symbol": f"S{i:04d}USDT", "status": "TRADING", "baseAsset": f"S{i:04d}", "quoteAsset": "USDT",
         "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.00000100"}]} for i in range(n)]})
    depth = orjson.dumps({"lastUpdateId": FIRST_ID, "bids": [["0.00100000", "10.00000000"]],
                          "asks": [["0.00110000", "12.00000000"]]})

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = depth if self.path.startswith("/api/v3/depth") else info
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    port = free_port()
    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, port


def run_server(port: int, rate_per_stream: float, duration: float, sent: Any, slot: int, limit: int = 0) -> None:
    async def main() -> None:
        counter = [0]

        async def publish() -> None:  # the sender's own count, for the reader to compare with the daemon's
            while True:
                sent[slot] = counter[0]
                await asyncio.sleep(0.2)

        async with serve(lambda ws: handler(ws, rate_per_stream, counter, limit), "127.0.0.1", port, reuse_port=True,
                         compression=None, ping_interval=20, max_queue=None):
            task = asyncio.create_task(publish())
            await asyncio.sleep(duration)
            task.cancel()
        sent[slot] = counter[0]

    asyncio.run(main())


def start(port: int, procs: int, rate_per_stream: float, duration: float,
          limit: int = 0) -> tuple[list[mp.Process], Any]:
    """Start ``procs`` sender processes; returns them and a shared array of frames sent so far (one per process).
    ``limit``: frames per stream before it falls silent (0 = unlimited)."""
    sent = mp.Array("q", procs, lock=False)
    ps = [mp.Process(target=run_server, args=(port, rate_per_stream, duration, sent, i, limit), daemon=True)
          for i in range(procs)]
    for p in ps:
        p.start()
    return ps, sent


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--rate", type=float, default=0.0, help="frames/s per stream (0 = max)")
    ap.add_argument("--duration", type=float, default=30.0)
    a = ap.parse_args()
    ps, sent = start(a.port, a.procs, a.rate, a.duration)
    for p in ps:
        p.join()
    print(f"frames sent: {sum(sent):,}")
