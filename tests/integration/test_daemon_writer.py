"""The batched writer, both strategies: order within a stream (backfill between live), latest, updates."""

from __future__ import annotations

import orjson
import pytest

from binance_common.feedstore import GapEntry, decode_history, encode_gap, entry_last_id
from binance_common.keys import Keys
from binance_streamd.writer import BACKFILL, GAP, LIVE, RedisWriter


@pytest.mark.parametrize("use_fake", [False, True])
async def test_batch_keeps_order_marks_backfill_and_sets_latest(use_fake, redis_client, fake_redis, keys) -> None:
    r = fake_redis if use_fake else redis_client
    w = RedisWriter(r, keys, maxlen=1000, buffer_max=10_000)
    await w.start()
    assert w.strategy == ("pipeline" if use_fake else "script")
    pubsub = r.pubsub()
    await pubsub.subscribe(keys.updates_channel)
    try:
        # one event-loop turn: live 1, 2; backfilled 3, 4; a gap 5..6; live 7 (held back during the backfill)
        for t, kind in ((1, LIVE), (2, LIVE), (3, BACKFILL), (4, BACKFILL)):
            w.add("btcusdt@trade", b'{"t":%d,"p":"0.10000000"}' % t, 1000 + t, kind)
        w.add("btcusdt@trade", encode_gap(5, 6, "test"), 1006, GAP)
        w.add("btcusdt@trade", b'{"t":7,"p":"0.10000000"}', 1007)
        w.add("ethusdt@trade", b'{"t":7}', 2000)
        assert await w.flush()
        entries = [decode_history(f) for _, f in await r.xrange(keys.history("btcusdt@trade"))]
        assert [entry_last_id(e, "t") for e in entries] == [1, 2, 3, 4, 6, 7]
        assert [getattr(e, "backfilled", None) for e in entries] == [False, False, True, True, None, False]
        assert entries[4] == GapEntry(5, 6, "test", 1006)
        assert entries[0].received_ms == 1001
        latest = orjson.loads(await r.get(keys.latest("btcusdt@trade")))
        assert latest == {"r": 1007, "d": {"t": 7, "p": "0.10000000"}}
        msg = None
        for _ in range(50):
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if msg:
                break
        assert msg is not None and set(msg["data"].decode().split("\n")) == {"btcusdt@trade", "ethusdt@trade"}
    finally:
        await pubsub.aclose()
        await w.close()


async def test_buffer_is_bounded_while_redis_is_down_and_drops_are_counted(fake_redis) -> None:
    w = RedisWriter(fake_redis, Keys("x"), maxlen=100, buffer_max=1000)
    w.redis_ok = False  # as after a failed write; not started: nothing drains
    for i in range(1500):
        w.add("a@trade", b"%d" % i, i)
    assert len(w.pending) == 1000 and w.dropped == 500
    assert w.pending[0][1] == b"500" and w.pending[-1][1] == b"1499"  # the oldest went first


async def test_while_redis_is_up_nothing_is_dropped_past_the_mark(fake_redis) -> None:
    """Readers pause at HIGH_WATER (congested); what one socket read already delivered is kept."""
    w = RedisWriter(fake_redis, Keys("x"), maxlen=100, buffer_max=1000)
    for i in range(1500):
        w.add("a@trade", b"{}", i)
    assert len(w.pending) == 1500 and w.dropped == 0


async def test_a_burst_larger_than_the_inflight_window_lands_complete_and_in_order(redis_client, keys) -> None:
    """Batches sent from inside add() (a long read callback) and by the writer task, many in flight at once."""
    w = RedisWriter(redis_client, keys, maxlen=100_000, buffer_max=1_000_000, batch_max=100)
    await w.start()
    peak = 0
    try:
        await w.flush()  # connection up: add() may now send by itself
        w.add("warm@trade", b'{"t":0}', 1)
        assert await w.flush()
        n = 20_000  # one synchronous burst: 200 batches, more than MAX_INFLIGHT
        for i in range(n):
            w.add(f"s{i % 3}@trade", b'{"t":%d}' % i, 1000 + i)
            peak = max(peak, len(w._strategy._inflight))  # type: ignore[union-attr]
        assert peak == w._strategy.MAX_INFLIGHT  # type: ignore[union-attr]  # the window filled while the loop was busy with us
        assert await w.flush(30)
        for k in range(3):
            entries = await redis_client.xrange(keys.history(f"s{k}@trade"))
            assert [orjson.loads(f[b"d"])["t"] for _, f in entries] == list(range(k, n, 3))
        assert w.written == n + 1 and w.dropped == 0 and w.pending == type(w.pending)()
    finally:
        await w.close()


async def test_script_lost_by_redis_is_reloaded_and_nothing_is_lost(redis_client, keys) -> None:
    w = RedisWriter(redis_client, keys, maxlen=100_000, buffer_max=100_000, batch_max=50)
    await w.start()
    try:
        for i in range(500):
            w.add("x@trade", b'{"t":%d}' % i, i)
        assert await w.flush()
        await redis_client.script_flush()  # as after a Redis restart without persistence of scripts
        for i in range(500, 1000):
            w.add("x@trade", b'{"t":%d}' % i, i)
        assert await w.flush()
        entries = await redis_client.xrange(keys.history("x@trade"))
        assert [orjson.loads(f[b"d"])["t"] for _, f in entries] == list(range(1000))
        assert w.errors == 0 and w.redis_ok
    finally:
        await w.close()
