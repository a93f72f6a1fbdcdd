"""A flood sender for benchmarks: a minimal Binance-compatible combined-stream server that answers
SUBSCRIBE/UNSUBSCRIBE and sends pre-formatted aggTrade frames as fast as it can (or at a target rate).

Each payload carries ``E`` (send time, ms, as Binance) and ``T`` (send time in µs, a benchmark-only
convention) so a consumer can measure send -> visibility latency. Run several processes on one port
(SO_REUSEPORT) so the sender out-runs the daemon: ``python bench/flood.py --port P --procs 2``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve

TEMPLATE = (b'{"stream":"%s","data":{"e":"aggTrade","E":%d,"s":"%s","a":%d,"p":"0.00100000","q":"100.00000000",'
            b'"f":%d,"l":%d,"T":%d,"m":true,"M":true}}')

ROUND = 16  # frames per stream per write at max rate
HIGH_WATER = 1 << 20


def frame(payload: bytes) -> bytes:
    """An unmasked server text frame (FIN + opcode 1), as RFC 6455 section 5.2 lays it out."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


async def handler(ws: ServerConnection, rate_per_stream: float, counter: list[int]) -> None:
    streams: list[bytes] = []
    syms: list[bytes] = []
    ids: list[int] = []

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
            n = len(streams)
            now_us = time.time_ns() // 1000
            now_ms = now_us // 1000
            out = []
            for i in range(n):
                s, sym, a = streams[i], syms[i], ids[i]
                for k in range(1, per_round + 1):
                    out.append(frame(TEMPLATE % (s, now_ms, sym, a + k, a + k, a + k, now_us)))
                ids[i] = a + per_round
            transport.write(b"".join(out))
            counter[0] += n * per_round
            if rate_per_stream > 0:
                batch_t += 1.0 / rate_per_stream
                d = batch_t - time.monotonic()
                await asyncio.sleep(d if d > 0 else 0)
            else:
                await asyncio.sleep(0)

    # streams named in the URL (/stream?streams=a/b, as cryptofeed connects) are subscribed at once
    from urllib.parse import parse_qs, urlsplit

    q = parse_qs(urlsplit(ws.request.path if ws.request else "/").query)
    for s in (q.get("streams", [""])[0]).split("/"):
        if s:
            streams.append(s.encode())
            syms.append(s.split("@")[0].upper().encode())
            ids.append(1_000_000)
    task = asyncio.create_task(sender())
    try:
        async for msg in ws:
            req = orjson.loads(msg)
            if req.get("method") == "SUBSCRIBE":
                for s in req.get("params", []):
                    b = s.encode()
                    if b not in streams:
                        streams.append(b)
                        syms.append(s.split("@")[0].upper().encode())
                        ids.append(1_000_000)
            elif req.get("method") == "UNSUBSCRIBE":
                for s in req.get("params", []):
                    b = s.encode()
                    if b in streams:
                        i = streams.index(b)
                        del streams[i], syms[i], ids[i]
            await ws.send(orjson.dumps({"result": None, "id": req.get("id")}), text=True)
    except Exception:
        pass
    finally:
        task.cancel()


def run_server(port: int, rate_per_stream: float, duration: float, sent: Any, slot: int) -> None:
    async def main() -> None:
        counter = [0]

        async def publish() -> None:  # the sender's own count, for the reader to compare with the daemon's
            while True:
                sent[slot] = counter[0]
                await asyncio.sleep(0.2)

        async with serve(lambda ws: handler(ws, rate_per_stream, counter), "127.0.0.1", port, reuse_port=True,
                         compression=None, ping_interval=20, max_queue=None):
            task = asyncio.create_task(publish())
            await asyncio.sleep(duration)
            task.cancel()
        sent[slot] = counter[0]

    asyncio.run(main())


def start(port: int, procs: int, rate_per_stream: float, duration: float) -> tuple[list[mp.Process], Any]:
    """Start ``procs`` sender processes; returns them and a shared array of frames sent so far (one per process)."""
    sent = mp.Array("q", procs, lock=False)
    ps = [mp.Process(target=run_server, args=(port, rate_per_stream, duration, sent, i), daemon=True)
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
