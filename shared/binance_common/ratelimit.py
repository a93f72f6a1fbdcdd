"""The REST weight budget shared by every process on this machine's IP, kept in Redis.

Binance limits REST calls per IP (``REQUEST_WEIGHT``, e.g. 6000 per minute), not per process, so every
replica of binance-mcp and the daemon's snapshot/backfill calls must draw on one budget. The design:

* **Reserve before sending.** :meth:`RedisGovernor.acquire` adds the request's weight to the counter of the
  current epoch minute (``rl:weight:<minute>``) only if the sum stays within
  ``budget = rest_max_weight_per_minute * rest_weight_headroom``. With Lua (real Redis, or fakeredis with
  ``lupa``) one script checks and adds atomically; without Lua it is ``INCRBY`` then check, rolling back with
  ``DECRBY`` on overflow, which can refuse a request spuriously under contention but never lets the sum of
  admitted weights pass the budget.
* **Learn from Binance.** :meth:`observe` raises the minute's counter to ``X-MBX-USED-WEIGHT-1M`` when Binance
  counted more than we reserved (other software on the same IP), so the governor holds back before Binance
  would refuse.
* **Stop everyone on 429/418.** A 429 stores ``rl:retry_until`` (now + ``Retry-After``), a 418 stores
  ``rl:ban_until``; every process checks both before each request, so after a ban no replica sends anything
  until it ends. Both keys expire when their time is up.
* **Say when.** A request that cannot be sent raises :class:`~binance_common.errors.RateLimitedError` (or
  :class:`~binance_common.errors.IPBannedError`) with ``retry_after_s`` and ``until_ms``. When the next minute
  starts within ``max_wait_s`` the call waits for it instead.
* **Degrade, do not fail.** If Redis is unreachable the governor falls back to an in-process budget (same
  rules, this process only) and logs it, so REST tools keep working.

It also stores the Binance server clock offset (``rl:clock_offset``) for signed requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from .errors import InvalidParameterError, IPBannedError, RateLimitedError, retry_after_s
from .keys import Keys
from .settings import Settings

log = logging.getLogger(__name__)

WINDOW_MS = 60_000
WEIGHT_KEY_TTL_MS = 2 * WINDOW_MS
HEADER_SYNC_GRACE_MS = 1_000
"""Ignore ``X-MBX-USED-WEIGHT-1M`` this close after a minute boundary (it may count the previous minute)."""
DEFAULT_RETRY_AFTER_429_S = 60.0
DEFAULT_RETRY_AFTER_418_S = 120.0

# KEYS: ban_until, retry_until, weight(minute). ARGV: now_ms, weight, budget, ttl_ms.
# Returns {code, value}: 0 admitted (value = used after), 1 banned (until), 2 retry (until), 3 full (used).
_RESERVE_LUA = """
local now = tonumber(ARGV[1])
local w = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local ban = tonumber(redis.call('GET', KEYS[1]) or '0')
if ban > now then return {1, ban} end
local retry = tonumber(redis.call('GET', KEYS[2]) or '0')
if retry > now then return {2, retry} end
local used = tonumber(redis.call('GET', KEYS[3]) or '0')
if used + w > budget then return {3, used} end
used = redis.call('INCRBY', KEYS[3], w)
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return {0, used}
"""

# KEYS: one counter or deadline. ARGV: value, ttl_ms. Keep the larger of the stored and the given value (a
# weight counter is raised to Binance's figure, never lowered; a ban or retry deadline is extended, never
# shortened); the key expires ttl_ms after a write (relative TTL, so Redis's own clock does not matter).
_KEEP_MAX_LUA = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local v = tonumber(ARGV[1])
if v > cur then
  redis.call('SET', KEYS[1], v, 'PX', ARGV[2])
  return v
end
return cur
"""
EXPIRY_SLACK_MS = 5_000

OK, BANNED, RETRY, FULL = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Reservation:
    """Outcome of one reserve attempt: ``code`` is OK, BANNED, RETRY or FULL; ``value`` is the minute's used
    weight (OK, FULL) or the deadline in ms (BANNED, RETRY)."""

    code: int
    value: int


