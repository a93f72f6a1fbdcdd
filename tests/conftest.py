"""Shared fixtures: a real redis-server per session, a clean Redis per test, fakeredis for unit tests."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from binance_common.keys import Keys
from binance_common.settings import Settings
from tests.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port. Fails loudly when redis-server is missing."""
    if shutil.which("redis-server") is None:
        pytest.fail(
            "redis-server is not installed; integration tests need it (apt-get install redis-server)",
            pytrace=False,
        )
    with RedisServer() as server:
        yield server


@pytest.fixture
def namespace() -> str:
    """A fresh key namespace per test, so tests sharing one redis-server never see each other's keys."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def keys(namespace: str) -> Keys:
    return Keys(namespace)


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def fake_redis() -> AsyncIterator[aioredis.Redis]:
    import fakeredis

    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def settings_factory(namespace: str):
    """Build Settings isolated from the developer's environment (no env file, explicit fields)."""

    def make(**kw: object) -> Settings:
        kw.setdefault("namespace", namespace)
        return Settings(**kw)  # type: ignore[arg-type]

    return make
