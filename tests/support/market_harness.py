"""Helpers for the market-tool tests: a started replica (optionally with a fake REST transport), tool calls
through the real MCP client, and seeding the feed's Redis keys the way the daemon writes them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis
from mcp import Client

from binance_common.keys import Keys
from binance_common.rest import BinanceRest
from binance_common.settings import Settings
from binance_mcp.runtime import Runtime
from binance_mcp.server import build_server


@asynccontextmanager
async def replica(
    settings: Settings, handler: Callable[[httpx.Request], httpx.Response] | None = None
) -> AsyncIterator[Runtime]:
    """A started Runtime (no embedded daemon). ``handler`` replaces Binance with an httpx MockTransport."""
    rt = Runtime(settings, transport="memory")
    await rt.start()
    if handler is not None:
        assert rt.rest is not None
        await rt.rest.aclose()
        rt.rest = BinanceRest(settings, governor=rt.governor, transport=httpx.MockTransport(handler))
    try:
        yield rt
    finally:
        await rt.stop()


@asynccontextmanager
async def client_for(rt: Runtime) -> AsyncIterator[Client]:
    async with Client(build_server(rt)) as c:
        yield c


async def call(c: Client, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    res = await c.call_tool(name, args or {})
    assert not res.is_error, res.content[0].text  # type: ignore[union-attr]
    assert res.structured_content is not None
    # the text is the same data as compact JSON
    assert orjson.loads(res.content[0].text) == res.structured_content  # type: ignore[union-attr]
    return res.structured_content


async def call_error(c: Client, name: str, args: dict[str, Any] | None = None) -> str:
    res = await c.call_tool(name, args or {})
    assert res.is_error, res.structured_content
    text: str = res.content[0].text  # type: ignore[union-attr]
    assert text.startswith(f"Error executing tool {name}: "), text  # anticipated, never a crash
    return text


def now_ms() -> int:
    return int(time.time() * 1000)


async def seed_latest(r: aioredis.Redis, keys: Keys, stream: str, payload: Any, age_ms: int = 0) -> None:
    """``latest:<stream>`` as the daemon writes it: ``{"r": <recv ms>, "d": <raw payload>}``."""
    await r.set(keys.latest(stream), orjson.dumps({"r": now_ms() - age_ms, "d": payload}))


async def seed_history(
    r: aioredis.Redis, keys: Keys, stream: str, payloads: list[dict[str, Any]], *, state: str = "live", age_ms: int = 0
) -> None:
    """``hist:<stream>`` entries (fields d, r), ``latest:<stream>`` and the daemon's status."""
    t = now_ms() - age_ms
    for p in payloads:
        await r.xadd(keys.history(stream), {"d": orjson.dumps(p), "r": str(t)})
    await seed_latest(r, keys, stream, payloads[-1], age_ms)
    await r.hset(keys.status(stream), mapping={"state": state})


async def seed_book(
    r: aioredis.Redis, keys: Keys, symbol: str, bids: list[list[str]], asks: list[list[str]], age_ms: int = 0
) -> None:
    book = {"symbol": symbol, "lastUpdateId": 777, "E": now_ms(), "asof": now_ms() - age_ms, "bids": bids, "asks": asks}
    await r.set(keys.book(symbol), orjson.dumps(book))


class Counting:
    """An httpx MockTransport handler answering from a dict of path -> JSON, counting requests per path."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[httpx.Request] = []

    def __call__(self, req: httpx.Request) -> httpx.Response:
        self.calls.append(req)
        body = self.answers.get(req.url.path)
        if body is None:
            return httpx.Response(404, json={"code": -1, "msg": f"no fake answer for {req.url.path}"})
        if callable(body):
            return body(req)  # type: ignore[no-any-return]
        return httpx.Response(200, json=body, headers={"X-MBX-USED-WEIGHT-1M": "1"})

    def paths(self) -> list[str]:
        return [c.url.path for c in self.calls]
