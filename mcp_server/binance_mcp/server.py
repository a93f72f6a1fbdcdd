"""Build the MCPServer: one function that registers every tool, resource, prompt and subscription handler."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

from . import __version__, prompts, tools
from .resources import live
from .resources.legacy import install as install_legacy
from .runtime import Runtime
from .sdk_adapter import drop_tracing
from .tools.context import ToolContext

INSTRUCTIONS = """\
Binance Spot market data. REST tools (prices, order books, candles, trades, tickers, exchange info) call
Binance directly; stream tools read a shared live WebSocket feed kept in Redis: subscribe_streams first,
then get_stream_latest, get_stream_history (with a cursor and an optional wait for new data) or
get_live_order_book. Every stream answer says how fresh it is (as-of time, age, source, stale flag).
Prices and quantities are exact decimal strings. Symbols are pairs without separators, e.g. BTCUSDT;
stream names are lowercase, e.g. btcusdt@trade. Live resources: binance://stream/{stream},
binance://book/{symbol}, binance://ticker/{symbol}, binance://feed/status (subscribe for updates).
Market tools take source=auto|rest|stream (auto answers from the live feed when it is fresh); use
search_symbols / get_symbol_info rather than exchange dumps; get_all_* tools rank, filter and truncate
(their `hint` says how to get more)."""
ACCOUNT_INSTRUCTIONS = """
Read-only account tools for the configured API key: get_account, get_balances (stream-first, with freshness),
get_open_orders, get_order, get_orders, get_my_trades, get_trading_fees, get_order_rate_limits,
get_prevented_matches, get_account_events (the user-data events the daemon keeps, with explicit gaps).
None of them can place, change or cancel orders."""
FUTURES_INSTRUCTIONS = """
USD-M futures market data: get_futures_* tools, get_mark_price (mark, index, funding), get_funding_rate_history,
get_open_interest(_history), get_long_short_ratio, get_taker_buy_sell_volume. Futures streams are named
um:<stream>, e.g. um:btcusdt@markPrice@1s, um:btcusdt@aggTrade, um:btcusdt@depth@100ms."""


def build_server(rt: Runtime, *, subscriptions: Any = None, token_verifier: Any = None, auth: Any = None) -> MCPServer:
    """An MCPServer whose tools use ``rt`` (which the caller starts and stops).

    ``subscriptions`` overrides the replica's Redis-backed bus (tests); resource updates reach clients of
    both protocol eras (``subscriptions/listen`` and ``resources/subscribe``). ``token_verifier`` and
    ``auth``: the OAuth resource server (:mod:`.http.oauth`), HTTP only.
    """
    bus = subscriptions if subscriptions is not None else rt.bus
    mcp: MCPServer = MCPServer(
        "binance-mcp",
        title="Binance market data",
        instructions=INSTRUCTIONS + (ACCOUNT_INSTRUCTIONS if rt.settings.has_credentials
                                     and "account" in rt.settings.toolsets else "")
        + (FUTURES_INSTRUCTIONS if "futures" in rt.settings.toolsets else ""),
        version=__version__,
        subscriptions=bus,
        log_level="WARNING",  # only applies when nothing configured logging (the CLI does, to stderr)
        token_verifier=token_verifier,
        auth=auth,
    )
    if not rt.settings.otel_spans:
        drop_tracing(mcp)
    tools.register(mcp, ToolContext(rt))
    live.register(mcp, rt)
    prompts.register(mcp)
    legacy = install_legacy(mcp, bus, rt.leases, rt.holder)
    rt.on_stop(legacy.close)
    return mcp
