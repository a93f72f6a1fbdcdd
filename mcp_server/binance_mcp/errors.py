"""Map every anticipated failure to a ToolError with a message an agent can act on."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError
from redis.exceptions import RedisError

from binance_common.errors import BinanceError, RateLimitedError
from binance_common.streams import StreamNameError, SymbolError

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


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


def tool_errors(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorator for async tools: anticipated failures become ToolError, the rest propagate (crash)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except (BinanceError, StreamNameError, SymbolError, ValidationError, RedisError, ConnectionError) as e:
            raise to_tool_error(e) from e
        except ValueError as e:
            raise ToolError(str(e)) from e

    return wrapper
