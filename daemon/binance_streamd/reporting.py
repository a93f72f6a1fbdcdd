"""Reporting: per-stream status hashes, the heartbeat, the stats record; the standby's own heartbeat.

Every ``STATUS_EVERY_S`` the leader writes the status of every stream whose status changed (all of them
every ``FULL_STATUS_EVERY_S``, and at once when Redis has lost them), the heartbeat (with a TTL) and the
stats record, in one fenced script: a deposed leader writes nothing. Idle streams cost nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from binance_common.keys import Keys
from binance_common.settings import Settings
from binance_common.timeutil import now_ms

from .datapath import Stream
from .leadership import Fenced, Leadership

log = logging.getLogger(__name__)

STATUS_EVERY_S = 1.0
FULL_STATUS_EVERY_S = 30.0


class Reporter:
    def __init__(self, redis: aioredis.Redis, keys: Keys, settings: Settings, leadership: Leadership,
                 states: dict[str, Stream], started_ms: int, stats: Callable[[], dict[str, Any]]) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.leadership = leadership
        self.states = states
        self.started_ms = started_ms
        self.stats = stats
        self._written: dict[str, tuple[Any, ...]] = {}  # stream -> status last written (but "updated")
        self._full_at = 0.0
        self._last_rate_at = time.monotonic()

    def forget(self, name: str) -> None:
        self._written.pop(name, None)

    def heartbeat(self, role: str) -> dict[str, Any]:
        lead = self.leadership
        return {"pid": os.getpid(), "host": socket.gethostname(), "started": self.started_ms, "ts": now_ms(),
                "role": role, "token": lead.token if role == "leader" else None, "terms": lead.terms}

    def _rates(self) -> None:
        now = time.monotonic()
        dt = max(1e-3, now - self._last_rate_at)
        self._last_rate_at = now
        for st in self.states.values():
            st.rate, st.rate_base = (st.msgs - st.rate_base) / dt, st.msgs

    async def write(self, final: bool = False) -> None:
        """One status round (leader). ``final``: everything, and no heartbeat (a clean stop deletes it)."""
        self._rates()
        full = final or time.monotonic() - self._full_at >= FULL_STATUS_EVERY_S
        if not full:
            with contextlib.suppress(RedisError, OSError):
                full = not await self.redis.exists(self.keys.heartbeat)  # Redis lost our keys: rewrite them all
        if full:
            self._full_at = time.monotonic()
        cmds: list[list[Any]] = []
        written = self._written
        for st in self.states.values():
            fields = st.record().to_hash()
            sig = tuple(fields.values())[:-1]  # all but "updated"
            if full or written.get(st.name) != sig:
                written[st.name] = sig
                cmds.append(["HSET", self.keys.status(st.name), *_flat(fields)])
        if len(written) > 2 * len(self.states) + 100:  # forget streams that are gone
            for name in [n for n in written if n not in self.states]:
                del written[name]
        ttl = int(self.settings.heartbeat_ttl_s * 1000)
        if not final:
            cmds.append(["SET", self.keys.heartbeat, orjson.dumps(self.heartbeat("leader")), "PX", ttl])
        cmds.append(["SET", self.keys.daemon_stats, orjson.dumps(self.stats())])
        try:
            await self.leadership.execute(cmds)
        except Fenced:
            self._written.clear()
            raise

    async def write_standby(self) -> None:
        ttl = int(self.settings.heartbeat_ttl_s * 1000)
        lead = self.leadership
        await self.redis.set(self.keys.standby(lead.identity.rsplit(":", 1)[0]),
                               orjson.dumps(self.heartbeat("standby")), px=ttl)


def _flat(fields: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for k, v in fields.items():
        out += (k, v)
    return out
