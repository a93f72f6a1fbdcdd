"""RestQueue: priority order, held-back requests keep their place, budget shares, errors and cancellation.
A fake REST client that records calls and answers from a script; no network, no sleeps as synchronisation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from binance_common.errors import IPBannedError, RateLimitedError, ServerError
from binance_streamd.restqueue import BUDGET_SHARE, Priority, RestQueue


async def until(cond: Any, timeout_s: float = 2.0) -> None:
    """Yield to the event loop until ``cond()`` holds, within a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not cond():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0)


class FakeRest:
    """Answers each call with the next scripted outcome (a value or an exception); records (path, params, share)."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, dict[str, Any], float]] = []
        self.kwargs: list[dict[str, Any]] = []
        self.gate: asyncio.Event | None = None

    async def get(self, path: str, params: dict[str, Any], **kw: Any) -> Any:
        self.calls.append((path, params, kw.get("budget_share", 1.0)))
        self.kwargs.append(kw)
        if self.gate is not None:
            await self.gate.wait()
        out = self.outcomes.pop(0) if self.outcomes else {"path": path}
        if isinstance(out, BaseException):
            raise out
        return out


def limited(wait_s: float, status: int | None = None) -> RateLimitedError:
    return RateLimitedError("held back", retry_after_s=wait_s, until_ms=0, status=status)


async def test_lower_priority_first_then_first_come() -> None:
    rest = FakeRest()
    rest.gate = asyncio.Event()
    q = RestQueue(rest, workers=1)
    first = asyncio.ensure_future(q.get(Priority.BACKGROUND, "/a", {}))  # taken at once by the only worker
    await until(lambda: len(rest.calls) == 1)
    later = [asyncio.ensure_future(q.get(p, f"/{p.name}{i}", {"i": i}))
             for i, p in enumerate([Priority.SNAPSHOT, Priority.BACKGROUND, Priority.SNAPSHOT, Priority.CATCHUP])]
    await until(lambda: sum(q.queued().values()) == 4)
    assert q.queued() == {"catchup": 1, "snapshot": 2, "background": 1}
    rest.gate.set()
    await asyncio.gather(first, *later)
    assert [c[0] for c in rest.calls] == ["/a", "/CATCHUP3", "/SNAPSHOT0", "/SNAPSHOT2", "/BACKGROUND1"]
    assert q.stats()["sent"] == {"catchup": 1, "snapshot": 2, "background": 2}
    assert q.stats()["queued"] == {"catchup": 0, "snapshot": 0, "background": 0} and q.in_flight == 0
    await q.close()


async def test_snapshots_and_background_draw_on_part_of_the_budget() -> None:
    rest = FakeRest()
    q = RestQueue(rest)
    await q.get(Priority.CATCHUP, "/c", {"x": 1})
    await q.get(Priority.SNAPSHOT, "/s", {})
    await q.get(Priority.BACKGROUND, "/b", {})
    assert [(p, s) for p, _, s in rest.calls] == [("/c", 1.0), ("/s", 0.7), ("/b", 0.7)]
    assert rest.calls[0][1] == {"x": 1}
    assert BUDGET_SHARE == {Priority.CATCHUP: 1.0, Priority.SNAPSHOT: 0.7, Priority.BACKGROUND: 0.7}
    await q.close()


async def test_a_request_held_back_by_its_share_keeps_its_place_while_a_catch_up_goes() -> None:
    rest = FakeRest(limited(30.0), {"ok": "catchup"})  # the snapshot's share is used up for 30 s
    q = RestQueue(rest, workers=1)
    snap = asyncio.ensure_future(q.get(Priority.SNAPSHOT, "/depth", {}))
    await until(lambda: q.held_back == 1)
    assert q.held_back == 1 and q.queued()["snapshot"] == 1
    blocked = q.stats()["blocked_for_s"]
    assert blocked["snapshot"] > 29 and blocked["background"] > 29 and blocked["catchup"] == 0
    assert await asyncio.wait_for(q.get(Priority.CATCHUP, "/aggTrades", {}), 2) == {"ok": "catchup"}
    assert not snap.done()
    snap.cancel()
    await q.close()


async def test_a_429_or_418_stops_every_priority() -> None:
    for err in (limited(30.0, status=429), IPBannedError("banned", retry_after_s=30.0, until_ms=0, status=418)):
        rest = FakeRest(err)
        q = RestQueue(rest, workers=1)
        snap = asyncio.ensure_future(q.get(Priority.SNAPSHOT, "/depth", {}))
        while q.held_back == 0:
            await asyncio.sleep(0)
        assert min(q.stats()["blocked_for_s"].values()) > 29
        catch = asyncio.ensure_future(q.get(Priority.CATCHUP, "/aggTrades", {}))
        await asyncio.sleep(0.05)  # a moment in which nothing may be sent
        assert len(rest.calls) == 1 and not catch.done()
        snap.cancel()
        catch.cancel()
        await q.close()


async def test_a_short_hold_retries_the_same_request() -> None:
    rest = FakeRest(limited(0.0), {"ok": 1})
    q = RestQueue(rest)
    assert await asyncio.wait_for(q.get(Priority.SNAPSHOT, "/depth", {"symbol": "X"}), 2) == {"ok": 1}
    assert [c[1] for c in rest.calls] == [{"symbol": "X"}, {"symbol": "X"}] and q.held_back == 1
    await q.close()


async def test_other_errors_reach_the_caller_and_the_queue_goes_on() -> None:
    rest = FakeRest(ServerError("503", status=503), {"ok": 2})
    q = RestQueue(rest)
    with pytest.raises(ServerError):
        await q.get(Priority.CATCHUP, "/x", {})
    assert await q.get(Priority.CATCHUP, "/y", {}) == {"ok": 2}
    assert q.stats()["sent"]["catchup"] == 1
    await q.close()


async def test_a_caller_that_gives_up_is_skipped_and_close_cancels_the_rest() -> None:
    rest = FakeRest()
    rest.gate = asyncio.Event()
    q = RestQueue(rest, workers=1)
    busy = asyncio.ensure_future(q.get(Priority.CATCHUP, "/busy", {}))
    await until(lambda: len(rest.calls) == 1)
    gone = asyncio.ensure_future(q.get(Priority.CATCHUP, "/gone", {}))
    kept = asyncio.ensure_future(q.get(Priority.SNAPSHOT, "/kept", {}))
    await until(lambda: sum(q.queued().values()) == 2)
    gone.cancel()
    rest.gate.set()
    await busy
    await kept
    assert [c[0] for c in rest.calls] == ["/busy", "/kept"]
    rest.gate = asyncio.Event()
    waiting = asyncio.ensure_future(q.get(Priority.SNAPSHOT, "/w1", {}))
    queued = asyncio.ensure_future(q.get(Priority.SNAPSHOT, "/w2", {}))
    await until(lambda: len(rest.calls) == 3)  # /w1 is in flight, /w2 queued behind it
    await q.close()
    await asyncio.gather(waiting, queued, return_exceptions=True)
    assert waiting.cancelled() and queued.cancelled()


def test_at_least_one_worker() -> None:
    with pytest.raises(ValueError, match="workers must be at least 1"):
        RestQueue(FakeRest(), workers=0)


async def test_stats_logging_and_exact_counts(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    rest = FakeRest(limited(0.0), limited(0.0), {"ok": 1})
    q = RestQueue(rest, workers=2)
    with caplog.at_level(logging.INFO, logger="binance_streamd.restqueue"):
        assert await asyncio.wait_for(q.get(Priority.CATCHUP, "/depth", {}), 0.9) == {"ok": 1}  # 2 x 0.05 s
    assert q.held_back == 2
    assert "REST /depth held back for 0.1 s (RateLimitedError)" in [r.getMessage() for r in caplog.records]
    assert rest.kwargs[0] == {"budget_share": 1.0}  # a catch-up draws on the whole budget
    st = q.stats()
    assert set(st) == {"queued", "sent", "held_back", "in_flight", "blocked_for_s"}
    assert st["held_back"] == 2 and st["in_flight"] == 0
    assert all(v == round(v, 1) for v in st["blocked_for_s"].values())
    rest.gate = asyncio.Event()
    a = asyncio.ensure_future(q.get(Priority.SNAPSHOT, "/a", {}))
    b = asyncio.ensure_future(q.get(Priority.SNAPSHOT, "/b", {}))
    while len(rest.calls) < 5:
        await asyncio.sleep(0)
    assert q.in_flight == 2 and rest.kwargs[-1] == {"budget_share": 0.7}
    rest.gate.set()
    await asyncio.gather(a, b)
    assert q.in_flight == 0
    await q.close()


async def test_close_without_start_and_the_refusal_text() -> None:
    q = RestQueue(FakeRest())
    await q.close()
    with pytest.raises(ValueError) as ei:
        RestQueue(FakeRest(), workers=0)
    assert str(ei.value) == "workers must be at least 1"
