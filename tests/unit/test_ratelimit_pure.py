"""The REST weight governor's logic without a Redis server: header parsing, the in-process budget, the error
it raises, and the ``acquire``/``observe`` loop driven by a fake store and a fake clock.

Two fakes stand in for Redis: ``DeadRedis`` fails every call (the governor falls back to its in-process
budget, the same rules as the shared one), and ``ScriptedStore`` answers each reserve script with a scripted
reply (the shared store saying banned / retry / full / admitted). The Redis and Lua paths themselves are
covered by tests/integration/test_ratelimit.py.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from binance_common import ratelimit
from binance_common.errors import InvalidParameterError, IPBannedError, RateLimitedError
from binance_common.keys import Keys
from binance_common.ratelimit import (
    BANNED,
    FULL,
    OK,
    RETRY,
    WINDOW_MS,
    LocalBudget,
    RedisGovernor,
    Reservation,
    _no_scripting,
    budget_of,
    retry_after_s,
    used_weight_header,
)

MINUTE = 28_333_334  # an epoch minute (November 2023)
T0 = MINUTE * 60.0  # its first second; every offset used below is exact in binary floating point
T0_MS = MINUTE * WINDOW_MS
NEXT_MS = T0_MS + WINDOW_MS
LOGGER = "binance_common.ratelimit"

FULL_MSG = (
    "the shared REST weight budget of this minute is used up ({used}/50 of Binance's 100 per minute, counted "
    "across every process on this IP); this request (weight {weight}) is held back to avoid a 429. The next "
    "minute starts in {wait} s. Live streams (subscribe_streams) cost no REST weight."
)


class Clock:
    """Seconds since the epoch, set by the test (and advanced by the fake sleep)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class _DeadPipe:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def get(self, key: str) -> _DeadPipe:
        return self

    async def execute(self) -> list[object]:
        raise self.error


class DeadRedis:
    """Every call fails, as when the Redis server is unreachable."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error if error is not None else RedisConnectionError("down")
        self.calls = 0

    async def eval(self, *args: object) -> object:
        self.calls += 1
        raise self.error

    def pipeline(self, transaction: bool = True) -> _DeadPipe:
        return _DeadPipe(self.error)


class ScriptedStore:
    """Answers each EVAL with the next reply, raising it when it is an exception; records each call's KEYS and
    ARGV (for the reserve script: now_ms, weight, budget, ttl). A call with no reply left fails the test."""

    def __init__(self, *replies: object) -> None:
        self.replies = list(replies)
        self.keys: list[tuple[object, ...]] = []
        self.argv: list[tuple[object, ...]] = []

    async def eval(self, script: str, numkeys: int, *args: object) -> object:
        assert self.replies, "the governor asked the store once more than expected"
        self.keys.append(tuple(args[:numkeys]))
        self.argv.append(tuple(args[numkeys:]))
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply


@pytest.fixture
def make_gov(settings_factory) -> Callable[..., RedisGovernor]:  # type: ignore[no-untyped-def]
    """A governor with budget 50 (limit 100, headroom 0.5); ``max_wait_s`` 0 unless given."""

    def make(store: object, clock: Clock, **kw: float) -> RedisGovernor:
        s = settings_factory(rest_max_weight_per_minute=100, rest_weight_headroom=0.5)
        kw.setdefault("max_wait_s", 0.0)
        return RedisGovernor(store, Keys("t"), s, clock=clock, **kw)  # type: ignore[arg-type]

    return make


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Replaces the governor's asyncio.sleep: records each wait and returns at once (no real sleeping)."""
    recorded: list[float] = []

    async def fake_sleep(s: float) -> None:
        recorded.append(s)

    monkeypatch.setattr(ratelimit, "asyncio", types.SimpleNamespace(sleep=fake_sleep))
    return recorded