def budget_of(settings: Settings) -> int:
    """The weight this IP's processes may use per minute: the limit times the headroom, at least 1."""
    return max(1, int(settings.rest_max_weight_per_minute * settings.rest_weight_headroom))


def used_weight_header(headers: Mapping[str, str]) -> int | None:
    """``X-MBX-USED-WEIGHT-1M`` as an int, or None when absent or malformed."""
    v = headers.get("x-mbx-used-weight-1m") or headers.get("X-MBX-USED-WEIGHT-1M")
    if v is None:
        return None
    v = v.strip()
    return int(v) if v.isdigit() else None


class LocalBudget:
    """The same rules as :class:`RedisGovernor`, in this process only (fallback, and unit-test reference)."""

    def __init__(self) -> None:
        self.weights: dict[int, int] = {}
        self.ban_until = 0
        self.retry_until = 0

    def reserve(self, now_ms: int, weight: int, budget: int) -> Reservation:
        if self.ban_until > now_ms:
            return Reservation(BANNED, self.ban_until)
        if self.retry_until > now_ms:
            return Reservation(RETRY, self.retry_until)
        minute = now_ms // WINDOW_MS
        for m in [m for m in self.weights if m < minute - 1]:
            del self.weights[m]
        used = self.weights.get(minute, 0)
        if used + weight > budget:
            return Reservation(FULL, used)
        self.weights[minute] = used + weight
        return Reservation(OK, used + weight)

    def raise_used(self, minute: int, used: int) -> None:
        self.weights[minute] = max(self.weights.get(minute, 0), used)

    def used(self, minute: int) -> int:
        return self.weights.get(minute, 0)


