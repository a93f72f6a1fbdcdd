"""Process-wide resources of one binance-mcp replica: settings, Redis, the REST client, the holder id.

Created once per process (never per request: stateless HTTP runs every request as its own MCP session) and
handed to the tool modules. In embedded mode (no Redis URL) it also runs the feed daemon in-process over
an in-memory Redis, so a single user needs nothing else.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from binance_common.keys import Keys
from binance_common.redis_conn import make_redis
from binance_common.rest import BinanceRest, Governor
from binance_common.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    redis: aioredis.Redis | None = None
    rest: BinanceRest | None = None
    keys: Keys = field(init=False)
    holder: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    daemon: Any = None  # binance_streamd.service.StreamDaemon in embedded mode
    governor: Governor | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # per-module state (caches, lease keepers)
    _started: bool = False

    def __post_init__(self) -> None:
        self.keys = Keys(self.settings.namespace)
        self.holder = self.holder.replace(" ", "_")

    @property
    def r(self) -> aioredis.Redis:
        assert self.redis is not None, "Runtime.start() was not awaited"
        return self.redis

    @property
    def api(self) -> BinanceRest:
        assert self.rest is not None, "Runtime.start() was not awaited"
        return self.rest

    async def start(self, *, embedded_daemon: bool | None = None) -> Runtime:
        if self._started:
            return self
        if self.redis is None:
            self.redis = make_redis(self.settings)
        if self.governor is None:
            self.governor = _make_governor(self)
        if self.rest is None:
            self.rest = BinanceRest(self.settings, governor=self.governor)
        run_daemon = self.settings.embedded if embedded_daemon is None else embedded_daemon
        if run_daemon and self.daemon is None:
            try:
                from binance_streamd.service import StreamDaemon
            except ImportError as e:  # pragma: no cover - the daemon ships in the same distribution
                log.warning("embedded feed unavailable: %s", e)
            else:
                self.daemon = StreamDaemon(self.settings, redis=self.redis)
                await self.daemon.start()
        self._started = True
        return self

    async def stop(self) -> None:
        for closer in list(self.extras.get("_closers", [])):
            try:
                await closer()
            except Exception:  # shutdown boundary: keep closing the rest
                log.exception("error while closing")
        if self.daemon is not None:
            await self.daemon.stop()
            self.daemon = None
        if self.rest is not None:
            await self.rest.aclose()
            self.rest = None
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
        self._started = False

    def on_stop(self, closer: Any) -> None:
        """Register an async callable run by :meth:`stop` (lease keepers, pub/sub listeners)."""
        self.extras.setdefault("_closers", []).append(closer)


def _make_governor(rt: Runtime) -> Governor | None:
    try:
        from binance_common.ratelimit import RedisGovernor
    except ImportError:
        return None
    return RedisGovernor(rt.r, rt.keys, rt.settings)  # type: ignore[no-any-return]
