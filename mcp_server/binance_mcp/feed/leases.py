"""Subscription leases: how MCP replicas tell the daemon which streams are wanted, and for how long.

A lease is a member ``"<stream> <holder>"`` of the ``leases`` ZSET scored with its expiry (ms). The daemon
subscribes to every stream with an unexpired lease (plus its always-on list) and unsubscribes a stream once
no lease holds it (after its grace period). Replicas only ever write leases; ``control`` gets ``reconcile``
after every change so the daemon acts at once instead of at its next poll.

Holders and scopes (see :func:`holder_for`):

* **process** (stdio): holder = the replica id. One stdio process serves one client, so its leases live as
  long as the process: renewed by it, removed on clean exit, lapsing one TTL after a crash.
* **session** (a stateful HTTP session, a legacy SSE connection): ``<replica>~s<id>``, removed when the
  session closes. Resource subscriptions (``resources/subscribe``, ``subscriptions/listen``) take their own
  holders (``~r<id>``, ``~l<id>``) so releasing one never drops what a tool subscribed.
* **pool** (stateless HTTP, and every 2026-07-28 HTTP request): there is no client identity and any replica
  may serve the next request, so these leases belong to the replica pool: holder ``http-pool``, renewed by
  every live HTTP replica (``ZADD XX``: a lease another replica released is never resurrected), released by
  an unsubscribe on any replica. Killing or restarting one replica loses nothing.

Renewal runs every ``lease_ttl_s / 3``; one missed renewal (a Redis blip) does not drop anything.

Redis losing its data (a restart without persistence) must not unsubscribe anything: every replica keeps the
leases it renews in memory (the pool's too, as last seen) and checks the ``leases:epoch`` sentinel every
``CHECK_EVERY_S``; when the sentinel is gone it re-creates all of them at once (plain ``ZADD``, pool leases
included), well inside the daemon's unsubscribe grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import redis.asyncio as aioredis
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from binance_common.keys import CONTROL_RECONCILE, Keys
from binance_common.timeutil import now_ms

from ..aio import cancel_and_wait
from ..sdk_adapter import session_connection

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

log = logging.getLogger(__name__)

Scope = Literal["process", "session", "pool"]
POOL_HOLDER = "http-pool"
CHECK_EVERY_S = 2.0
_SESSION_STATE_KEY = "binance_mcp.lease_holder"


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class LeaseKeeper:
    """Writes, renews and releases the leases of one replica."""

    def __init__(self, keys: Keys, ttl_s: float, *, renew_pool: bool = False) -> None:
        self.keys = keys
        self.ttl_ms = int(ttl_s * 1000)
        self.renew_pool = renew_pool
        self.held: dict[str, set[str]] = {}  # holder -> streams, for holders this process renews
        self._redis: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.renewals = 0
        self.reassertions = 0  # times Redis had lost the leases and this replica wrote them again

    @property
    def interval_s(self) -> float:
        return max(0.2, self.ttl_ms / 3000)

    @property
    def r(self) -> aioredis.Redis:
        assert self._redis is not None, "LeaseKeeper.start() was not awaited"
        return self._redis

    async def start(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        if self._task is None:
            self._task = asyncio.create_task(self._renew_loop(), name="binance-mcp-lease-keeper")

    async def stop(self, *, release: bool = True) -> None:
        """Stop renewing; with ``release`` remove this process's own leases (never the pool's)."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if release and self._redis is not None and self.held:
            try:
                for holder in [h for h in self.held if h != POOL_HOLDER]:
                    await self.release(holder)
            except (aioredis.RedisError, OSError) as e:  # shutting down: the leases lapse on their own
                log.warning("could not release leases on shutdown (%s); they lapse after %d ms", e, self.ttl_ms)

    # --- writes ----------------------------------------------------------------------------------
    async def acquire(self, holder: str, streams: Iterable[str]) -> int:
        """Lease ``streams`` for ``holder`` (renewed by this process); returns the expiry, ms."""
        streams = list(dict.fromkeys(streams))
        expiry = now_ms() + self.ttl_ms
        if not streams:
            return expiry
        members = {Keys.lease_member(s, holder): expiry for s in streams}
        pipe = self.r.pipeline(transaction=False)
        pipe.zadd(self.keys.leases, members)
        pipe.publish(self.keys.control_channel, CONTROL_RECONCILE)
        await pipe.execute()
        if holder != POOL_HOLDER or self.renew_pool:
            self.held.setdefault(holder, set()).update(streams)
        with contextlib.suppress(aioredis.RedisError, OSError):
            await self.r.set(self.keys.leases_epoch, "1", nx=True)
        return expiry

    async def release(self, holder: str, streams: Iterable[str] | None = None) -> list[str]:
        """Remove ``holder``'s leases on ``streams`` (all of them when None); returns the streams removed."""
        if streams is None:
            if holder in self.held and holder != POOL_HOLDER:
                wanted = sorted(self.held[holder])
            else:
                wanted = [st for st, h in await self._members() if h == holder]
        else:
            wanted = list(dict.fromkeys(streams))
        local = self.held.get(holder)
        if local is not None:
            local.difference_update(wanted)
            if not local or streams is None:
                self.held.pop(holder, None)
        if not wanted:
            return []
        pipe = self.r.pipeline(transaction=False)
        for s in wanted:
            pipe.zrem(self.keys.leases, Keys.lease_member(s, holder))
        removed = await pipe.execute()
        released = [s for s, n in zip(wanted, removed, strict=True) if n]
        if released:
            await self.r.publish(self.keys.control_channel, CONTROL_RECONCILE)
        return released

    # --- reads -----------------------------------------------------------------------------------
    async def _members(self, *, live_only: bool = True) -> list[tuple[str, str]]:
        lo: int | str = now_ms() if live_only else "-inf"
        rows = await self.r.zrangebyscore(self.keys.leases, lo, "+inf")
        return [Keys.split_lease_member(_s(m)) for m in rows]

    async def snapshot(self) -> dict[str, dict[str, int]]:
        """Unexpired leases: stream -> {holder: expiry ms}."""
        rows: list[Any] = await self.r.zrangebyscore(self.keys.leases, now_ms(), "+inf", withscores=True)
        out: dict[str, dict[str, int]] = {}
        for m, score in rows:
            stream, holder = Keys.split_lease_member(_s(m))
            out.setdefault(stream, {})[holder] = int(score)
        return out

    async def holds(self, holder: str, streams: Iterable[str]) -> list[bool]:
        streams = list(streams)
        if not streams:
            return []
        scores = await self.r.zmscore(self.keys.leases, [Keys.lease_member(s, holder) for s in streams])
        now = now_ms()
        return [sc is not None and sc > now for sc in scores]

    # --- renewal ---------------------------------------------------------------------------------
    async def check_epoch(self) -> bool:
        """Re-assert every remembered lease when Redis has lost them (the sentinel is missing). True then."""
        if not await self.r.set(self.keys.leases_epoch, "1", nx=True):
            return False
        async with self._lock:
            expiry = now_ms() + self.ttl_ms
            members = {Keys.lease_member(s, holder): expiry for holder, streams in self.held.items() for s in streams}
            if not members:
                return False
            pipe = self.r.pipeline(transaction=False)
            pipe.zadd(self.keys.leases, members)
            pipe.publish(self.keys.control_channel, CONTROL_RECONCILE)
            await pipe.execute()
            self.reassertions += 1
        log.warning("Redis had lost the subscription leases; re-asserted %d of this replica's", len(members))
        return True

    async def renew_once(self) -> None:
        """Extend every lease this process keeps (and, on HTTP replicas, every live pool lease)."""
        await self.check_epoch()
        async with self._lock:
            expiry = now_ms() + self.ttl_ms
            members = {
                Keys.lease_member(s, holder): expiry
                for holder, streams in self.held.items()
                if holder != POOL_HOLDER
                for s in streams
            }
            if members:
                await self.r.zadd(self.keys.leases, members)
            if self.renew_pool:
                pool = [st for st, h in await self._members() if h == POOL_HOLDER]
                if pool:
                    # XX: only extend leases that still exist, so a release on another replica sticks.
                    await self.r.zadd(
                        self.keys.leases, {Keys.lease_member(s, POOL_HOLDER): expiry for s in pool}, xx=True
                    )
                self.held[POOL_HOLDER] = set(pool)
            self.renewals += 1

    async def _renew_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_renew = loop.time() + self.interval_s
        while True:
            await asyncio.sleep(min(CHECK_EVERY_S, max(0.0, next_renew - loop.time())))
            try:
                if loop.time() >= next_renew:
                    next_renew = loop.time() + self.interval_s
                    await self.renew_once()
                else:
                    await self.check_epoch()
            except (aioredis.RedisError, OSError) as e:
                log.warning("lease renewal failed (%s); retrying in %.1f s", e, min(CHECK_EVERY_S, self.interval_s))


