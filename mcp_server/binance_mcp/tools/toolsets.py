"""``enable_toolsets`` (with ``BINANCE_MCP_DYNAMIC_TOOLSETS``): an agent adds a group of tools when it needs
it, and its client is told the tool list changed (``notifications/tools/list_changed`` on the session, and a
tools list-changed event to ``subscriptions/listen`` subscribers), so a client that shows few tools starts
small. The tools are added to this process's server: meant for stdio, where a process serves one client.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from ..answers.respond import Answer, respond
from .context import ToolContext, ToolSpec

ToolsetName = Literal["spot", "streams", "account", "trading", "futures"]
ENABLE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=False)


class Toolsets(Answer):
    added: list[str] = Field(description="Tools added by this call.")
    enabled: list[str] = Field(description="Toolsets whose tools are listed now.")
    available: dict[str, list[str]] = Field(description="Every toolset and its tools.")
    unavailable: dict[str, str] = Field(default_factory=dict, description="Toolsets that cannot be enabled, and why.")


async def enable_toolsets(
    tc: ToolContext,
    ctx: Context,
    toolsets: Annotated[list[ToolsetName], Field(max_length=5, description=(
        "Toolsets to add: spot (REST market data), streams (the live feed), account (balances, orders, fills), "
        "trading (the price-range rule; with a key, order-count limits and prevented matches), futures (USD-M "
        "futures market data). Empty: only "
        "list them."))] = [],  # noqa: B006 (pydantic copies defaults)
) -> Annotated[CallToolResult, Toolsets]:
    """List the toolsets, or add some to this server's tools (the client is notified that the tool list
    changed; call tools/list again to see them)."""
    from . import SIGNED_TOOLSETS, TOOLSETS, register, usable

    unavailable = {n: "needs an API key (BINANCE_MCP_API_KEY in the server's environment)"
                   for n in SIGNED_TOOLSETS if not tc.settings.has_credentials}
    added: list[str] = []
    for name in toolsets:
        if name in unavailable:
            continue
        fresh = tuple(spec for spec in usable(name, tc.settings) if spec.name not in tc.registered)
        register(tc.mcp, tc, fresh)
        added += [spec.name for spec in fresh]
    if added:
        with contextlib.suppress(Exception):  # a client without a session stream still sees it on tools/list
            await ctx.request_context.session.send_tool_list_changed()
        with contextlib.suppress(Exception):
            await ctx.notify_tools_changed()
    enabled = [n for n in TOOLSETS if (specs := usable(n, tc.settings))
               and all(s.name in tc.registered for s in specs)]
    return respond(Toolsets(added=added, enabled=enabled, unavailable=unavailable,
                            available={n: [s.name for s in specs] for n, specs in TOOLSETS.items()}))


TOOLS = (ToolSpec(enable_toolsets, "Enable toolsets", ENABLE),)