def advancing_sleep(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> list[float]:
    """Like ``sleeps``, but each wait moves ``clock`` forward by its length."""
    recorded: list[float] = []

    async def fake_sleep(s: float) -> None:
        recorded.append(s)
        clock.t += s

    monkeypatch.setattr(ratelimit, "asyncio", types.SimpleNamespace(sleep=fake_sleep))
    return recorded


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


# --- pure helpers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("limit", "headroom", "budget"),
    [(100, 0.5, 50), (1200, 1.0, 1200), (7, 0.5, 3), (1, 0.5, 1), (3, 0.1, 1)],
)
def test_budget_of_is_the_limit_times_headroom_truncated_and_at_least_one(
    settings_factory, limit: int, headroom: float, budget: int  # type: ignore[no-untyped-def]
) -> None:
    s = settings_factory(rest_max_weight_per_minute=limit, rest_weight_headroom=headroom)
    assert budget_of(s) == budget


@pytest.mark.parametrize(
    ("headers", "used"),
    [
        ({"x-mbx-used-weight-1m": "17"}, 17),
        ({"X-MBX-USED-WEIGHT-1M": "23"}, 23),
        ({"x-mbx-used-weight-1m": "5", "X-MBX-USED-WEIGHT-1M": "9"}, 5),  # lower-case name wins
        ({"x-mbx-used-weight-1m": "", "X-MBX-USED-WEIGHT-1M": "9"}, 9),  # empty falls through
        ({"x-mbx-used-weight-1m": " 42 "}, 42),
        ({"x-mbx-used-weight-1m": "0"}, 0),
        ({"x-mbx-used-weight-1m": "4x"}, None),
        ({"x-mbx-used-weight-1m": "-3"}, None),
        ({"x-mbx-used-weight-1m": "1.5"}, None),
        ({"x-mbx-used-weight-1m": ""}, None),
        ({"x-mbx-used-weight": "12"}, None),
        ({}, None),
    ],
)
def test_used_weight_header(headers: dict[str, str], used: int | None) -> None:
    assert used_weight_header(headers) == used


@pytest.mark.parametrize(
    ("headers", "default", "seconds"),
    [
        ({"retry-after": "12"}, 60.0, 12.0),
        ({"Retry-After": "7"}, 60.0, 7.0),
        ({"retry-after": "5", "Retry-After": "9"}, 60.0, 5.0),  # lower-case name wins
        ({"retry-after": "", "Retry-After": "3"}, 60.0, 3.0),  # empty falls through
        ({"retry-after": "0.5"}, 60.0, 0.5),
        ({"retry-after": "0"}, 60.0, 0.0),
        ({"retry-after": "-4"}, 60.0, 0.0),  # never negative
        ({"retry-after": "soon"}, 60.0, 60.0),
        ({"retry-after": ""}, 45.0, 45.0),
        ({}, 30.0, 30.0),
    ],
)
def test_retry_after_s(headers: dict[str, str], default: float, seconds: float) -> None:
    got = retry_after_s(headers, default)
    assert got == seconds
    assert isinstance(got, float)


@pytest.mark.parametrize(
    ("message", "no_lua"),
    [
        ("unknown command 'eval', with args beginning with: ", True),
        ("ERR Unknown Command 'EVALSHA'", True),
        ("lupa module not installed", True),
        ("This Redis command is not allowed from Scripting", True),
        ("WRONGTYPE Operation against a key holding the wrong kind of value", False),
        ("ERR value is not an integer or out of range", False),
    ],
)
def test_no_scripting_recognises_a_server_without_lua(message: str, no_lua: bool) -> None:
    assert _no_scripting(ResponseError(message)) is no_lua


# --- LocalBudget -----------------------------------------------------------------------------------------
def test_local_budget_starts_empty_and_unblocked() -> None:
    lb = LocalBudget()
    assert (lb.weights, lb.ban_until, lb.retry_until) == ({}, 0, 0)
    assert lb.used(MINUTE) == 0
    assert lb.reserve(0, 1, 1) == Reservation(OK, 1)  # at time zero nothing blocks
    assert lb.used(0) == 1


