"""The tools, one module per domain; each lists its tools in ``TOOLS`` and :data:`ALL` is the whole table.

=================  ==========================================================================================
module             tools
=================  ==========================================================================================
``general``        ping_binance, get_server_time
``symbols``        get_exchange_info, search_symbols, get_symbol_info
``books``          get_order_book, get_live_order_book
``trades``         get_recent_trades, get_historical_trades, get_aggregate_trades
``klines``         get_klines, get_ui_klines
``prices``         get_price, get_all_prices, get_average_price, get_book_ticker, get_all_book_tickers
``tickers``        get_24hr_ticker, get_all_24hr_tickers, get_trading_day_ticker, get_all_trading_day_tickers,
                   get_rolling_window_ticker, get_all_rolling_window_tickers
``streams``        subscribe_streams, unsubscribe_streams, unsubscribe_all_streams, list_stream_subscriptions,
                   get_stream_latest, get_stream_history, get_feed_status
``account``        get_account, get_balances, get_trading_fees, get_order_rate_limits, get_account_events
``orders``         get_open_orders, get_order, get_orders, get_my_trades, get_prevented_matches
=================  ==========================================================================================

The ``account`` and ``orders`` tools (:data:`ACCOUNT`) are signed reads of the configured account: they are
registered only when an API key is configured.

What they share (the typed :class:`~.context.ToolContext`, argument types, sizes, :func:`~.context.bind`) is
in :mod:`.context`.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from . import account, books, general, klines, orders, prices, streams, symbols, tickers, trades
from .context import ToolContext, ToolSpec, bind

ALL: tuple[ToolSpec, ...] = (
    *general.TOOLS,
    *symbols.TOOLS,
    *books.TOOLS,
    *trades.TOOLS,
    *klines.TOOLS,
    *prices.TOOLS,
    *tickers.TOOLS,
    *streams.TOOLS,
)
ACCOUNT: tuple[ToolSpec, ...] = (*account.TOOLS, *orders.TOOLS)


def register(mcp: MCPServer, tc: ToolContext, table: tuple[ToolSpec, ...] | None = None) -> None:
    """Add every tool of ``table`` (default: :data:`ALL`, plus :data:`ACCOUNT` when an API key is configured)
    to ``mcp``, bound to ``tc``."""
    if table is None:
        table = ALL + (ACCOUNT if tc.settings.has_credentials else ())
    for spec in table:
        mcp.add_tool(
            bind(spec, tc), name=spec.name, title=spec.title, description=spec.description,
            annotations=spec.annotations,
        )
