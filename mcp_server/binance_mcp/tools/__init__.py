"""The tools, one module per domain; each lists its tools in ``TOOLS`` and :data:`ALL` is the whole table.

=================  ==========================================================================================
module             tools
=================  ==========================================================================================
``general``        ping_binance, get_server_time
``symbols``        get_exchange_info, search_symbols, get_symbol_info
``books``          get_order_book, get_live_order_book
``trades``         get_recent_trades, get_historical_trades, get_aggregate_trades, get_block_trades
``klines``         get_klines, get_ui_klines
``prices``         get_price, get_all_prices, get_average_price, get_book_ticker, get_all_book_tickers
``tickers``        get_24hr_ticker, get_all_24hr_tickers, get_trading_day_ticker, get_all_trading_day_tickers,
                   get_rolling_window_ticker, get_all_rolling_window_tickers
``streams``        subscribe_streams, unsubscribe_streams, unsubscribe_all_streams, list_stream_subscriptions,
                   get_stream_latest, get_stream_history, get_feed_status
``account``        get_account, get_balances, get_trading_fees, get_account_events, get_order_rate_limits
``orders``         get_open_orders, get_order, get_orders, get_my_trades, get_prevented_matches
``price_rules``    get_price_rules
``futures``        get_futures_exchange_info, get_futures_order_book, get_futures_recent_trades,
                   get_futures_aggregate_trades, get_futures_klines, get_mark_price, get_futures_24hr_ticker,
                   get_futures_book_ticker, get_futures_price
``futures_stats``  get_funding_rate_history, get_open_interest, get_open_interest_history, get_long_short_ratio,
                   get_taker_buy_sell_volume
``toolsets``       enable_toolsets
=================  ==========================================================================================

Toolsets (``BINANCE_MCP_TOOLSETS``, :data:`TOOLSETS`) group them for clients that show few tools: ``spot``
(general, symbols, the REST book, trades, klines, prices, tickers), ``streams`` (with the live book), ``account`` (the signed reads of the
account, orders and fills), ``trading`` (the price-range rule; with a key, order-count limits and prevented
matches), ``futures``. A tool that signs its requests is registered only when an API key is configured.

What they share (the typed :class:`~.context.ToolContext`, argument types, sizes, :func:`~.context.bind`) is
in :mod:`.context`.
"""

from __future__ import annotations

import logging

from mcp.server.mcpserver import MCPServer

from binance_common.settings import Settings

from . import (
    account,
    books,
    futures,
    futures_stats,
    general,
    klines,
    orders,
    price_rules,
    prices,
    streams,
    symbols,
    tickers,
    trades,
)
from .context import ToolContext, ToolSpec, bind

log = logging.getLogger(__name__)

TOOLSETS: dict[str, tuple[ToolSpec, ...]] = {
    "spot": (*general.TOOLS, *symbols.TOOLS, *books.TOOLS, *trades.TOOLS, *klines.TOOLS, *prices.TOOLS,
             *tickers.TOOLS),
    "streams": (*streams.TOOLS, *books.FEED),
    "account": (*account.TOOLS, *orders.TOOLS),
    "trading": (*price_rules.TOOLS, *account.TRADING, *orders.TRADING),
    "futures": (*futures.TOOLS, *futures_stats.TOOLS),
}
ALL: tuple[ToolSpec, ...] = (*TOOLSETS["spot"], *TOOLSETS["streams"])
"""The public market tools (the default without an API key)."""
ACCOUNT: tuple[ToolSpec, ...] = (*account.TOOLS, *orders.TOOLS, *account.TRADING, *orders.TRADING)
"""Every signed tool."""
SIGNED = frozenset(spec.name for spec in ACCOUNT)
SIGNED_TOOLSETS = tuple(n for n, specs in TOOLSETS.items() if specs and all(s.name in SIGNED for s in specs))
"""Toolsets with nothing to offer without an API key."""


def usable(name: str, settings: Settings) -> tuple[ToolSpec, ...]:
    """The tools of toolset ``name`` this server can offer: the signed ones only with an API key."""
    if settings.has_credentials:
        return TOOLSETS[name]
    return tuple(spec for spec in TOOLSETS[name] if spec.name not in SIGNED)


def selected(settings: Settings) -> tuple[ToolSpec, ...]:
    """The tools of the configured toolsets; signed toolsets only with an API key."""
    out: list[ToolSpec] = []
    for name in settings.toolsets:
        specs = usable(name, settings)
        if len(specs) < len(TOOLSETS[name]):
            log.info("toolset %s: %d tools need an API key (BINANCE_MCP_API_KEY); not listed", name,
                     len(TOOLSETS[name]) - len(specs))
        out += specs
    return tuple(out)


def register(mcp: MCPServer, tc: ToolContext, table: tuple[ToolSpec, ...] | None = None) -> None:
    """Add every tool of ``table`` (default: the configured toolsets, :func:`selected`) to ``mcp``, bound to
    ``tc``; with ``dynamic_toolsets``, also ``enable_toolsets``."""
    if table is None:
        table = selected(tc.settings)
        if tc.settings.dynamic_toolsets and tc.rt.transport != "http":  # per process: one client (stdio)
            from . import toolsets

            table = (*table, *toolsets.TOOLS)
    tc.mcp = mcp
    for spec in table:
        if spec.name in tc.registered:
            continue
        tc.registered.add(spec.name)
        mcp.add_tool(
            bind(spec, tc), name=spec.name, title=spec.title, description=spec.description,
            annotations=spec.annotations,
        )
