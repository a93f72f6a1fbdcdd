"""Order tools (signed, read-only): open orders, one order, order history, your fills, prevented matches.
Registered only when an API key is configured."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.types import CallToolResult
from pydantic import Field

from ..answers.account import (
    Fills,
    OrderAnswer,
    Orders,
    PreventedMatches,
    fill_of,
    order_of,
    prevented_of,
)
from ..answers.inputs import check_time_range, parse_time_ms
from ..answers.respond import more_hint, respond, respond_within
from .context import MAX_ID, READ_ACCOUNT, SymbolArg, TimeArg, ToolContext, ToolSpec

ORDER_ROWS = (50, 1000)
FILL_ROWS = (100, 1000)
DAY_MS = 86_400_000

OrderIdArg = Annotated[int | None, Field(ge=0, le=MAX_ID, description="Binance's order id.")]
ClientOrderIdArg = Annotated[str | None, Field(pattern=r"^[.A-Z:/a-z0-9_-]{1,36}$", description=(
    "Your client order id (1-36 characters: letters, digits, . : / _ -)."))]


def _window(start_time: int | str | None, end_time: int | str | None) -> tuple[int | None, int | None]:
    start, end = parse_time_ms(start_time, "start_time"), parse_time_ms(end_time, "end_time")
    check_time_range(start, end)
    if start is not None and end is not None and end - start > DAY_MS:
        raise ValueError("Binance allows at most 24 hours between start_time and end_time; narrow the window or "
                         "page through it a day at a time")
    return start, end


async def get_open_orders(
    tc: ToolContext,
    symbol: Annotated[str | None, Field(max_length=20, description=(
        "One pair (weight 6); omit for every pair (weight 80)."))] = None,
    limit: Annotated[int, Field(ge=1, le=ORDER_ROWS[1], description="Most orders listed (max 1000).")] = ORDER_ROWS[0],
) -> Annotated[CallToolResult, Orders]:
    """Your open orders (GET /api/v3/openOrders), newest first: price, quantities, status, side, type."""
    params: dict[str, Any] = {}
    if symbol is not None:
        params["symbol"] = await tc.symbol(symbol)
    rows = await tc.signed_get("/api/v3/openOrders", params, symbols=[params["symbol"]] if params else None)
    orders = sorted((order_of(o) for o in rows), key=lambda o: (o.time_ms or 0, o.order_id), reverse=True)
    shown = orders[:limit]
    return respond(Orders(orders=shown, total=len(orders), returned=len(shown), truncated=len(orders) > len(shown),
                          hint=more_hint(len(orders), len(shown), ORDER_ROWS[1], "pass symbol")))


async def get_order(
    tc: ToolContext,
    symbol: SymbolArg,
    order_id: OrderIdArg = None,
    client_order_id: ClientOrderIdArg = None,
) -> Annotated[CallToolResult, OrderAnswer]:
    """One order's current state (GET /api/v3/order, weight 4), by order_id or client_order_id."""
    if order_id is None and client_order_id is None:
        raise ValueError("pass order_id or client_order_id (the order to look up)")
    sym = await tc.symbol(symbol)
    o = await tc.signed_get("/api/v3/order", {"symbol": sym, "orderId": order_id,
                                              "origClientOrderId": client_order_id}, symbols=[sym])
    return respond(OrderAnswer(order=order_of(o)))


async def get_orders(
    tc: ToolContext,
    symbol: SymbolArg,
    start_time: TimeArg = None,
    end_time: TimeArg = None,
    from_order_id: Annotated[int | None, Field(ge=0, le=MAX_ID, description=(
        "Orders with this id or higher (then start/end time are not used)."))] = None,
    limit: Annotated[int, Field(ge=1, le=ORDER_ROWS[1], description="Most orders (max 1000).")] = ORDER_ROWS[0],
) -> Annotated[CallToolResult, Orders]:
    """Your orders on one pair, open, filled or canceled (GET /api/v3/allOrders, weight 20), oldest first:
    the most recent ones, those from from_order_id on, or those in a time window of at most 24 h."""
    sym = await tc.symbol(symbol)
    start, end = _window(start_time, end_time)
    if from_order_id is not None and (start is not None or end is not None):
        raise ValueError("pass from_order_id or a time window, not both")
    rows = await tc.signed_get("/api/v3/allOrders", {"symbol": sym, "orderId": from_order_id, "startTime": start,
                                                     "endTime": end, "limit": limit}, symbols=[sym])
    orders = [order_of(o) for o in rows]
    hint = None
    if orders and len(orders) == limit:
        if from_order_id is not None or start is not None:  # Binance listed from the start forward
            hint = f"there may be more: pass from_order_id={orders[-1].order_id + 1} (without start/end time)"
        else:  # the most recent ones: older orders are before the first shown
            hint = (f"older orders may exist: pass end_time={orders[0].time_ms} (orders at that exact ms may "
                    "repeat) or from_order_id")
    return respond(Orders(orders=orders, total=len(orders), returned=len(orders), truncated=False, hint=hint))


