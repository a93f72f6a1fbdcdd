"""Create the Redis client both processes use: a real server from ``redis_url``, else in-memory fakeredis.

In embedded mode every caller in the process must share one :class:`fakeredis.FakeServer` so the
in-process daemon and the MCP tools see the same data; :func:`embedded_server` holds it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import redis.asyncio as aioredis

from .settings import Settings


@lru_cache(maxsize=1)
def embedded_server() -> Any:
    import fakeredis

    return fakeredis.FakeServer()


def make_redis(settings: Settings, *, decode_responses: bool = False, **kw: Any) -> aioredis.Redis:
    """A redis.asyncio client for ``settings.redis_url``, or fakeredis when it is unset."""
    if settings.redis_url:
        return aioredis.Redis.from_url(
            settings.redis_url,
            decode_responses=decode_responses,
            health_check_interval=kw.pop("health_check_interval", 15),
            socket_keepalive=True,
            **kw,
        )
    import fakeredis

    return fakeredis.FakeAsyncRedis(server=embedded_server(), decode_responses=decode_responses, **kw)
