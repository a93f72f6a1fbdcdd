"""The batched writer, both strategies: order within a stream (backfill between live), latest, updates."""

from __future__ import annotations

import orjson
import pytest

from binance_common.keys import Keys
from binance_streamd.writer import RedisWriter


@pytest.mark.parametrize("use_fake", [False, True])
async def test_batch_keeps_order_marks_backfill_and_sets_latest(use_fake, redis_client, fake_redis, keys) -> None:
    r = fake_redis if use_fake else redis_client
    w = RedisWriter(r, keys, maxlen=1000, buffer_max=10_000)
    await w.start()
    assert w.strategy == ("pipeline" if use_fake else "script") or use_fake
    pubsub = r.pubsub()
    await pubsub.subscribe(keys.updates_channel)
    try:
        # one event-loop turn: live 1, 2; backfilled 3, 4; live 5 (held back during the backfill); other stream
        for t, bf in ((1, False), (2, False), (3, True), (4, True), (5, False)):
            w.add("btcusdt@trade", b'{"t":%d,"p":"0.10000000"}' % t, 1000 + t, backfill=bf)
        w.add("ethusdt@trade", b'{"t":7}', 2000)
        assert await w.flush()
        entries = await r.xrange(keys.history("btcusdt@trade"))
        assert [orjson.loads(f[b"d"])["t"] for _, f in entries] == [1, 2, 3, 4, 5]
        assert [f.get(b"b") for _, f in entries] == [None, None, b"1", b"1", None]
        assert entries[0][1][b"r"] == b"1001"
        latest = orjson.loads(await r.get(keys.latest("btcusdt@trade")))
        assert latest == {"r": 1005, "d": {"t": 5, "p": "0.10000000"}}
        msg = None
        for _ in range(50):
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if msg:
                break
        assert msg is not None and set(msg["data"].decode().split("\n")) == {"btcusdt@trade", "ethusdt@trade"}
    finally:
        await pubsub.aclose()
        await w.close()


async def test_buffer_is_bounded_and_drops_are_counted(fake_redis) -> None:
    w = RedisWriter(fake_redis, Keys("x"), maxlen=100, buffer_max=1000)
    for i in range(1500):  # not started: nothing drains
        w.add("a@trade", b"{}", i)
    assert len(w.pending) == 1000 and w.dropped == 500
