"""Shared fixtures: a real redis-server per session, a clean Redis per test, fakeredis for unit tests."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from binance_common.keys import Keys
from binance_common.settings import Settings
from tests.support.recordings import FIXTURES_ENV, REAL_RECORDING, SIM_RECORDING, find_recording
from tests.support.redis_server import RedisServer


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


# --- recordings ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=[SIM_RECORDING, REAL_RECORDING], ids=["sim-recording", "real-recording"])
def recording_path(request: pytest.FixtureRequest) -> Path:
    """Each recording the replay tests run on; a missing one skips with how to provide it."""
    path = find_recording(request.param)
    if path is None:
        pytest.skip(f"recording {request.param} not found in tests/fixtures/ or ${FIXTURES_ENV}; to run the "
                    f"real-recording tests set {FIXTURES_ENV} to the folder holding it "
                    f"(an absolute path, e.g. {FIXTURES_ENV}=/data/binance-recordings)")
    return path
