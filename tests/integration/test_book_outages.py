"""Order books across outages that overlap a resync: never a live book that nothing keeps current, never a
level the daemon cannot know. Real redis-server, the project's simulator."""

from __future__ import annotations

from typing import Any

import pytest

from binance_common.feedstore import decode_book
from binance_streamd.service import StreamDaemon
from tests.integration.test_continuity import settings_for
from tests.support.sim import BinanceSim, SimConfig
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


async def test_a_snapshot_landing_while_the_connection_is_down_is_not_served_live(
        redis_server, redis_client, keys) -> None:
    """A gap starts a resync; before its (slow) snapshot comes, the connection drops and cannot come back. The
    snapshot must not make a live book: no diff can keep it current. Once connected again the book is live
    and equal to the exchange's."""
    async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=40.0)) as sim:
        s = settings_for(sim, redis_server.url, keys.namespace, order_book_symbols=["BTCUSDT"],
                         order_book_top_n=20)
        d = await StreamDaemon(s).start()
        books = d.books
        assert books is not None
        try:
            await wait_until(lambda: _stored_is(redis_client, keys, "live"), what="book live")
            sim.faults.rest_fault(delay=1.0, path="depth")  # the resync's snapshot takes a second
            sim.faults.drop_depth("BTCUSDT", 1)  # one diff lost: a gap, a snapshot asked
            await wait_until(lambda: books.status()["BTCUSDT"]["state"] == "syncing", what="the gap", timeout=5)
            snapshots = books.status()["BTCUSDT"]["snapshots"]
            sim.faults.reject_handshakes_next(10_000)  # the connection drops and stays down
            sim.faults.drop_connections()
            await wait_until(lambda: books.status()["BTCUSDT"]["snapshots"] > snapshots, timeout=10,
                             what="the snapshot, while down")
            assert books.status()["BTCUSDT"]["state"] != "live"
            assert await _stored_state(redis_client, keys) == "syncing"
            sim.faults.clear()  # connections come back
            sim.faults.quiet("BTCUSDT")  # and stop moving, so the book can be compared with the exchange's
            truth = sim.book("BTCUSDT", 20)
            await wait_until(lambda: _equals(redis_client, keys, truth), timeout=15, what="the book live and exact")
        finally:
            await d.stop()


async def _stored_state(r: Any, keys: Any) -> str | None:
    v = decode_book(await r.get(keys.book("BTCUSDT")))
    return None if v is None else v.state.value


async def _stored_is(r: Any, keys: Any, state: str) -> bool:
    return await _stored_state(r, keys) == state


async def _equals(r: Any, keys: Any, truth: tuple[list[Any], list[Any]]) -> bool:
    v = decode_book(await r.get(keys.book("BTCUSDT")))
    return v is not None and v.live and (v.bids, v.asks) == truth


async def test_a_sweep_past_the_snapshots_depth_takes_a_new_snapshot(redis_server, redis_client, keys) -> None:
    """Snapshots of 40 levels, 5 served: a market order takes the 45 best bids at once. Past the snapshot's
    last level the daemon cannot know the bids nobody touched since, so it never serves them: it takes a new
    snapshot and the served book equals the exchange's again."""
    async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=40.0)) as sim:
        s = settings_for(sim, redis_server.url, keys.namespace, order_book_symbols=["BTCUSDT"],
                         order_book_snapshot_limit=40, order_book_top_n=5)
        d = await StreamDaemon(s).start()
        books = d.books
        assert books is not None
        try:
            await wait_until(lambda: _stored_is(redis_client, keys, "live"), what="book live")
            sim.faults.pause()
            sim.hub.flush_now()
            snapshots = books.status()["BTCUSDT"]["snapshots"]
            sim.faults.sweep("BTCUSDT", 45, "b")
            sim.hub.flush_now()
            truth = sim.book("BTCUSDT", 5)
            await wait_until(lambda: _equals(redis_client, keys, truth), timeout=15, what="the true book, live")
            assert books.status()["BTCUSDT"]["snapshots"] > snapshots  # proved by a new snapshot
            assert books.status()["BTCUSDT"]["gaps"] == 0  # no diff was missed
        finally:
            await d.stop()