class RedisGovernor:
    """Shared REST weight budget (implements :class:`binance_common.rest.Governor`).

    ``max_wait_s``: when the budget of the current minute is used up and the next minute starts within this
    many seconds, :meth:`acquire` sleeps until then instead of raising (0 = never wait).
    ``clock``: seconds since the epoch (tests inject a fake clock).
    ``limit``: the per-minute weight limit when it is not spot's (the futures API: ``keys.scoped("fapi:")``).
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        settings: Settings,
        *,
        max_wait_s: float = 2.0,
        clock: Callable[[], float] = time.time,
        limit: int | None = None,
    ) -> None:
        self.r = redis
        self.keys = keys
        self.settings = settings
        self.limit = limit or settings.rest_max_weight_per_minute
        self.budget = max(1, int(self.limit * settings.rest_weight_headroom)) if limit else budget_of(settings)
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.clock_offset_ms = 0
        self.lua: bool | None = None  # None: not probed yet
        self.local = LocalBudget()
        self._redis_down_logged = False
        # deadlines seen by this process, so a banned process does not even ask Redis
        self._ban_until = 0
        self._retry_until = 0

    # --- time ----------------------------------------------------------------------------------------
    def now_ms(self) -> int:
        """Binance's clock as best known: local time plus the measured server offset."""
        return int(self.clock() * 1000) + self.clock_offset_ms

    # --- the Governor protocol -----------------------------------------------------------------------
    async def acquire(self, weight: int, share: float = 1.0) -> None:
        """Reserve ``weight`` in this minute's shared budget, or raise RateLimitedError saying when to retry.

        ``share`` < 1 admits the request only while the minute's use stays within that fraction of the
        budget, keeping the rest for more urgent work (the daemon's snapshots leave room for catch-ups)."""
        # a request heavier than its share may still use the whole budget: it must never wait forever
        budget = min(self.budget, max(weight, int(self.budget * share)))
        if weight > self.budget:
            raise InvalidParameterError(
                f"this request weighs {weight}, more than the whole per-minute REST budget ({self.budget} = "
                f"{self.limit} x headroom {self.settings.rest_weight_headroom}), so it can never be sent; ask "
                "for less data (a smaller limit or fewer symbols) or raise BINANCE_MCP_REST_MAX_WEIGHT_PER_MINUTE"
            )
        waited = False
        while True:
            now = self.now_ms()
            self._raise_if_blocked_locally(now)
            res = await self._reserve(now, weight, budget)
            if res.code == OK:
                return
            if res.code == BANNED:
                self._ban_until = max(self._ban_until, res.value)
                raise self._banned_error(res.value, now)
            if res.code == RETRY:
                self._retry_until = max(self._retry_until, res.value)
                raise self._retry_error(res.value, now)
            next_window = (now // WINDOW_MS + 1) * WINDOW_MS
            wait_ms = next_window - now
            if not waited and wait_ms <= self.max_wait_s * 1000:
                waited = True
                await asyncio.sleep(wait_ms / 1000 + 0.01)
                continue
            raise RateLimitedError(
                f"the shared REST weight budget of this minute is used up ({res.value}/{self.budget} of "
                f"Binance's {self.limit} per minute, counted across every process on this IP); this request "
                f"(weight {weight}) is held back to avoid a 429. The next minute starts in "
                f"{wait_ms / 1000:.1f} s. Live streams (subscribe_streams) cost no REST weight.",
                retry_after_s=wait_ms / 1000,
                until_ms=next_window,
                status=None,
            )

    async def observe(self, status: int, headers: Mapping[str, str], weight: int) -> None:
        """Learn from one response: used weight, and 429/418 deadlines shared with every process."""
        now = self.now_ms()
        if status == 418:
            until = now + int(retry_after_s(headers, DEFAULT_RETRY_AFTER_418_S) * 1000)
            self._ban_until = max(self._ban_until, until)
            log.warning("Binance banned this IP (HTTP 418) until %d; every process stops REST calls", until)
            await self._extend(self.keys.rl_ban_until, until)
        elif status == 429:
            until = now + int(retry_after_s(headers, DEFAULT_RETRY_AFTER_429_S) * 1000)
            self._retry_until = max(self._retry_until, until)
            log.warning("Binance answered 429; every process holds REST calls until %d", until)
            await self._extend(self.keys.rl_retry_until, until)
        used = used_weight_header(headers)
        if used is not None and now % WINDOW_MS >= HEADER_SYNC_GRACE_MS:
            await self._raise_used(now // WINDOW_MS, used)

    # --- clock offset (for signed requests) ----------------------------------------------------------
    async def record_clock_offset(self, offset_ms: int) -> None:
        """Store Binance server time minus local time (ms), measured by ``BinanceRest.server_time_ms``."""
        self.clock_offset_ms = int(offset_ms)
        try:
            await self.r.set(self.keys.rl_clock_offset, str(int(offset_ms)))
        except (RedisError, OSError) as e:
            self._redis_down(e)

    async def load_clock_offset(self) -> int | None:
        """The offset another process measured, if any (and adopt it)."""
        try:
            v = await self.r.get(self.keys.rl_clock_offset)
        except (RedisError, OSError) as e:
            self._redis_down(e)
            return None
        if v is None:
            return None
        self.clock_offset_ms = int(v)
        return self.clock_offset_ms

    # --- introspection -------------------------------------------------------------------------------
    async def state(self) -> dict[str, int]:
        """Used weight this minute, budget, limit, ban/retry deadlines (ms, 0 when none)."""
        now = self.now_ms()
        try:
            pipe = self.r.pipeline(transaction=False)
            pipe.get(self.keys.rl_weight(now // WINDOW_MS))
            pipe.get(self.keys.rl_ban_until)
            pipe.get(self.keys.rl_retry_until)
            used, ban, retry = await pipe.execute()
        except (RedisError, OSError):
            used, ban, retry = self.local.used(now // WINDOW_MS), self.local.ban_until, self.local.retry_until
        return {
            "used": int(used or 0),
            "budget": self.budget,
            "limit": self.limit,
            "ban_until_ms": int(ban or 0),
            "retry_until_ms": int(retry or 0),
        }

    # --- internals -----------------------------------------------------------------------------------
    def _raise_if_blocked_locally(self, now: int) -> None:
        if self._ban_until > now:
            raise self._banned_error(self._ban_until, now)
        if self._retry_until > now:
            raise self._retry_error(self._retry_until, now)

    @staticmethod
    def _banned_error(until: int, now: int) -> IPBannedError:
        wait = max(0.0, (until - now) / 1000)
        return IPBannedError(
            f"Binance has banned this IP (HTTP 418) for another {wait:.0f} s; no process on this machine "
            "sends REST requests until the ban ends (it grows with repeat offences, so nothing retries early). "
            "Live stream data (get_stream_latest, get_live_order_book) still works.",
            retry_after_s=wait,
            until_ms=until,
            status=418,
        )

    @staticmethod
    def _retry_error(until: int, now: int) -> RateLimitedError:
        wait = max(0.0, (until - now) / 1000)
        return RateLimitedError(
            f"Binance answered 429 (too much request weight) and asked every client on this IP to wait "
            f"{wait:.0f} s more (Retry-After); the request was not sent, to avoid an IP ban.",
            retry_after_s=wait,
            until_ms=until,
            status=429,
        )

    def _redis_down(self, e: BaseException) -> None:
        if not self._redis_down_logged:
            log.warning("rate-limit store unreachable (%s); using this process's own budget", e)
            self._redis_down_logged = True

    async def _reserve(self, now: int, weight: int, budget: int) -> Reservation:
        try:
            res = await self._reserve_redis(now, weight, budget)
        except (RedisError, OSError) as e:
            self._redis_down(e)
            return self.local.reserve(now, weight, budget)
        self._redis_down_logged = False
        return res

    async def _reserve_redis(self, now: int, weight: int, budget: int) -> Reservation:
        k_ban, k_retry, k_w = self.keys.rl_ban_until, self.keys.rl_retry_until, self.keys.rl_weight(now // WINDOW_MS)
        if self.lua is not False:
            try:
                code, value = await self.r.eval(  # type: ignore[misc]
                    _RESERVE_LUA, 3, k_ban, k_retry, k_w, now, weight, budget, WEIGHT_KEY_TTL_MS
                )
                self.lua = True
                return Reservation(int(code), int(value))
            except ResponseError as e:
                if not _no_scripting(e):
                    raise
                self.lua = False
        pipe = self.r.pipeline(transaction=True)
        pipe.get(k_ban)
        pipe.get(k_retry)
        pipe.incrby(k_w, weight)
        pipe.pexpire(k_w, WEIGHT_KEY_TTL_MS)
        ban, retry, used, _ = await pipe.execute()
        ban_i, retry_i, used_i = int(ban or 0), int(retry or 0), int(used)
        if ban_i > now or retry_i > now or used_i > budget:
            await self.r.decrby(k_w, weight)
            if ban_i > now:
                return Reservation(BANNED, ban_i)
            if retry_i > now:
                return Reservation(RETRY, retry_i)
            return Reservation(FULL, used_i - weight)
        return Reservation(OK, used_i)

    async def _raise_used(self, minute: int, used: int) -> None:
        self.local.raise_used(minute, used)
        key = self.keys.rl_weight(minute)
        try:
            if self.lua is not False:
                try:
                    await self.r.eval(_KEEP_MAX_LUA, 1, key, used, WEIGHT_KEY_TTL_MS)  # type: ignore[misc]
                    return
                except ResponseError as e:
                    if not _no_scripting(e):
                        raise
                    self.lua = False
            cur = int(await self.r.get(key) or 0)
            if used > cur:  # a concurrent reservation may add on top: conservative, never under-counts
                pipe = self.r.pipeline(transaction=True)
                pipe.incrby(key, used - cur)
                pipe.pexpire(key, WEIGHT_KEY_TTL_MS)
                await pipe.execute()
        except (RedisError, OSError) as e:
            self._redis_down(e)

    async def _extend(self, key: str, until: int) -> None:
        ttl = max(1, until - self.now_ms()) + EXPIRY_SLACK_MS
        if key == self.keys.rl_ban_until:
            self.local.ban_until = max(self.local.ban_until, until)
        else:
            self.local.retry_until = max(self.local.retry_until, until)
        try:
            if self.lua is not False:
                try:
                    await self.r.eval(_KEEP_MAX_LUA, 1, key, until, ttl)  # type: ignore[misc]
                    return
                except ResponseError as e:
                    if not _no_scripting(e):
                        raise
                    self.lua = False
            cur = int(await self.r.get(key) or 0)
            if until > cur:
                await self.r.set(key, str(until), px=ttl)
        except (RedisError, OSError) as e:
            self._redis_down(e)


def _no_scripting(e: ResponseError) -> bool:
    """True when the server has no Lua (fakeredis without ``lupa``)."""
    msg = str(e).lower()
    return "unknown command" in msg or "lupa" in msg or "scripting" in msg
