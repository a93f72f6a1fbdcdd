"""Output models of the account tools (signed, read-only) and the converters from Binance's payloads.

Amounts are the exact decimal strings Binance sent; times are ms since the Unix epoch (UTC). Nothing here
ever carries the API key, the secret or the private key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .numbers import s
from .provenance import iso_ms
from .respond import Answer, LiveAnswer, Series, Truncation


class Balance(BaseModel):
    asset: str
    free: str
    locked: str


class CommissionRates(BaseModel):
    maker: str
    taker: str
    buyer: str
    seller: str


class Account(Truncation):
    account_type: str = Field(description="SPOT, ...")
    can_trade: bool
    can_withdraw: bool
    can_deposit: bool
    permissions: list[str]
    commission_rates: CommissionRates
    require_self_trade_prevention: bool | None = None
    update_time_ms: int | None = None
    balances: list[Balance] = Field(description="Non-zero balances unless include_zero, largest free first.")


class SymbolFees(BaseModel):
    symbol: str
    maker: str
    taker: str
    buyer: str | None = None
    seller: str | None = None
    special: CommissionRates | None = Field(None, description="Special commission rates (account/commission).")
    tax: CommissionRates | None = Field(None, description="Tax commission rates (account/commission).")
    bnb_discount: dict[str, Any] | None = Field(None, description="Discount when paying commission in BNB.")


class TradingFees(Truncation):
    endpoint: str = Field(description="The Binance endpoint that answered.")
    fees: list[SymbolFees]


class Order(BaseModel):
    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str | None = None
    price: str
    orig_qty: str
    executed_qty: str
    cumulative_quote_qty: str = Field(description="Quote asset spent or received so far (Binance's "
                                      "cummulativeQuoteQty; negative when Binance does not know it).")
    status: str = Field(description="NEW, PARTIALLY_FILLED, FILLED, CANCELED, PENDING_CANCEL, REJECTED, EXPIRED, ...")
    stop_price: str | None = None
    iceberg_qty: str | None = None
    order_list_id: int | None = None
    time_ms: int | None = None
    update_time_ms: int | None = None
    is_working: bool | None = None
    self_trade_prevention_mode: str | None = None


class Orders(Truncation):
    orders: list[Order]


class OrderAnswer(Answer):
    order: Order


class Fill(BaseModel):
    symbol: str
    id: int = Field(description="Trade id.")
    order_id: int
    price: str
    qty: str
    quote_qty: str
    commission: str
    commission_asset: str | None
    time_ms: int
    is_buyer: bool
    is_maker: bool


class Fills(Series, Truncation):
    fills: list[Fill]
    next_from_id: int | None = Field(None, description="Pass as from_id to continue after the last fill shown.")


class OrderRateLimit(BaseModel):
    rate_limit_type: str
    interval: str
    interval_num: int
    limit: int
    count: int


class OrderRateLimits(Answer):
    limits: list[OrderRateLimit]
    last_seen_headers: dict[str, int] = Field(
        description="Order counts from the X-MBX-ORDER-COUNT-* headers this replica last saw (Binance sends them "
        "only with order placements; empty until then).")


class PreventedMatch(BaseModel):
    symbol: str
    prevented_match_id: int
    taker_order_id: int
    maker_symbol: str | None = None
    maker_order_id: int
    trade_group_id: int | None = None
    self_trade_prevention_mode: str
    price: str
    maker_prevented_quantity: str
    transact_time_ms: int


class PreventedMatches(Truncation):
    matches: list[PreventedMatch]


class BalanceFreshness(BaseModel):
    source: Literal["rest", "stream"]
    as_of_ms: int | None = Field(description="When these balances were true (Binance's update time), ms.")
    as_of: str | None = None
    age_ms: int | None = None
    stream_state: str | None = Field(None, description="The user-data stream's state in the daemon "
                                     "(live, reconnecting, ...); null when no daemon keeps it.")


class Balances(LiveAnswer):
    balances: list[Balance]
    freshness: BalanceFreshness


class AccountEvent(BaseModel):
    id: str = Field(description="Entry id in the event history (pass as after_id to continue).")
    kind: Literal["event", "gap", "reconciled"] = Field(description=(
        "event: a Binance user-data event; gap: events Binance may have sent while no connection was "
        "subscribed (never replayed by Binance); reconciled: the daemon re-read the account over REST after a "
        "gap, so balances, orders and fills in Redis are complete again."))
    event_type: str | None = Field(None, description="executionReport, outboundAccountPosition, ...")
    event_time_ms: int | None = None
    event: dict[str, Any] | None = Field(None, description="The event as Binance sent it.")
    gap: dict[str, Any] | None = Field(None, description="{from_ms, to_ms, reason} of a gap entry.")
    reconciled: dict[str, Any] | None = Field(None, description="What a reconcile re-read.")


class AccountEvents(LiveAnswer, Series):
    events: list[AccountEvent]
    next_after_id: str | None = Field(description="Pass as after_id to read on from here.")
    stream_state: str | None = Field(description="The user-data stream's state in the daemon; null when no "
                                     "daemon has ever kept this account's stream.")
    last_event_ms: int | None = None
    gaps: int = Field(0, description="Gap entries the daemon recorded for this account so far.")
    trimmed: bool = Field(False, description="True when after_id is older than the oldest entry the capped history "
                          "keeps, so entries after it may have been trimmed: re-read get_balances / get_orders.")


# --- converters ----------------------------------------------------------------------------------------
def rates(d: dict[str, Any]) -> CommissionRates:
    return CommissionRates(maker=s(d["maker"]), taker=s(d["taker"]), buyer=s(d["buyer"]), seller=s(d["seller"]))


def order_of(o: dict[str, Any]) -> Order:
    """A REST order (or the daemon's stored order, same field names)."""
    return Order(
        symbol=o["symbol"], order_id=int(o["orderId"]), client_order_id=str(o.get("clientOrderId", "")),
        side=o["side"], type=o["type"], time_in_force=o.get("timeInForce"), price=s(o["price"]),
        orig_qty=s(o["origQty"]), executed_qty=s(o["executedQty"]),
        cumulative_quote_qty=s(o.get("cummulativeQuoteQty", "0")), status=o["status"],
        stop_price=s(o["stopPrice"]) if o.get("stopPrice") is not None else None,
        iceberg_qty=s(o["icebergQty"]) if o.get("icebergQty") is not None else None,
        order_list_id=o.get("orderListId"), time_ms=o.get("time"), update_time_ms=o.get("updateTime"),
        is_working=o.get("isWorking"), self_trade_prevention_mode=o.get("selfTradePreventionMode"),
    )


def fill_of(t: dict[str, Any]) -> Fill:
    return Fill(symbol=t["symbol"], id=int(t["id"]), order_id=int(t["orderId"]), price=s(t["price"]),
                qty=s(t["qty"]), quote_qty=s(t["quoteQty"]), commission=s(t["commission"]),
                commission_asset=t.get("commissionAsset"), time_ms=int(t["time"]), is_buyer=bool(t["isBuyer"]),
                is_maker=bool(t["isMaker"]))


def prevented_of(r: dict[str, Any]) -> PreventedMatch:
    return PreventedMatch(
        symbol=r["symbol"], prevented_match_id=int(r["preventedMatchId"]), taker_order_id=int(r["takerOrderId"]),
        maker_symbol=r.get("makerSymbol"), maker_order_id=int(r["makerOrderId"]), trade_group_id=r.get("tradeGroupId"),
        self_trade_prevention_mode=r["selfTradePreventionMode"], price=s(r["price"]),
        maker_prevented_quantity=s(r["makerPreventedQuantity"]), transact_time_ms=int(r["transactTime"]),
    )


def freshness(source: Literal["rest", "stream"], as_of_ms: int | None, now_ms: int,
              state: str | None = None) -> BalanceFreshness:
    return BalanceFreshness(source=source, as_of_ms=as_of_ms, as_of=iso_ms(as_of_ms) if as_of_ms else None,
                            age_ms=max(0, now_ms - as_of_ms) if as_of_ms else None, stream_state=state)