def test_local_budget_admits_exactly_the_remaining_weight() -> None:
    lb = LocalBudget()
    now = T0_MS + 30_000
    assert lb.reserve(now, 30, 50) == Reservation(OK, 30)
    assert lb.reserve(now, 20, 50) == Reservation(OK, 50)
    assert lb.reserve(now, 1, 50) == Reservation(FULL, 50)
    assert lb.used(MINUTE) == 50  # the refused request counted nothing
    assert lb.reserve(NEXT_MS, 50, 50) == Reservation(OK, 50)  # the next minute has its own budget
    assert (lb.used(MINUTE), lb.used(MINUTE + 1)) == (50, 50)


def test_local_budget_counts_per_epoch_minute() -> None:
    lb = LocalBudget()
    lb.raise_used(MINUTE, 40)
    assert lb.reserve(T0_MS + 59_999, 11, 50) == Reservation(FULL, 40)
    assert lb.reserve(T0_MS + 30_000, 10, 50) == Reservation(OK, 50)


def test_local_budget_forgets_minutes_older_than_the_previous_one() -> None:
    lb = LocalBudget()
    lb.weights = {MINUTE - 2: 5, MINUTE - 1: 7}
    assert lb.reserve(T0_MS, 1, 50) == Reservation(OK, 1)
    assert lb.weights == {MINUTE - 1: 7, MINUTE: 1}


@pytest.mark.parametrize(("attr", "code"), [("ban_until", BANNED), ("retry_until", RETRY)])
def test_local_budget_deadline_blocks_until_it_is_reached(attr: str, code: int) -> None:
    lb = LocalBudget()
    setattr(lb, attr, T0_MS + 5_000)
    assert lb.reserve(T0_MS + 4_999, 1, 50) == Reservation(code, T0_MS + 5_000)
    assert lb.used(MINUTE) == 0  # a blocked request counts nothing
    assert lb.reserve(T0_MS + 5_000, 3, 50) == Reservation(OK, 3)  # the deadline itself is free


def test_local_budget_ban_takes_precedence_over_retry() -> None:
    lb = LocalBudget()
    lb.ban_until, lb.retry_until = T0_MS + 9_000, T0_MS + 4_000
    assert lb.reserve(T0_MS, 1, 50) == Reservation(BANNED, T0_MS + 9_000)
    assert lb.reserve(T0_MS + 8_000, 1, 50) == Reservation(BANNED, T0_MS + 9_000)


def test_local_budget_raise_used_never_lowers() -> None:
    lb = LocalBudget()
    lb.raise_used(MINUTE, 30)
    assert lb.used(MINUTE) == 30
    lb.raise_used(MINUTE, 10)
    assert lb.used(MINUTE) == 30
    lb.raise_used(MINUTE, 45)
    assert lb.used(MINUTE) == 45
    lb.raise_used(MINUTE + 1, 0)
    assert lb.weights == {MINUTE: 45, MINUTE + 1: 0}
    assert lb.used(MINUTE - 1) == 0


# --- the errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("until", "now", "wait", "shown"),
    [(10_000, 5_000, 5.0, "5"), (10_000, 9_600, 0.4, "0"), (10_000, 12_000, 0.0, "0")],
)
def test_banned_error(until: int, now: int, wait: float, shown: str) -> None:
    e = RedisGovernor._banned_error(until, now)
    assert isinstance(e, IPBannedError)
    assert (e.retry_after_s, e.until_ms, e.status, e.code) == (wait, until, 418, -1003)
    assert str(e) == (
        f"Binance has banned this IP (HTTP 418) for another {shown} s; no process on this machine sends REST "
        "requests until the ban ends (it grows with repeat offences, so nothing retries early). Live stream "
        "data (get_stream_latest, get_live_order_book) still works."
    )


