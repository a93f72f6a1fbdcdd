"""Process-wide resources of one binance-mcp replica: settings, Redis, the REST client, leases, the bus.

Created once per process (never per request: stateless HTTP runs every request as its own MCP session) and
handed to the tool modules. It knows nothing of the feed daemon: in embedded mode (no Redis URL) the CLI,
the composition root, attaches the daemon as a :class:`Companion` that starts on the runtime's in-memory
Redis (:func:`binance_mcp.cli.compose`).

Lifecycle: construct (no I/O), :func:`~binance_mcp.server.build_server` may run before or after
:meth:`Runtime.start`, and :meth:`Runtime.stop` releases this process's leases (stdio leases die with the
process; stateless-HTTP pool leases are left to the other replicas), stops the bus and the companions, and
closes the clients.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import redis.asyncio as aioredis

from binance_common.keys import Keys
from binance_common.redis_conn import make_redis
from binance_common.rest import BinanceRest, Governor
from binance_common.settings import Settings
from binance_common.signed import SignedRest, signed_from
from binance_common.weights import futures_request_weight

from .feed.leases import LeaseKeeper
from .feed.reader import FeedReader
from .resources.bus import RedisSubscriptionBus
from .symbols import SymbolDirectory

log = logging.getLogger(__name__)

Transport = Literal["stdio", "http", "memory"]

MAX_REDIS_CONNECTIONS = 512
"""Connections per replica for ordinary reads and writes; a caller waits (up to REDIS_POOL_WAIT_S) for one
instead of failing when all are busy."""
REDIS_POOL_WAIT_S = 5.0
MAX_BLOCKING_READS = 128
"""Concurrent history reads parked in XREAD BLOCK per replica; they get their own connections so waiting
readers never starve ordinary ones."""


def make_client(settings: Settings, max_connections: int) -> aioredis.Redis:
    """A client over a blocking pool (waits for a free connection rather than raising at the pool limit);
    in embedded mode the shared in-memory server."""
    if settings.embedded:
        return make_redis(settings)
    assert settings.redis_url is not None
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=max_connections,
        timeout=REDIS_POOL_WAIT_S,
        health_check_interval=15,
        socket_keepalive=True,
    )
    return aioredis.Redis.from_pool(pool)


class Companion(Protocol):
    """Something that runs beside the front end on its Redis (the embedded feed daemon)."""

    async def start(self) -> object: ...

    async def stop(self) -> None: ...


def default_holder() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class Runtime:
    settings: Settings
    redis: aioredis.Redis | None = None
    redis_blocking: aioredis.Redis | None = None
    rest: BinanceRest | None = None
    signed: SignedRest | None = None
    """Signed requests for the configured account (None without an API key)."""
    futures_rest: BinanceRest | None = None
    """USD-M futures REST (fapi), with its own shared weight budget."""
    futures_limits: list[tuple[str, Governor]] = field(default_factory=list)
    """Request-count limits of futures endpoint families (path prefix, governor counting one per request)."""
    keys: Keys = field(init=False)
    holder: str = field(default_factory=default_holder)
    transport: Transport = "stdio"
    """stdio/memory: one client per process (leases held by the process); http: stateless pool or sessions."""
    governor: Governor | None = None
    companions: list[Callable[[aioredis.Redis], Companion]] = field(default_factory=list)
    """Factories of what runs beside this replica on its Redis, started after it (the embedded daemon)."""
    bus: RedisSubscriptionBus = field(init=False)
    leases: LeaseKeeper = field(init=False)
    directory: SymbolDirectory = field(init=False)
    """exchangeInfo, cached for every replica (:mod:`.symbols`)."""
    _feed: FeedReader | None = field(default=None, init=False)
    _running: list[Companion] = field(default_factory=list, init=False)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list, init=False)
    _started: bool = False

    def __post_init__(self) -> None:
        self.keys = Keys(self.settings.namespace)
        self.holder = "".join(c if c.isalnum() or c in "-_.~" else "_" for c in self.holder)[:80]
        self.bus = RedisSubscriptionBus(self.keys)
        self.leases = LeaseKeeper(self.keys, self.settings.lease_ttl_s, renew_pool=self.transport == "http")
        self.directory = SymbolDirectory(self)

    @property
    def r(self) -> aioredis.Redis:
        assert self.redis is not None, "Runtime.start() was not awaited"
        return self.redis

    @property
    def api(self) -> BinanceRest:
        assert self.rest is not None, "Runtime.start() was not awaited"
        return self.rest

    @property
    def feed(self) -> FeedReader:
        if self._feed is None:
            self._feed = FeedReader(
                self.r,
                self.keys,
                history_cap=self.settings.history_maxlen,
                blocking=self.redis_blocking,
                max_blocking=MAX_BLOCKING_READS,
            )
            # latest values are cached while the daemon's update announcements reach this replica
            self._feed.cache_epoch = lambda: self.bus.updates_epoch
            self.bus.update_hooks.append(self._feed.invalidate)
        return self._feed

    @property
    def embedded(self) -> bool:
        """True when the feed runs in this process over in-memory Redis."""
        return self.settings.embedded

    @property
    def started(self) -> bool:
        return self._started

    async def start(self) -> Runtime:
        if self._started:
            return self
        if self.redis is None:
            self.redis = make_client(self.settings, MAX_REDIS_CONNECTIONS)
        if self.redis_blocking is None and not self.settings.embedded:
            self.redis_blocking = make_client(self.settings, MAX_BLOCKING_READS + 2)
        if self.governor is None:
            self.governor = _make_governor(self)
        if self.rest is None:
            self.rest = BinanceRest(self.settings, governor=self.governor)
        if self.signed is None:
            self.signed = signed_from(self.rest, self.settings)
        if self.futures_rest is None:
            self.futures_rest = BinanceRest(self.settings, governor=_make_governor(self, futures=True),
                                            base_url=self.settings.futures_rest_base_url, weigh=futures_request_weight)
            self.futures_limits = _futures_limits(self)
        for make in self.companions:
            companion = make(self.redis)
            await companion.start()
            self._running.append(companion)
        await self.leases.start(self.redis)
        await self.bus.start(self.redis)
        self._started = True
        return self

    async def stop(self) -> None:
        for closer in self._closers:
            try:
                await closer()
            except Exception:  # shutdown boundary: keep closing the rest
                log.exception("error while closing")
        self._closers = []
        await self.leases.stop(release=True)
        await self.bus.stop()
        while self._running:
            await self._running.pop().stop()
        if self.rest is not None:
            await self.rest.aclose()
            self.rest = None
        self.signed = None
        if self.futures_rest is not None:
            await self.futures_rest.aclose()
            self.futures_rest = None
        if self.redis_blocking is not None:
            await self.redis_blocking.aclose()
            self.redis_blocking = None
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
        self._feed = None
        self._started = False

    def on_stop(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Register an async callable run first by :meth:`stop` (legacy subscription registries)."""
        self._closers.append(closer)


FUTURES_LIMITS = (("/futures/data/", "fdata:", 200), ("/fapi/v1/fundingRate", "ffund:", 100))
"""Binance's request limits besides weight: /futures/data/* 1000 and fundingRate 500 requests per 5 minutes per
IP, kept as per-minute budgets (a fifth each) shared by every replica."""


def _futures_limits(rt: Runtime) -> list[tuple[str, Governor]]:
    try:
        from binance_common.ratelimit import RedisGovernor
    except ImportError:
        return []
    return [(prefix, RedisGovernor(rt.r, rt.keys.scoped(scope), rt.settings, limit=per_minute))
            for prefix, scope, per_minute in FUTURES_LIMITS]


def _make_governor(rt: Runtime, *, futures: bool = False) -> Governor | None:
    try:
        from binance_common.ratelimit import RedisGovernor
    except ImportError:
        return None
    if futures:
        return RedisGovernor(rt.r, rt.keys.scoped("fapi:"), rt.settings,  # type: ignore[no-any-return]
                             limit=rt.settings.futures_rest_max_weight_per_minute)
    return RedisGovernor(rt.r, rt.keys, rt.settings)  # type: ignore[no-any-return]
