"""Account tools (signed, read-only): the account and its balances, trading fees, order-count limits, and
the user-data events the daemon keeps. Registered only when an API key is configured (README: Account tools).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.types import CallToolResult
from pydantic import Field

import binance_common.accountstore as store
from binance_common.timeutil import now_ms

from ..answers.account import (
    Account,
    AccountEvent,
    AccountEvents,
    Balance,
    Balances,
    OrderRateLimit,
    OrderRateLimits,
    SymbolFees,
    TradingFees,
    freshness,
    rates,
)
from ..answers.inputs import check_asset
from ..answers.numbers import dec, s
from ..answers.respond import more_hint, respond, respond_within
from .context import READ_ACCOUNT, SymbolsArg, ToolContext, ToolSpec, unique_symbols

BALANCE_ROWS = (100, 1000)
FEE_ROWS = (100, 1000)
EVENT_ROWS = (50, 500)
MAX_WAIT_MS = 30_000
STREAM_ALIVE_MS = 15_000
"""The daemon marks its user-data connection alive about every second; older than this, its copy is not live."""

AssetsArg = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=20)]] | None,
    Field(max_length=100, description="Only these assets, e.g. ['BTC','USDT'] (at most 100)."),
]
IncludeZero = Annotated[bool, Field(description="Also list assets whose free and locked amounts are both zero.")]


def _assets(assets: list[str] | None) -> set[str] | None:
    """The asset filter, checked before any request."""
    if not assets:
        return None
    return {str(check_asset(a.upper(), "assets")) for a in assets}


def _balances(rows: list[tuple[str, str, str]], wanted: set[str] | None, include_zero: bool) -> list[Balance]:
    out = [Balance(asset=a, free=f, locked=lk) for a, f, lk in sorted(rows)
           if (wanted is None or a in wanted) and (include_zero or dec(f) != 0 or dec(lk) != 0)]
    return out


def _rest_rows(account: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(b["asset"], s(b["free"]), s(b["locked"])) for b in account.get("balances", [])]


async def get_account(
    tc: ToolContext,
    include_zero: IncludeZero = False,
    assets: AssetsArg = None,
    limit: Annotated[int, Field(ge=1, le=BALANCE_ROWS[1], description="Most balances listed (max 1000).")] = BALANCE_ROWS[0],
) -> Annotated[CallToolResult, Account]:
    """The configured account (GET /api/v3/account, weight 20, needs the key's Reading permission): type,
    can_trade/can_withdraw/can_deposit, permissions, commission rates, and balances (non-zero only unless
    include_zero; exact decimal strings, alphabetical)."""
    wanted = _assets(assets)
    params: dict[str, Any] = {} if include_zero else {"omitZeroBalances": True}
    a = await tc.signed_get("/api/v3/account", params)
    bal = _balances(_rest_rows(a), wanted, include_zero)
    shown = bal[:limit]
    return respond(Account(
        account_type=a.get("accountType", "SPOT"), can_trade=bool(a.get("canTrade")),
        can_withdraw=bool(a.get("canWithdraw")), can_deposit=bool(a.get("canDeposit")),
        permissions=list(a.get("permissions", [])), commission_rates=rates(a["commissionRates"]),
        require_self_trade_prevention=a.get("requireSelfTradePrevention"), update_time_ms=a.get("updateTime"),
        balances=shown, total=len(bal), returned=len(shown), truncated=len(bal) > len(shown),
        hint=more_hint(len(bal), len(shown), BALANCE_ROWS[1], "pass assets=[...] to list only some"),
    ))


async def get_trading_fees(
    tc: ToolContext,
    symbol: Annotated[str | None, Field(max_length=20, description=(
        "One pair: its full commission (standard, special, tax, BNB discount) from /api/v3/account/commission "
        "(weight 20). Omit for every pair's maker/taker fee from /sapi/v1/asset/tradeFee (weight 1)."))] = None,
    symbols: SymbolsArg = None,
    limit: Annotated[int, Field(ge=1, le=FEE_ROWS[1], description="Most pairs listed (max 1000).")] = FEE_ROWS[0],
) -> Annotated[CallToolResult, TradingFees]:
    """Your trading fees (commission rates as exact decimal fractions, e.g. 0.001 = 0.1%): one pair in full
    detail, or maker/taker rates of many pairs."""
    if symbol is not None and symbols:
        raise ValueError("pass symbol (one pair, full detail) or symbols (several pairs), not both")
    if symbol is not None:
        sym = await tc.symbol(symbol)
        c = await tc.signed_get("/api/v3/account/commission", {"symbol": sym}, symbols=[sym])
        std = c["standardCommission"]
        row = SymbolFees(symbol=c["symbol"], maker=s(std["maker"]), taker=s(std["taker"]), buyer=s(std["buyer"]),
                         seller=s(std["seller"]), special=rates(c["specialCommission"]), tax=rates(c["taxCommission"]),
                         bnb_discount=c.get("discount"))
        return respond(TradingFees(endpoint="/api/v3/account/commission", fees=[row], total=1, returned=1,
                                   truncated=False))
    wanted = [await tc.symbol(x) for x in unique_symbols(symbols) or []] or None
    params = {"symbol": wanted[0]} if wanted and len(wanted) == 1 else {}
    rows = await tc.signed_get("/sapi/v1/asset/tradeFee", params, symbols=wanted)
    if wanted:
        rows = [r for r in rows if r["symbol"] in set(wanted)]
    fees = [SymbolFees(symbol=r["symbol"], maker=s(r["makerCommission"]), taker=s(r["takerCommission"])) for r in rows]
    shown = fees[:limit]
    missing = sorted(set(wanted or []) - {f.symbol for f in fees})
    hint = more_hint(len(fees), len(shown), FEE_ROWS[1], "pass symbols=[...]")
    if missing:
        hint = f"no fee listed for {', '.join(missing)} (not a pair Binance lists?)" + (f"; {hint}" if hint else "")
    return respond(TradingFees(endpoint="/sapi/v1/asset/tradeFee", fees=shown, total=len(fees), returned=len(shown),
                               truncated=len(fees) > len(shown), hint=hint))


async def get_order_rate_limits(tc: ToolContext) -> Annotated[CallToolResult, OrderRateLimits]:
    """How many orders the account has placed in each order-count window and the limits (GET
    /api/v3/rateLimit/order, weight 40), plus the counts of the X-MBX-ORDER-COUNT-* headers last seen."""
    rows = await tc.signed_get("/api/v3/rateLimit/order")
    return respond(OrderRateLimits(
        limits=[OrderRateLimit(rate_limit_type=r["rateLimitType"], interval=r["interval"],
                               interval_num=int(r["intervalNum"]), limit=int(r["limit"]), count=int(r["count"]))
                for r in rows],
        last_seen_headers=dict(tc.signed.order_counts),
    ))


async def get_balances(
    tc: ToolContext,
    source: Annotated[Literal["auto", "rest", "stream"], Field(description=(
        "auto: the daemon's user-data stream when it is live (no REST weight), else REST; rest: GET "
        "/api/v3/account (weight 20); stream: only the daemon's copy (error when it has none)."))] = "auto",
    assets: AssetsArg = None,
    include_zero: IncludeZero = False,
) -> Annotated[CallToolResult, Balances]:
    """Balances of the configured account (free and locked, exact decimal strings) with a freshness block
    saying where they come from and how old they are."""
    acct = tc.signed.account
    wanted = _assets(assets)
    now = now_ms()
    if source != "rest":
        raw, status = await tc.feed.account_balances(acct)
        state = status.get("state")
        alive = int(status.get("last_alive_ms") or 0)
        live = state == store.AccountStreamState.LIVE and now - alive <= STREAM_ALIVE_MS
        decoded = store.decode_balances(raw)
        if decoded is not None and (source == "stream" or live):
            bal, as_of, _src = decoded
            rows = [(a, f, lk) for a, (f, lk) in bal.items()]
            return respond(Balances(balances=_balances(rows, wanted, include_zero),
                                    freshness=freshness("stream", as_of, now, state if live else f"{state} (not live)")))
        if source == "stream":
            raise ValueError("the daemon keeps no user-data stream for this account (run binance-streamd with the "
                             "same API key), so there are no streamed balances; use source=rest")
    a = await tc.signed_get("/api/v3/account", {} if include_zero else {"omitZeroBalances": True})
    return respond(Balances(balances=_balances(_rest_rows(a), wanted, include_zero),
                            freshness=freshness("rest", now, now)))


def _event(entry_id: Any, fields: dict[Any, Any]) -> AccountEvent:
    kind, data = store.decode_entry(fields)
    eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    if kind == store.EVENT:
        return AccountEvent(id=eid, kind="event", event_type=data.get("e"), event_time_ms=data.get("E"), event=data)
    if kind == store.GAP:
        return AccountEvent(id=eid, kind="gap", gap=data)
    return AccountEvent(id=eid, kind="reconciled", reconciled=data)


async def get_account_events(
    tc: ToolContext,
    after_id: Annotated[str | None, Field(pattern=r"^[0-9]{1,20}-[0-9]{1,20}$", description=(
        "Return entries after this id (next_after_id of the previous answer); omit for the latest entries."))] = None,
    limit: Annotated[int, Field(ge=1, le=EVENT_ROWS[1], description="Most entries (max 500).")] = EVENT_ROWS[0],
    wait_ms: Annotated[int, Field(ge=0, le=MAX_WAIT_MS, description=(
        "With after_id: wait up to this long (max 30000) for a new entry when there is none yet."))] = 0,
) -> Annotated[CallToolResult, AccountEvents]:
    """The account's user-data events as the daemon stored them (orders, fills, balance changes), oldest
    first, with explicit gap entries (no connection was subscribed; Binance does not replay) each followed by
    a reconciled entry once the daemon re-read balances, orders and fills over REST. Reads Redis only."""
    rows, trimmed, status = await tc.feed.account_events(tc.signed.account, after_id=after_id, limit=limit,
                                                         wait_s=wait_ms / 1000 if after_id is not None else 0)
    events = [_event(i, f or {}) for i, f in rows]

    def build(kept: Any) -> AccountEvents:
        last = kept[-1].id if kept else after_id
        return AccountEvents(events=list(kept), next_after_id=last, stream_state=status.get("state"), trimmed=trimmed,
                             last_event_ms=int(status["last_event_ms"]) if status.get("last_event_ms") else None,
                             gaps=int(status.get("gaps") or 0), truncated=len(kept) < len(events),
                             omitted=len(events) - len(kept))

    return respond_within(events, build, tc.settings.answer_budget_bytes)


TOOLS = (
    ToolSpec(get_account, "Account and balances", READ_ACCOUNT),
    ToolSpec(get_balances, "Balances (stream-first)", READ_ACCOUNT),
    ToolSpec(get_trading_fees, "Trading fees", READ_ACCOUNT),
    ToolSpec(get_account_events, "Account events (user-data stream)", READ_ACCOUNT),
)
TRADING = (ToolSpec(get_order_rate_limits, "Order-count limits", READ_ACCOUNT),)
"""Read-only tools about trading limits: the ``trading`` toolset."""