@pytest.mark.parametrize(
    ("until", "now", "wait", "shown"),
    [(10_000, 3_000, 7.0, "7"), (10_000, 9_600, 0.4, "0"), (10_000, 12_000, 0.0, "0")],
)
def test_retry_error(until: int, now: int, wait: float, shown: str) -> None:
    e = RedisGovernor._retry_error(until, now)
    assert type(e) is RateLimitedError
    assert (e.retry_after_s, e.until_ms, e.status, e.code) == (wait, until, 429, -1003)
    assert str(e) == (
        f"Binance answered 429 (too much request weight) and asked every client on this IP to wait {shown} s "
        "more (Retry-After); the request was not sent, to avoid an IP ban."
    )


# --- acquire on the in-process fallback ------------------------------------------------------------------
def test_now_ms_is_local_time_plus_the_server_offset(make_gov) -> None:  # type: ignore[no-untyped-def]
    g = make_gov(DeadRedis(), Clock(1.5))
    assert g.now_ms() == 1_500
    g.clock_offset_ms = 250
    assert g.now_ms() == 1_750


async def test_a_fresh_governor_blocks_nothing_even_at_time_zero(make_gov) -> None:  # type: ignore[no-untyped-def]
    g = make_gov(DeadRedis(), Clock(0.0))
    await g.acquire(1)
    assert g.local.used(0) == 1


@pytest.mark.parametrize("error", [RedisConnectionError("down"), OSError("down")])
async def test_whole_and_exact_remaining_budget_are_admitted_then_full(make_gov, error) -> None:  # type: ignore[no-untyped-def]
    clock = Clock(T0 + 1.0)
    g = make_gov(DeadRedis(error), clock)
    await g.acquire(50)  # the whole budget in one request
    assert g.local.used(MINUTE) == 50
    clock.t += 60
    await g.acquire(30)
    await g.acquire(20)  # exactly what is left
    assert g.local.used(MINUTE + 1) == 50
    with pytest.raises(RateLimitedError) as ei:
        await g.acquire(1)
    e = ei.value
    assert type(e) is RateLimitedError
    assert (e.retry_after_s, e.until_ms, e.status) == (59.0, NEXT_MS + WINDOW_MS, None)
    assert str(e) == FULL_MSG.format(used=50, weight=1, wait="59.0")
    assert g.local.used(MINUTE + 1) == 50


async def test_full_error_says_when_the_next_minute_starts(make_gov) -> None:  # type: ignore[no-untyped-def]
    g = make_gov(DeadRedis(), Clock(T0 + 30.0))
    await g.acquire(45)
    with pytest.raises(RateLimitedError) as ei:
        await g.acquire(6)
    assert (ei.value.retry_after_s, ei.value.until_ms) == (30.0, NEXT_MS)
    assert str(ei.value) == FULL_MSG.format(used=45, weight=6, wait="30.0")
    await g.acquire(5)


async def test_heavier_than_the_whole_budget_is_invalid_and_costs_nothing(make_gov) -> None:  # type: ignore[no-untyped-def]
    g = make_gov(DeadRedis(), Clock(T0 + 1.0))
    with pytest.raises(InvalidParameterError) as ei:
        await g.acquire(51)
    assert str(ei.value) == (
        "this request weighs 51, more than the whole per-minute REST budget (50 = 100 x headroom 0.5), so it "
        "can never be sent; ask for less data (a smaller limit or fewer symbols) or raise "
        "BINANCE_MCP_REST_MAX_WEIGHT_PER_MINUTE"
    )
    assert g.local.used(MINUTE) == 0


async def test_share_caps_the_minute_at_a_fraction_of_the_budget(make_gov) -> None:  # type: ignore[no-untyped-def]
    g = make_gov(DeadRedis(), Clock(T0 + 1.0))
    await g.acquire(20, share=0.5)
    await g.acquire(5, share=0.5)  # exactly the share: 25 of 50
    with pytest.raises(RateLimitedError) as ei:
        await g.acquire(1, share=0.5)
    assert str(ei.value) == FULL_MSG.format(used=25, weight=1, wait="59.0")
    await g.acquire(25)  # the full budget (default share) still has room
    with pytest.raises(RateLimitedError):
        await g.acquire(1)
    assert g.local.used(MINUTE) == 50