async def get_my_trades(
    tc: ToolContext,
    symbol: SymbolArg,
    order_id: Annotated[int | None, Field(ge=0, le=MAX_ID, description="Only fills of this order (weight 5).")] = None,
    start_time: TimeArg = None,
    end_time: TimeArg = None,
    from_id: Annotated[int | None, Field(ge=0, le=MAX_ID, description=(
        "Fills with this trade id or higher (not with a time window)."))] = None,
    limit: Annotated[int, Field(ge=1, le=FILL_ROWS[1], description="Most fills (max 1000).")] = FILL_ROWS[0],
) -> Annotated[CallToolResult, Fills]:
    """Your fills on one pair (GET /api/v3/myTrades, weight 20, 5 with order_id), oldest first: price,
    quantity, quote amount, commission and its asset, buyer/maker flags. A time window spans at most 24 h."""
    sym = await tc.symbol(symbol)
    start, end = _window(start_time, end_time)
    if from_id is not None and (start is not None or end is not None):
        raise ValueError("Binance takes from_id or a time window, not both")
    if order_id is not None and (start is not None or end is not None):
        raise ValueError("Binance takes order_id (optionally with from_id) or a time window, not both")
    rows = await tc.signed_get("/api/v3/myTrades", {"symbol": sym, "orderId": order_id, "startTime": start,
                                                    "endTime": end, "fromId": from_id, "limit": limit}, symbols=[sym])
    fills = [fill_of(t) for t in rows]
    forward = from_id is not None or start is not None  # else Binance gave the most recent fills

    def build(kept: Any) -> Fills:
        cut = len(fills) - len(kept)
        more = cut > 0 or len(fills) == limit
        if not (kept and more):
            return Fills(fills=list(kept), total=len(fills), returned=len(kept), truncated=cut > 0, omitted=cut)
        if forward:
            nxt = kept[-1].id + 1
            return Fills(fills=list(kept), total=len(fills), returned=len(kept), truncated=cut > 0, omitted=cut,
                         next_from_id=nxt, hint=f"continue with from_id={nxt} (without start/end time)")
        return Fills(fills=list(kept), total=len(fills), returned=len(kept), truncated=cut > 0, omitted=cut,
                     hint=f"older fills: pass end_time={kept[0].time_ms} (fills at that exact ms may repeat) or "
                     f"from_id={max(0, kept[0].id - limit)}")

    return respond_within(fills, build, tc.settings.answer_budget_bytes, keep="first" if forward else "last")


async def get_prevented_matches(
    tc: ToolContext,
    symbol: SymbolArg,
    prevented_match_id: Annotated[int | None, Field(ge=0, le=MAX_ID, description="One prevented match (weight 2).")] = None,
    order_id: Annotated[int | None, Field(ge=0, le=MAX_ID, description=(
        "Prevented matches of this order (weight 20)."))] = None,
    from_prevented_match_id: Annotated[int | None, Field(ge=0, le=MAX_ID, description=(
        "With order_id: from this prevented-match id on."))] = None,
    limit: Annotated[int, Field(ge=1, le=ORDER_ROWS[1], description="Most rows (max 1000).")] = ORDER_ROWS[0],
) -> Annotated[CallToolResult, PreventedMatches]:
    """Orders that expired because of self-trade prevention (GET /api/v3/myPreventedMatches), by
    prevented_match_id or by order_id."""
    if (prevented_match_id is None) == (order_id is None):
        raise ValueError("pass exactly one of prevented_match_id or order_id")
    if from_prevented_match_id is not None and order_id is None:
        raise ValueError("from_prevented_match_id goes with order_id")
    sym = await tc.symbol(symbol)
    params: dict[str, Any] = {"symbol": sym, "preventedMatchId": prevented_match_id, "orderId": order_id}
    if from_prevented_match_id is not None:  # Binance takes limit only in this combination
        params |= {"fromPreventedMatchId": from_prevented_match_id, "limit": limit}
    rows = await tc.signed_get("/api/v3/myPreventedMatches", params, symbols=[sym])
    matches = [prevented_of(r) for r in rows][:limit]
    return respond(PreventedMatches(matches=matches, total=len(rows), returned=len(matches),
                                    truncated=len(rows) > len(matches)))


TOOLS = (
    ToolSpec(get_open_orders, "Open orders", READ_ACCOUNT),
    ToolSpec(get_order, "One order", READ_ACCOUNT),
    ToolSpec(get_orders, "Order history", READ_ACCOUNT),
    ToolSpec(get_my_trades, "Your fills", READ_ACCOUNT),
)
TRADING = (ToolSpec(get_prevented_matches, "Prevented matches (STP)", READ_ACCOUNT),)
"""Self-trade prevention results: the ``trading`` toolset."""
