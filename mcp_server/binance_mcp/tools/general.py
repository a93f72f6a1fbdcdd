"""General tools: is Binance reachable from here, and its clock."""

from __future__ import annotations

import time
from typing import Annotated

from mcp.types import CallToolResult

from ..answers.market import (
    Ping,
    ServerTime,
)
from ..answers.provenance import iso_ms
from ..answers.respond import respond
from .context import (
    READ_ONLY,
    ToolContext,
    ToolSpec,
)


async def ping_binance(tc: ToolContext) -> Annotated[CallToolResult, Ping]:
    """Check that Binance REST answers from here (GET /api/v3/ping, weight 1) and how fast (ms)."""
    t0 = time.perf_counter()
    await tc.rest("/api/v3/ping")
    ms = round((time.perf_counter() - t0) * 1000, 2)
    return respond(Ping(ok=True, latency_ms=ms, rest_base_url=tc.settings.rest_base_url))


async def get_server_time(tc: ToolContext) -> Annotated[CallToolResult, ServerTime]:
    """Binance server time and this machine's clock offset from it, ms (weight 1). The offset is stored
    for every replica (signed requests need it)."""
    t = await tc.api.server_time_ms()
    return respond(
        ServerTime(
            server_time_ms=t,
            server_time_iso=iso_ms(t),
            clock_offset_ms=tc.api.clock_offset_ms,
            round_trip_ms=round(tc.api.last_round_trip_ms, 2) if tc.api.last_round_trip_ms is not None else None,
        )
    )


TOOLS = (
    ToolSpec(ping_binance, "Ping Binance REST", READ_ONLY),
    ToolSpec(get_server_time, "Binance server time", READ_ONLY),
)