_counter = itertools.count(1)


def new_holder(base: str, tag: str) -> str:
    """A fresh sub-holder of this replica, e.g. ``host-12-ab12cd~l3f9a``."""
    return f"{base}~{tag}{next(_counter)}{uuid.uuid4().hex[:4]}"


def connection_of(ctx: Context[Any, Any]) -> Any | None:
    """The SDK ``Connection`` behind a tool call (private attribute: None if the SDK stops exposing it)."""
    try:
        session = ctx.request_context.session
    except ValueError:
        return None
    return session_connection(session)


def is_session_connection(conn: Any) -> bool:
    """A long-lived handshake-era connection (stateful HTTP session, SSE, stdio loop) rather than a
    per-request one (stateless HTTP, any 2026-07-28 request)."""
    if conn is None:
        return False
    return bool(getattr(conn, "has_standalone_channel", False)) and conn.protocol_version not in MODERN_PROTOCOL_VERSIONS


def session_holder(conn: Any, base: str, keeper: LeaseKeeper, key: str = _SESSION_STATE_KEY, tag: str = "s") -> str:
    """The holder of a session connection, created once; its leases are released when the session closes."""
    holder: str | None = conn.state.get(key)
    if holder is None:
        holder = new_holder(base, tag)
        conn.state[key] = holder

        async def _release() -> None:
            try:
                await keeper.release(holder)
            except (aioredis.RedisError, OSError) as e:
                log.warning("could not release leases of closed session %s (%s); they lapse", holder, e)

        conn.exit_stack.push_async_callback(_release)
    return holder


def holder_for(ctx: Context[Any, Any] | None, *, transport: str, base: str, keeper: LeaseKeeper) -> tuple[str, Scope]:
    """The lease holder and scope for a tool call (see the module docstring)."""
    if transport != "http":
        return base, "process"
    conn = connection_of(ctx) if ctx is not None else None
    if is_session_connection(conn):
        return session_holder(conn, base, keeper), "session"
    return POOL_HOLDER, "pool"
