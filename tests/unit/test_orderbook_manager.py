"""BookManager: snapshot tasks per symbol, resync of one symbol only, throttled writes (fake REST, no sleeps)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from binance_common.errors import RateLimitedError, ServerError
from binance_streamd.bookmanager import BookManager

TIMEOUT = 5.0


def diff(s: str, U: int, u: int, b=(), a=()) -> dict:
    return {"e": "depthUpdate", "E": 1000 + u, "s": s, "U": U, "u": u, "b": [list(x) for x in b],
            "a": [list(x) for x in a]}


def snap(last_id: int, bids=(("1.0", "1"),), asks=(("2.0", "1"),)) -> dict:
    return {"lastUpdateId": last_id, "bids": [list(x) for x in bids], "asks": [list(x) for x in asks]}


class FakeRest:
    """Serves queued depth answers per symbol. An answer may be a dict, an exception, or an asyncio.Event
    to wait for first (the gate lets a test hold one symbol's snapshot while others proceed)."""

    def __init__(self) -> None:
        self.answers: dict[str, list[Any]] = {}
        self.calls: list[tuple[str, dict]] = []
        self._called = asyncio.Condition()

    async def wait_calls(self, n: int) -> None:
        async with self._called:
            await asyncio.wait_for(self._called.wait_for(lambda: len(self.calls) >= n), TIMEOUT)

    def queue(self, symbol: str, *answers: Any) -> None:
        self.answers.setdefault(symbol, []).extend(answers)

    async def get(self, path: str, params: dict) -> Any:
        async with self._called:
            self.calls.append((path, dict(params)))
            self._called.notify_all()
        assert path == "/api/v3/depth"
        queue = self.answers[params["symbol"]]
        while isinstance(queue[0], asyncio.Event):
            await queue.pop(0).wait()
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def symbols_called(self) -> list[str]:
        return [p["symbol"] for _, p in self.calls]


class Writes:
    """Live book values in ``values``; not-live markers (syncing, unsubscribed) in ``markers``."""

    def __init__(self) -> None:
        self.values: list[tuple[str, dict]] = []
        self.markers: list[tuple[str, dict]] = []
        self._cond = asyncio.Condition()

    async def __call__(self, symbol: str, value: bytes) -> None:
        v = orjson.loads(value)
        async with self._cond:
            (self.values if v["state"] == "live" else self.markers).append((symbol, v))
            self._cond.notify_all()

    async def wait_for(self, symbol: str, last_update_id: int) -> dict:
        def found() -> dict | None:
            for s, v in reversed(self.values):
                if s == symbol and v["lastUpdateId"] == last_update_id:
                    return v
            return None

        async with self._cond:
            await asyncio.wait_for(self._cond.wait_for(lambda: found() is not None), TIMEOUT)
        v = found()
        assert v is not None
        return v


def manager(rest: FakeRest, writes: Any, symbols=("AAA", "BBB"), **kw: Any) -> BookManager:
    kw.setdefault("write_interval_s", 0.0)
    kw.setdefault("retry_delays_s", (0.0,))
    return BookManager(rest, list(symbols), top_n=kw.pop("top_n", 5), write=writes, **kw)


async def test_one_symbol_waiting_for_its_snapshot_does_not_block_another() -> None:
    rest, writes = FakeRest(), Writes()
    gate = asyncio.Event()
    rest.queue("AAA", gate, snap(10))
    rest.queue("BBB", snap(20))
    m = manager(rest, writes)
    await m.on_diff("AAA", diff("AAA", 10, 11, b=[("1.5", "3")]), 111)
    await m.on_diff("bbb", diff("BBB", 20, 21, a=[("2.5", "4")]), 222)
    v = await writes.wait_for("BBB", 21)
    assert v["asks"] == [["2.0", "1"], ["2.5", "4"]] and v["asof"] == 222 and v["E"] == 1021
    assert m.status()["AAA"]["state"] == "syncing" and m.status()["BBB"]["state"] == "live"
    gate.set()
    v = await writes.wait_for("AAA", 11)
    assert v["bids"] == [["1.5", "3"], ["1.0", "1"]]
    assert rest.calls[0] == ("/api/v3/depth", {"symbol": "AAA", "limit": 1000})
    await m.close()


async def test_gap_resyncs_only_that_symbol() -> None:
    rest, writes = FakeRest(), Writes()
    rest.queue("AAA", snap(10), snap(30, bids=[("0.5", "9")]))
    rest.queue("BBB", snap(20))
    m = manager(rest, writes)
    await m.on_diff("AAA", diff("AAA", 11, 11), 1)
    await m.on_diff("BBB", diff("BBB", 21, 21), 1)
    await writes.wait_for("AAA", 11)
    await writes.wait_for("BBB", 21)
    await asyncio.wait_for(m.wait_live("BBB"), TIMEOUT)  # at once
    await m.on_diff("AAA", diff("AAA", 25, 31, b=[("0.6", "1")]), 2)  # 12..24 missed
    st = m.status()
    assert st["AAA"]["state"] == "syncing" and st["AAA"]["gaps"] == 1 and st["AAA"]["resyncs"] == 1
    assert st["BBB"] == {**st["BBB"], "state": "live", "gaps": 0, "resyncs": 0, "lastUpdateId": 21}
    assert m.book("AAA") is None and m.book("BBB") is not None
    await asyncio.wait_for(m.wait_live("AAA"), TIMEOUT)
    v = await writes.wait_for("AAA", 31)
    assert v["bids"] == [["0.6", "1"], ["0.5", "9"]]
    assert rest.symbols_called() == ["AAA", "BBB", "AAA"]
    await m.on_diff("BBB", diff("BBB", 22, 22), 3)
    await writes.wait_for("BBB", 22)
    await m.close()


async def test_stale_snapshot_and_errors_are_retried() -> None:
    rest, writes = FakeRest(), Writes()
    rest.queue("AAA", ServerError("boom", status=503), RateLimitedError("slow", retry_after_s=0.0, until_ms=0),
               snap(5), snap(12))
    m = manager(rest, writes, symbols=["AAA"])
    await m.on_diff("AAA", diff("AAA", 10, 12), 1)
    await writes.wait_for("AAA", 12)
    st = m.status()["AAA"]
    assert st["snapshots"] == 2 and st["stale_snapshots"] == 1 and st["last_error"] is None
    assert len(rest.calls) == 4
    await m.close()


async def test_last_error_is_reported_while_failing() -> None:
    rest, writes = FakeRest(), Writes()
    gate = asyncio.Event()
    rest.queue("AAA", ServerError("HTTP 503", status=503), gate, snap(1))
    m = manager(rest, writes, symbols=["AAA"])
    await m.on_diff("AAA", diff("AAA", 1, 1), 1)
    await rest.wait_calls(2)  # the first failed; the retry waits at the gate
    assert "ServerError" in m.status()["AAA"]["last_error"]
    gate.set()
    await writes.wait_for("AAA", 1)
    await m.close()


async def test_writes_are_throttled_but_latest_state_is_written() -> None:
    rest, writes = FakeRest(), Writes()
    rest.queue("AAA", snap(1))
    now = [100.0]
    m = manager(rest, writes, symbols=["AAA"], write_interval_s=60.0, clock=lambda: now[0])
    await m.on_diff("AAA", diff("AAA", 1, 1), 1)
    await writes.wait_for("AAA", 1)  # the first write goes out at once
    await m.on_diff("AAA", diff("AAA", 2, 2, b=[("1.1", "1")]), 2)
    await m.on_diff("AAA", diff("AAA", 3, 3, b=[("1.2", "1")]), 3)
    assert len(writes.values) == 1  # throttled
    await m.flush()
    assert len(writes.values) == 2 and writes.values[-1][1]["lastUpdateId"] == 3
    now[0] += 61.0
    await m.on_diff("AAA", diff("AAA", 4, 4), 4)  # interval passed: written at once
    assert writes.values[-1][1]["lastUpdateId"] == 4
    await m.on_diff("AAA", diff("AAA", 5, 5), 5)
    await m.close()  # close writes what is pending
    assert writes.values[-1][1]["lastUpdateId"] == 5 and m.status()["AAA"]["writes"] == 4


async def test_delayed_flush_writes_eventually() -> None:
    rest, writes = FakeRest(), Writes()
    rest.queue("AAA", snap(1))
    m = manager(rest, writes, symbols=["AAA"], write_interval_s=0.01)
    await m.on_diff("AAA", diff("AAA", 1, 1), 1)
    await writes.wait_for("AAA", 1)
    for i in range(2, 6):
        await m.on_diff("AAA", diff("AAA", i, i), i)
    await writes.wait_for("AAA", 5)  # the flush task writes the latest state
    await m.close()


async def test_sync_write_callback_top_n_and_write_errors() -> None:
    rest = FakeRest()
    rest.queue("AAA", snap(1, bids=[("1", "1"), ("2", "1"), ("3", "1")], asks=[]))
    got: list[bytes] = []
    fail = [True]

    def write(symbol: str, value: bytes) -> None:
        if orjson.loads(value)["state"] != "live":
            return
        if fail[0]:
            fail[0] = False
            raise ConnectionError("redis down")
        got.append(value)

    m = manager(rest, write, symbols=["AAA"], top_n=2)
    await m.on_diff("AAA", diff("AAA", 1, 1), 1)
    await asyncio.wait_for(m.wait_live("AAA"), TIMEOUT)
    assert got == []  # the first write failed
    await m.flush()  # the failed write is still pending
    assert orjson.loads(got[-1])["bids"] == [["3", "1"], ["2", "1"]]
    await m.close()


async def test_unknown_symbol_resync_remove_and_closed() -> None:
    rest, writes = FakeRest(), Writes()
    rest.queue("AAA", snap(1), snap(7))
    m = manager(rest, writes, symbols=["aaa"])
    assert m.symbols == ["AAA"]
    await m.on_diff("ZZZ", diff("ZZZ", 1, 1), 1)  # not configured: ignored
    assert rest.calls == [] and "ZZZ" not in m.status()
    await m.on_diff("AAA", diff("AAA", 1, 1), 1)
    await writes.wait_for("AAA", 1)
    await m.resync("AAA")
    assert m.status()["AAA"]["state"] == "syncing" and m.status()["AAA"]["resyncs"] == 1
    await m.on_diff("AAA", diff("AAA", 7, 8), 2)
    await writes.wait_for("AAA", 8)
    m.add_symbol("CCC")
    assert m.status()["CCC"]["state"] == "syncing"
    await m.remove_symbol("CCC")
    assert "CCC" not in m.status()
    await m.close()
    await m.on_diff("AAA", diff("AAA", 9, 9), 3)  # ignored after close
    assert m.status()["AAA"]["lastUpdateId"] == 8


async def test_close_cancels_pending_snapshot_fetch() -> None:
    rest, writes = FakeRest(), Writes()
    rest.queue("AAA", asyncio.Event(), snap(1))  # never released
    m = manager(rest, writes, symbols=["AAA"])
    await m.on_diff("AAA", diff("AAA", 1, 1), 1)
    await rest.wait_calls(1)
    await asyncio.wait_for(m.close(), TIMEOUT)
    assert writes.values == []


async def test_touch_moves_asof_of_a_quiet_live_book() -> None:
    rest, writes = FakeRest(), Writes()
    rest.queue("AAA", snap(1))
    m = manager(rest, writes, symbols=["AAA"])
    await m.touch("AAA", 50)  # syncing: nothing to publish
    assert writes.values == []
    await m.on_diff("AAA", diff("AAA", 1, 2), 100)
    await writes.wait_for("AAA", 2)
    await m.touch("AAA", 90)  # older than what the book holds: ignored
    await m.touch("AAA", 5000)
    assert [v["asof"] for _, v in writes.values] == [100, 5000]
    assert writes.values[-1][1]["lastUpdateId"] == 2
    await m.close()


def test_constructor_checks() -> None:
    with pytest.raises(ValueError):
        BookManager(FakeRest(), [], top_n=0, write=lambda s, v: None)
    with pytest.raises(ValueError):
        BookManager(FakeRest(), [], top_n=1, write=lambda s, v: None, retry_delays_s=())
