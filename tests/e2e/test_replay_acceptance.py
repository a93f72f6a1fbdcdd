"""Acceptance: a recording replayed as a live market through ``binance-streamd`` with connection drops, short
connection lifetimes and ``kill -9`` restarts, then Redis audited id by id and book by book.

The simulator publishes the recording once, in time (timeline mode), so whatever the daemon misses while a
connection is down or while it is dead is gone from the WebSocket and must come back through REST, as with
Binance. At the end: every recorded aggTrade (and trade) id is in Redis once and in order, and every stored
book equals an independent rebuild (the recorded snapshot plus every recorded diff).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from binance_common.feedstore import decode_book, decode_history, entry_last_id
from binance_common.keys import Keys
from tests.support.sim import BinanceSim, SimConfig
from tests.support.sim.replay import load
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SPEED = 3.0  # the recording plays three times faster than recorded
TOP = 100  # levels a side stored and compared


def recorded_ids(rd, stream: str) -> list[int]:
    field = "a" if stream.endswith("@aggTrade") else "t"
    return [orjson.loads(p)[field] for _, s, p in rd.frames if s == stream]


async def stored_ids(r: aioredis.Redis, keys: Keys, stream: str) -> list[int | None]:
    field = "a" if stream.endswith("@aggTrade") else "t"
    return [entry_last_id(decode_history(f), field) for _, f in await r.xrange(keys.history(stream))]


def start_daemon(env: dict[str, str]) -> asyncio.Future:
    return asyncio.ensure_future(asyncio.create_subprocess_exec(
        sys.executable, "-m", "binance_streamd", "run", "--log-format", "text", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE))


async def test_recording_through_drops_short_lifetimes_and_kill_9(recording_path: Path, redis_server,
                                                                   redis_client, keys) -> None:
    from tests.support.recordings import reconstruct_from_recording

    rd = load(recording_path)
    trade_streams = sorted(s for s in rd.streams if s.endswith(("@aggTrade", "@trade")))
    streams = trade_streams + sorted(s for s in rd.streams if s.endswith("@bookTicker"))
    symbols = sorted(rd.depth)
    cfg = SimConfig(symbols=[], rate=0, replay=recording_path, replay_mode="timeline", replay_speed=SPEED,
                    replay_delay=1.0, connection_lifetime=2.5)
    async with BinanceSim(cfg) as sim:
        env = {**os.environ, "BINANCE_MCP_REDIS_URL": redis_server.url, "BINANCE_MCP_NAMESPACE": keys.namespace,
               "BINANCE_MCP_WS_BASE_URL": sim.ws_url, "BINANCE_MCP_REST_BASE_URL": sim.rest_url,
               "BINANCE_MCP_STREAMS": ",".join(streams), "BINANCE_MCP_ORDER_BOOK_SYMBOLS": ",".join(symbols),
               "BINANCE_MCP_ORDER_BOOK_TOP_N": str(TOP), "BINANCE_MCP_ORDER_BOOK_SNAPSHOT_LIMIT": "1000",
               "BINANCE_MCP_HEARTBEAT_TTL_S": "3", "BINANCE_MCP_RECONNECT_MAX_DELAY_S": "0.3"}
        proc = await start_daemon(env)
        try:
            await wait_until(lambda: redis_client.exists(keys.heartbeat), timeout=20, what="daemon up")
            await wait_until(lambda: sim.timeline.started.is_set(), timeout=20)  # type: ignore[union-attr]
            duration = (rd.frames[-1][0] - rd.frames[0][0]) / SPEED
            t0 = time.monotonic()
            step = 0
            killed = False
            while not sim.timeline.done.is_set() and time.monotonic() - t0 < duration + 10:  # type: ignore[union-attr]
                await asyncio.sleep(1.5)  # the fault schedule's pace, bounded by the replay's length
                step += 1
                if step % 2:
                    sim.faults.drop_connections()
                elif not killed and time.monotonic() - t0 > duration * 0.4:
                    proc.kill()  # kill -9 mid-replay; a new process starts at once
                    await proc.wait()
                    killed = True
                    proc = await start_daemon(env)
                else:
                    await sim.faults.server_shutdown()
            assert killed, "the replay was too short to kill the daemon mid-way"
            await sim.replay_done(60)

            for stream in trade_streams:
                want = recorded_ids(rd, stream)
                await wait_until(lambda stream=stream, want=want: _ends_with(redis_client, keys, stream, want[-1]),
                                 timeout=20, what=f"{stream} complete")
                got = await stored_ids(redis_client, keys, stream)
                assert got == want, f"{stream}: every recorded id once and in order"
            expected = reconstruct_from_recording(recording_path)
            for sym in symbols:
                bids, asks = expected[sym]
                await wait_until(lambda sym=sym, bids=bids, asks=asks: _book_is(redis_client, keys, sym, bids, asks),
                                 timeout=20, what=f"{sym} equal to the independent rebuild")
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            err = (await proc.stderr.read()).decode()  # type: ignore[union-attr]
            assert "Traceback" not in err, err[-4000:]


async def _ends_with(r: aioredis.Redis, keys: Keys, stream: str, last: int) -> bool:
    ids = await stored_ids(r, keys, stream)
    return bool(ids) and ids[-1] == last


async def _book_is(r: aioredis.Redis, keys: Keys, sym: str, bids: dict[str, str], asks: dict[str, str]) -> bool:
    """The stored book (top TOP levels) equals the rebuild's top TOP levels, level by level."""
    v = decode_book(await r.get(keys.book(sym)))
    want_b = sorted(bids.items(), key=lambda x: Decimal(x[0]), reverse=True)[:TOP]
    want_a = sorted(asks.items(), key=lambda x: Decimal(x[0]))[:TOP]
    return v is not None and v.live and v.bids == [list(x) for x in want_b] and v.asks == [list(x) for x in want_a]