async def test_a_tiny_share_still_admits_weight_one(make_gov) -> None:  # type: ignore[no-untyped-def]
    g = make_gov(DeadRedis(), Clock(T0 + 1.0))
    await g.acquire(1, share=0.01)  # 50 x 0.01 rounds down to 0, raised to 1
    with pytest.raises(RateLimitedError):
        await g.acquire(1, share=0.01)
    assert g.local.used(MINUTE) == 1


async def test_the_store_is_asked_with_now_weight_and_the_shared_budget(make_gov) -> None:  # type: ignore[no-untyped-def]
    store = ScriptedStore((OK, 7), (OK, 10))
    g = make_gov(store, Clock(T0 + 2.0))
    await g.acquire(7, share=0.7)
    await g.acquire(3)
    assert store.argv == [(T0_MS + 2_000, 7, 35, 2 * WINDOW_MS), (T0_MS + 2_000, 3, 50, 2 * WINDOW_MS)]


# --- acquire: deadlines from the shared store ------------------------------------------------------------
async def test_a_ban_in_the_store_raises_and_is_remembered(make_gov) -> None:  # type: ignore[no-untyped-def]
    clock = Clock(T0 + 10.0)
    until = T0_MS + 15_000
    store = ScriptedStore((BANNED, until), (OK, 1))
    g = make_gov(store, clock)
    with pytest.raises(IPBannedError) as ei:
        await g.acquire(1)
    assert (ei.value.retry_after_s, ei.value.until_ms, ei.value.status) == (5.0, until, 418)
    assert "for another 5 s" in str(ei.value)
    clock.t += 3.0  # remembered: refused without asking the store
    with pytest.raises(IPBannedError) as ei:
        await g.acquire(1)
    assert (ei.value.retry_after_s, ei.value.until_ms, ei.value.status) == (2.0, until, 418)
    assert len(store.argv) == 1
    clock.t += 2.0  # the deadline itself: sent again
    await g.acquire(1)
    assert len(store.argv) == 2


async def test_a_retry_deadline_in_the_store_raises_and_is_remembered(make_gov) -> None:  # type: ignore[no-untyped-def]
    clock = Clock(T0 + 10.0)
    until = T0_MS + 17_000
    store = ScriptedStore((RETRY, until), (OK, 1))
    g = make_gov(store, clock)
    with pytest.raises(RateLimitedError) as ei:
        await g.acquire(1)
    assert type(ei.value) is RateLimitedError
    assert (ei.value.retry_after_s, ei.value.until_ms, ei.value.status) == (7.0, until, 429)
    assert "wait 7 s more" in str(ei.value)
    clock.t += 6.0
    with pytest.raises(RateLimitedError) as ei:
        await g.acquire(1)
    assert type(ei.value) is RateLimitedError
    assert (ei.value.retry_after_s, ei.value.until_ms, ei.value.status) == (1.0, until, 429)
    assert len(store.argv) == 1
    clock.t += 1.0
    await g.acquire(1)
    assert len(store.argv) == 2


