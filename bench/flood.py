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
import os
import time

import orjson
from websockets.asyncio.server import ServerConnection, serve

TEMPLATE = (b'{"stream":"%s","data":{"e":"aggTrade","E":%d,"s":"%s","a":%d,"p":"0.00100000","q":"100.00000000",'
            b'"f":%d,"l":%d,"T":%d,"m":true,"M":true}}')


async def handler(ws: ServerConnection, rate_per_stream: float, counter: list[int]) -> None:
    streams: list[bytes] = []
    syms: list[bytes] = []
    ids: list[int] = []

    async def sender() -> None:
        batch_t = time.monotonic()
        while True:
            if not streams:
                await asyncio.sleep(0.01)
                continue
            n = len(streams)
            for i in range(n):
                ids[i] += 1
                now_us = time.time_ns() // 1000
                await ws.send(TEMPLATE % (streams[i], now_us // 1000, syms[i], ids[i], ids[i], ids[i], now_us),
                              text=True)
            counter[0] += n
            if rate_per_stream > 0:
                batch_t += 1.0 / rate_per_stream
                d = batch_t - time.monotonic()
                if d > 0:
                    await asyncio.sleep(d)
                else:
                    await asyncio.sleep(0)
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


def run_server(port: int, rate_per_stream: float, duration: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    async def main() -> None:
        counter = [0]
        async with serve(lambda ws: handler(ws, rate_per_stream, counter), "127.0.0.1", port, reuse_port=True,
                         compression=None, ping_interval=20, max_queue=None):
            await asyncio.sleep(duration)
        out.put((os.getpid(), counter[0]))

    asyncio.run(main())


def start(port: int, procs: int, rate_per_stream: float, duration: float) -> tuple[list[mp.Process], mp.Queue]:  # type: ignore[type-arg]
    q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    ps = [mp.Process(target=run_server, args=(port, rate_per_stream, duration, q), daemon=True) for _ in range(procs)]
    for p in ps:
        p.start()
    return ps, q


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--rate", type=float, default=0.0, help="frames/s per stream (0 = max)")
    ap.add_argument("--duration", type=float, default=30.0)
    a = ap.parse_args()
    ps, q = start(a.port, a.procs, a.rate, a.duration)
    for p in ps:
        p.join()
    print([q.get() for _ in ps])
