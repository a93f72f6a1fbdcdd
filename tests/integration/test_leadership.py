"""Leadership against a real redis-server: terms, renewal, resumption, fencing of every write, a dead local
leader taken over at once, Redis losing its data; and the unfenced mode without Lua (fakeredis)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from binance_common.feedstore import parse_token
from binance_streamd.leadership import Fenced, Leadership, Term
from binance_streamd.writer import RedisWriter

pytestmark = pytest.mark.integration


async def test_terms_renewal_and_followers(redis_client, keys) -> None:
    a, b = Leadership(redis_client, keys, 5), Leadership(redis_client, keys, 5)
    assert await a.acquire() is Term.NEW and a.terms == 1
    tok = parse_token(a.token)
    assert tok is not None and tok["epoch"] == 1 and tok["pid"] == os.getpid()
    assert await b.acquire() is Term.FOLLOWER and b.token is None and b.leader_token == a.token
    assert await a.acquire() is Term.RENEWED and 4000 < await redis_client.pttl(keys.leader) <= 5000
    await a.execute([["SET", keys.always_on + "x", "1"]])
    assert await redis_client.get(keys.always_on + "x") == b"1"
    with pytest.raises(Fenced):
        await b.execute([["SET", keys.always_on + "y", "1"]])
    assert not await redis_client.exists(keys.always_on + "y")
    await a.release()
    assert await b.acquire() is Term.NEW and parse_token(b.token)["epoch"] == 2  # type: ignore[index]
    with pytest.raises(Fenced):  # a's token is no longer the leader's
        a.token = a.leader_token or "stale"
        await a.execute([["SET", keys.always_on + "z", "1"]])


async def test_an_expired_lease_nobody_took_is_resumed_with_the_same_token(redis_client, keys) -> None:
    a = Leadership(redis_client, keys, 5)
    await a.acquire()
    tok = a.token
    await redis_client.delete(keys.leader)  # as if Redis was unreachable longer than the TTL
    with pytest.raises(Fenced):
        await a.execute([["SET", keys.always_on, "1"]])
    assert await a.acquire() is Term.RESUMED and a.token == tok and a.terms == 1
    await a.execute([["SET", keys.always_on, "1"]])


async def test_redis_losing_every_key_lets_the_leader_go_on_under_a_new_token(redis_client, keys) -> None:
    a = Leadership(redis_client, keys, 5)
    await a.acquire()
    old = a.token
    await redis_client.delete(keys.leader, keys.leader_last, keys.leader_epoch)
    assert await a.acquire() is Term.RESUMED and a.terms == 1  # its identity is its own: same term goes on
    assert parse_token(a.token)["nonce"] == parse_token(old)["nonce"]  # type: ignore[index]
    await a.execute([["SET", keys.always_on, "1"]])


async def test_another_term_in_between_means_a_new_term(redis_client, keys) -> None:
    a, b = Leadership(redis_client, keys, 5), Leadership(redis_client, keys, 5)
    await a.acquire()
    await redis_client.delete(keys.leader)
    assert await b.acquire() is Term.NEW
    await b.release()
    assert await a.acquire() is Term.NEW and a.terms == 2  # b led meanwhile: a's memory is stale


async def test_a_dead_leader_on_this_host_is_replaced_at_once(redis_client, keys) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    a = Leadership(redis_client, keys, 60)
    host = a.identity.split(":")[0]
    await redis_client.set(keys.leader, f"7:{host}:{dead.pid}:abcdef", px=60_000)
    assert await a.acquire() is Term.NEW and a.token != f"7:{host}:{dead.pid}:abcdef"
    b = Leadership(redis_client, keys, 60)
    await redis_client.set(keys.leader, f"8:otherhost:{dead.pid}:abcdef", px=60_000)
    assert await b.acquire() is Term.FOLLOWER  # another host's process: only its TTL can tell


async def test_the_writer_is_fenced_and_holds_everything(redis_client, keys) -> None:
    lead = Leadership(redis_client, keys, 5)
    await lead.acquire()
    fenced: list[bool] = []
    w = RedisWriter(redis_client, keys, maxlen=100, buffer_max=1000, fence=lambda: lead.fence,
                    on_fenced=lambda: fenced.append(True))
    await w.start()
    try:
        w.add("btcusdt@trade", b'{"t":1}', 1)
        assert await w.flush(5)
        await redis_client.set(keys.leader, "99:someone:1:x", px=5000)  # another daemon took over
        w.add("btcusdt@trade", b'{"t":2}', 2)
        assert not await w.flush(1)
        assert w.fenced and fenced == [True] and len(w.pending) == 1
        assert await redis_client.xlen(keys.history("btcusdt@trade")) == 1  # the late write was refused
        assert w.discard() == 1 and not w.pending
    finally:
        await w.close(timeout=1)


async def test_without_lua_every_daemon_leads_unfenced(fake_redis, keys) -> None:
    lead = Leadership(fake_redis, keys, 5)
    assert await lead.acquire() is Term.NEW and lead.lua is False and lead.fence[1] == ""
    assert await lead.acquire() is Term.RENEWED
    await lead.execute([["SET", "k", "v"]])
    assert await fake_redis.get("k") == b"v"
