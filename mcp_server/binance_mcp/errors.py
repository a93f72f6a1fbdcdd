"""Map every anticipated failure to a ToolError with a message an agent can act on."""

from __future__ import annotations

import logging
from typing import ParamSpec, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError
from redis.exceptions import RedisError

from binance_common.errors import BinanceError, RateLimitedError
from binance_common.streams import StreamNameError, SymbolError

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


ANTICIPATED = (BinanceError, StreamNameError, SymbolError, ValidationError, RedisError, ConnectionError)
"""Failures a tool reports as an error result; anything else is a bug and propagates."""


def to_tool_error(e: Exception) -> ToolError:
    if isinstance(e, ToolError):
        return e
    if isinstance(e, RateLimitedError):
        return ToolError(f"{e} (can run again in {e.retry_after_s:.0f} s)")
    if isinstance(e, BinanceError | StreamNameError | SymbolError):
        return ToolError(str(e))
    if isinstance(e, ValidationError):
        return ToolError(f"invalid input: {e.errors(include_url=False)}")
    if isinstance(e, RedisError | ConnectionError | OSError):
        return ToolError(
            f"the shared feed store (Redis) is unreachable: {type(e).__name__}. Check BINANCE_MCP_REDIS_URL "
            "and that redis-server is running; REST tools still work."
        )
    return ToolError(str(e))