# --- acquire: waiting for the next minute ----------------------------------------------------------------
async def test_waits_once_when_the_next_minute_is_exactly_max_wait_away(make_gov, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    clock = Clock(T0 + 59.0)
    sleeps = advancing_sleep(monkeypatch, clock)
    store = ScriptedStore((FULL, 50), (OK, 5))
    g = make_gov(store, clock, max_wait_s=1.0)
    await g.acquire(5)
    assert sleeps == [pytest.approx(1.01, abs=1e-9)]
    first, second = (a[0] for a in store.argv)
    assert first == T0_MS + 59_000
    assert NEXT_MS + 9 <= second <= NEXT_MS + 10  # asked again, in the new minute


async def test_does_not_wait_when_the_next_minute_is_further_than_max_wait(make_gov, sleeps) -> None:  # type: ignore[no-untyped-def]
    g = make_gov(ScriptedStore((FULL, 48)), Clock(T0 + 58.5), max_wait_s=1.499)
    with pytest.raises(RateLimitedError) as ei:
        await g.acquire(5)
    assert sleeps == []
    assert (ei.value.retry_after_s, ei.value.until_ms, ei.value.status) == (1.5, NEXT_MS, None)
    assert str(ei.value) == FULL_MSG.format(used=48, weight=5, wait="1.5")


async def test_waits_only_once_then_raises(make_gov, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    clock = Clock(T0 + 59.0)
    sleeps = advancing_sleep(monkeypatch, clock)
    store = ScriptedStore((FULL, 50), (FULL, 49))  # another process filled the new minute at once
    g = make_gov(store, clock, max_wait_s=60.0)
    with pytest.raises(RateLimitedError) as ei:
        await g.acquire(5)
    assert sleeps == [pytest.approx(1.01, abs=1e-9)]
    assert ei.value.until_ms == NEXT_MS + WINDOW_MS
    assert ei.value.retry_after_s == pytest.approx(59.99, abs=0.002)
    assert str(ei.value) == FULL_MSG.format(used=49, weight=5, wait="60.0")


async def test_waits_only_once_even_when_the_clock_did_not_move(make_gov, sleeps) -> None:  # type: ignore[no-untyped-def]
    store = ScriptedStore((FULL, 50), (FULL, 50))
    g = make_gov(store, Clock(T0 + 59.5), max_wait_s=1.0)
    with pytest.raises(RateLimitedError) as ei:
        await g.acquire(5)
    assert sleeps == [pytest.approx(0.51, abs=1e-9)]
    assert (ei.value.retry_after_s, ei.value.until_ms) == (0.5, NEXT_MS)


@pytest.mark.parametrize(("offset_s", "waits"), [(58.0, True), (57.5, False)])
async def test_default_max_wait_is_two_seconds(settings_factory, sleeps, offset_s: float, waits: bool) -> None:  # type: ignore[no-untyped-def]
    s = settings_factory(rest_max_weight_per_minute=100, rest_weight_headroom=0.5)
    store = ScriptedStore((FULL, 50), (OK, 5))
    g = RedisGovernor(store, Keys("t"), s, clock=Clock(T0 + offset_s))  # type: ignore[arg-type]
    if waits:
        await g.acquire(5)
        assert sleeps == [pytest.approx(2.01, abs=1e-9)]
    else:
        with pytest.raises(RateLimitedError) as ei:
            await g.acquire(5)
        assert sleeps == []
        assert ei.value.retry_after_s == 2.5


# --- falling back when Redis is down ---------------------------------------------------------------------
async def test_redis_down_is_logged_once_per_outage(make_gov, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, logger=LOGGER)
    down = RedisConnectionError("connection refused")
    store = ScriptedStore(down, down, (OK, 3), OSError("no route"), (OK, 4))
    g = make_gov(store, Clock(T0 + 1.0))
    for _ in range(5):
        await g.acquire(1)
    assert warnings_of(caplog) == [
        "rate-limit store unreachable (connection refused); using this process's own budget",
        "rate-limit store unreachable (no route); using this process's own budget",
    ]
    assert g.local.used(MINUTE) == 3  # the three requests the store did not see


# --- observe ---------------------------------------------------------------------------------------------
async def test_observe_418_bans_for_retry_after(make_gov, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, logger=LOGGER)
    clock = Clock(T0 + 30.0)
    g = make_gov(DeadRedis(), clock)
    await g.observe(418, {"retry-after": "30"}, 1)
    until = T0_MS + 60_000
    assert warnings_of(caplog)[0] == f"Binance banned this IP (HTTP 418) until {until}; every process stops REST calls"
    state = await g.state()
    assert (state["ban_until_ms"], state["retry_until_ms"]) == (until, 0)
    clock.t += 29.0
    with pytest.raises(IPBannedError) as ei:
        await g.acquire(1)
    assert (ei.value.until_ms, ei.value.retry_after_s) == (until, 1.0)
    clock.t += 1.0
    await g.acquire(1)


async def test_observe_429_holds_for_retry_after(make_gov, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, logger=LOGGER)
    clock = Clock(T0 + 30.0)
    g = make_gov(DeadRedis(), clock)
    await g.observe(429, {"Retry-After": "7"}, 1)
    until = T0_MS + 37_000
    assert warnings_of(caplog)[0] == f"Binance answered 429; every process holds REST calls until {until}"
    state = await g.state()
    assert (state["ban_until_ms"], state["retry_until_ms"]) == (0, until)
    with pytest.raises(RateLimitedError) as ei:
        await g.acquire(1)
    assert type(ei.value) is RateLimitedError
    assert (ei.value.until_ms, ei.value.retry_after_s, ei.value.status) == (until, 7.0, 429)
    clock.t += 7.0
    await g.acquire(1)


@pytest.mark.parametrize(("status", "seconds"), [(418, 120), (429, 60)])
async def test_observe_without_retry_after_uses_the_default(make_gov, status: int, seconds: int) -> None:  # type: ignore[no-untyped-def]
    g = make_gov(DeadRedis(), Clock(T0 + 30.0))
    await g.observe(status, {}, 1)
    state = await g.state()
    key = "ban_until_ms" if status == 418 else "retry_until_ms"
    assert state[key] == T0_MS + 30_000 + seconds * 1000
    assert g.local.used(MINUTE) == 0


async def test_observe_keeps_the_later_ban(make_gov) -> None:  # type: ignore[no-untyped-def]
    clock = Clock(T0 + 30.0)
    g = make_gov(DeadRedis(), clock)
    await g.observe(418, {"retry-after": "120"}, 1)
    await g.observe(418, {"retry-after": "5"}, 1)
    clock.t += 60.0
    with pytest.raises(IPBannedError) as ei:
        await g.acquire(1)
    assert ei.value.until_ms == T0_MS + 150_000


@pytest.mark.parametrize("status", [200, 400, 500])
async def test_observe_other_statuses_set_no_deadline(make_gov, status: int) -> None:  # type: ignore[no-untyped-def]
    g = make_gov(DeadRedis(), Clock(T0 + 30.0))
    await g.observe(status, {"retry-after": "30"}, 1)
    state = await g.state()
    assert (state["ban_until_ms"], state["retry_until_ms"], state["used"]) == (0, 0, 0)
    await g.acquire(50)


async def test_used_weight_header_raises_the_minute_from_its_first_full_second(make_gov) -> None:  # type: ignore[no-untyped-def]
    g = make_gov(DeadRedis(), Clock(T0 + 1.0))
    await g.observe(200, {"x-mbx-used-weight-1m": "45"}, 1)
    assert g.local.used(MINUTE) == 45
    with pytest.raises(RateLimitedError) as ei:
        await g.acquire(6)
    assert str(ei.value) == FULL_MSG.format(used=45, weight=6, wait="59.0")
    await g.acquire(5)


async def test_used_weight_header_is_ignored_in_the_grace_second(make_gov) -> None:  # type: ignore[no-untyped-def]
    g = make_gov(DeadRedis(), Clock(T0 + 0.5))
    await g.observe(200, {"x-mbx-used-weight-1m": "45"}, 1)
    assert g.local.weights == {}
    await g.acquire(50)


async def test_observe_tells_the_shared_store(make_gov) -> None:  # type: ignore[no-untyped-def]
    store = ScriptedStore(0, 0, 0)
    g = make_gov(store, Clock(T0 + 30.0))
    await g.observe(429, {"retry-after": "7", "x-mbx-used-weight-1m": "12"}, 1)
    await g.observe(418, {"retry-after": "9"}, 1)
    k = Keys("t")
    assert store.keys == [(k.rl_retry_until,), (k.rl_weight(MINUTE),), (k.rl_ban_until,)]
    # deadlines expire 5 s after they pass; the used weight lives two windows
    assert store.argv == [(T0_MS + 37_000, 12_000), (12, 2 * WINDOW_MS), (T0_MS + 39_000, 14_000)]
