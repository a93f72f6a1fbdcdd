"""The no-loss promise across processes: ``kill -9`` and restart, active/standby failover, a stalled leader
that wakes up. ``binance-streamd run`` as child processes against the simulator and a real redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis

from binance_common.feedstore import decode_history, entry_last_id, parse_token
from binance_common.keys import Keys
from tests.support.sim import BinanceSim, SimConfig
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

STREAMS = ["btcusdt@trade", "ethusdt@aggTrade"]


def env_for(sim: BinanceSim, redis_url: str, namespace: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "BINANCE_MCP_REDIS_URL": redis_url, "BINANCE_MCP_NAMESPACE": namespace,
            "BINANCE_MCP_WS_BASE_URL": sim.ws_url, "BINANCE_MCP_REST_BASE_URL": sim.rest_url,
            "BINANCE_MCP_STREAMS": ",".join(STREAMS), "BINANCE_MCP_HEARTBEAT_TTL_S": "3",
            "BINANCE_MCP_RECONNECT_MAX_DELAY_S": "0.5", **extra}


@asynccontextmanager
async def daemon_process(env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "binance_streamd", "run", "--log-format",
                                                "text", env=env, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            with _suppress():
                proc.send_signal(signal.SIGCONT)
            proc.kill()
        await proc.wait()  # reaped: a dead leader is recognised as dead


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return True


async def ids_of(r: aioredis.Redis, keys: Keys, stream: str) -> list[int | None]:
    field = "a" if stream.endswith("@aggTrade") else "t"
    return [entry_last_id(decode_history(f), field) for _, f in await r.xrange(keys.history(stream))]


async def holds(r: aioredis.Redis, keys: Keys, stream: str, last: int) -> bool:
    ids = await ids_of(r, keys, stream)
    return bool(ids) and ids[-1] == last


async def flowing(r: aioredis.Redis, keys: Keys) -> bool:
    return all([await r.exists(keys.latest(s)) for s in STREAMS])


async def leader_pid(r: aioredis.Redis, keys: Keys) -> int | None:
    tok = parse_token(await r.get(keys.leader))
    return tok["pid"] if tok else None


async def is_leader(r: aioredis.Redis, keys: Keys, pid: int) -> bool:
    return await leader_pid(r, keys) == pid


async def assert_complete(r: aioredis.Redis, keys: Keys, sim: BinanceSim, first: dict[str, int]) -> None:
    """Pause the market; every stream's history must end at the simulator's last id with every id once."""
    sim.faults.pause()
    m_btc, m_eth = sim.market("BTCUSDT"), sim.market("ETHUSDT")
    last = {"btcusdt@trade": m_btc.trade_id, "ethusdt@aggTrade": m_eth.agg_id}
    for s in STREAMS:
        await wait_until(lambda s=s: holds(r, keys, s, last[s]), timeout=20, what=f"{s} complete")
        ids = await ids_of(r, keys, s)
        assert ids == list(range(first[s], last[s] + 1)), f"{s}: every id once, in order"


async def first_ids(r: aioredis.Redis, keys: Keys) -> dict[str, int]:
    out = {}
    for s in STREAMS:
        ids = await ids_of(r, keys, s)
        assert ids and ids[0] is not None
        out[s] = ids[0]
    return out


async def test_kill_9_and_restart_three_seconds_later_loses_nothing(redis_server, redis_client, keys) -> None:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT"], rate=60.0)) as sim:
        env = env_for(sim, redis_server.url, keys.namespace)
        async with daemon_process(env) as first:
            await wait_until(lambda: flowing(redis_client, keys), timeout=20, what="data flowing")
            start = await first_ids(redis_client, keys)
            first.kill()
            await first.wait()
        before = sim.market("BTCUSDT").trade_id
        # the restart comes about three seconds later, as in the issue: trades go on meanwhile
        await wait_until(lambda: sim.market("BTCUSDT").trade_id > before + 200, timeout=15,
                         what="trades while the daemon is down")
        async with daemon_process(env) as second:
            await wait_until(lambda: is_leader(redis_client, keys, second.pid), timeout=10,
                             what="the new process leads at once (the old leader is a dead local process)")
            await assert_complete(redis_client, keys, sim, start)
            await wait_until(lambda: _gaps_found(redis_client, keys, "btcusdt@trade"), timeout=10)


async def _gaps_found(r: aioredis.Redis, keys: Keys, stream: str) -> bool:
    v = await r.hget(keys.status(stream), "gaps_found")
    return bool(v) and int(v) >= 1  # the restart hole was found (and filled: assert_complete)


async def test_standby_takes_over_when_the_leader_is_killed(redis_server, redis_client, keys) -> None:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT"], rate=60.0)) as sim:
        env = env_for(sim, redis_server.url, keys.namespace)
        async with daemon_process(env) as a:
            await wait_until(lambda: flowing(redis_client, keys), timeout=20)
            await wait_until(lambda: is_leader(redis_client, keys, a.pid), timeout=10)
            start = await first_ids(redis_client, keys)
            async with daemon_process(env) as b:
                await wait_until(lambda: redis_client.exists(keys.standby(f"{_host()}:{b.pid}")), timeout=10,
                                 what="b stands by")
                assert await leader_pid(redis_client, keys) == a.pid
                a.kill()
                await a.wait()
                await wait_until(lambda: is_leader(redis_client, keys, b.pid), timeout=5,
                                 what="b leads within the heartbeat TTL")
                await assert_complete(redis_client, keys, sim, start)


def _host() -> str:
    import socket

    return socket.gethostname().replace(":", "-")


async def test_a_stalled_leader_that_wakes_up_writes_nothing(redis_server, redis_client, keys) -> None:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT"], rate=60.0)) as sim:
        env = env_for(sim, redis_server.url, keys.namespace)
        async with daemon_process(env) as a, daemon_process(env) as b:
            await wait_until(lambda: flowing(redis_client, keys), timeout=20)
            lead = await wait_until(lambda: leader_pid(redis_client, keys), timeout=10)
            leader, standby = (a, b) if lead == a.pid else (b, a)
            start = await first_ids(redis_client, keys)
            leader.send_signal(signal.SIGSTOP)  # frozen with its buffers full; its lease runs out
            await wait_until(lambda: is_leader(redis_client, keys, standby.pid), timeout=10,
                             what="the standby took a new term")
            await wait_until(lambda: _advanced(redis_client, keys, sim), timeout=10, what="new leader writing")
            leader.send_signal(signal.SIGCONT)  # it wakes up believing it leads
            await wait_until(lambda: _standing_by(redis_client, keys, leader.pid), timeout=10,
                             what="the old leader stood down")
            await assert_complete(redis_client, keys, sim, start)  # no duplicate, no reordering: it wrote nothing
            assert await leader_pid(redis_client, keys) == standby.pid
            leader.terminate()
            err = (await leader.stderr.read()).decode()  # type: ignore[union-attr]
            assert "refused by the fencing token" in err, err[-3000:]  # it did try: the frames read on waking
            assert "leadership lost" in err and "Traceback" not in err


async def _advanced(r: aioredis.Redis, keys: Keys, sim: BinanceSim) -> bool:
    return await holds(r, keys, "btcusdt@trade", sim.market("BTCUSDT").trade_id)


async def _standing_by(r: aioredis.Redis, keys: Keys, pid: int) -> bool:
    return bool(await r.exists(keys.standby(f"{_host()}:{pid}")))
