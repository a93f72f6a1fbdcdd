"""The price-range execution rule: ``get_price_rules`` (executionRules, the reference price and how it is
calculated, the execution range that follows). In the ``trading`` toolset; needs no key."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from binance_common.errors import BinanceAPIError
from binance_common.streams import build_stream

from ..answers.provenance import rest_meta, ws_meta
from ..answers.respond import respond
from ..answers.rules import PriceRules, ReferencePrice, execution_range, symbol_rules
from .context import READ_ONLY, SymbolsArg, ToolContext, ToolSpec, unique_symbols

NO_REFERENCE = -2043  # "This symbol doesn't have a reference price."


async def get_price_rules(
    tc: ToolContext,
    symbol: Annotated[str | None, Field(max_length=20, description=(
        "One pair, e.g. BTCUSDT: its rule, reference price and the prices an order may execute at now."))] = None,
    symbols: SymbolsArg = None,
    symbol_status: Annotated[Literal["TRADING", "HALT", "BREAK"] | None, Field(
        description="Every pair with this status (rules only).")] = None,
) -> Annotated[CallToolResult, PriceRules]:
    """Binance's price-range execution rule: a taker order may only execute within reference price x
    multipliers. One symbol: its rule, its reference price (live referencePrice stream when fresh, else
    GET /api/v3/referencePrice) and how that is calculated, and the execution range now (GET
    /api/v3/executionRules 2, /referencePrice 2, /referencePrice/calculation 2). Several symbols, a status or
    none (every pair, weight 40): the rules only. Give at most one of symbol, symbols, symbol_status."""
    if sum(x is not None and x != [] for x in (symbol, symbols, symbol_status)) > 1:
        raise ToolError("give at most one of symbol, symbols (a list) or symbol_status (TRADING, HALT, BREAK)")
    sym = await tc.symbol(symbol) if symbol is not None else None
    names = [sym] if sym else unique_symbols(symbols)
    params: dict[str, Any] = {}
    if sym:
        params["symbol"] = sym
    elif names:
        params["symbols"] = names  # the REST client sends a list as Binance's JSON array
    elif symbol_status is not None:
        params["symbolStatus"] = symbol_status
    raw = await tc.rest("/api/v3/executionRules", params, symbols=names)
    rules = [symbol_rules(r) for r in raw.get("symbolRules") or []]
    if not sym:
        return respond(PriceRules(**rest_meta(), rules=rules,
                                  hint="rules only; ask one symbol for its reference price and execution range"))
    ref, meta = await _reference(tc, sym)
    pr = rules[0].price_range if rules else None
    rng = execution_range(pr, ref.price)
    return respond(PriceRules(**meta, rules=rules, reference=ref, enforced=rng is not None, execution_range=rng,
                              hint=None if rng is not None else _why_not(pr, ref)))


async def _reference(tc: ToolContext, sym: str) -> tuple[ReferencePrice, dict[str, Any]]:
    """The reference price (stream-first) and how Binance calculates it; the answer's provenance."""
    try:
        calc = await tc.rest("/api/v3/referencePrice/calculation", {"symbol": sym}, symbols=[sym])
    except BinanceAPIError as e:
        if e.code != NO_REFERENCE:
            raise
        return ReferencePrice(price=None, never_set=True), rest_meta()
    how = {"calculation": calc.get("calculationType"), "bucket_count": calc.get("bucketCount"),
           "bucket_width_ms": calc.get("bucketWidthMs"), "external_calculation_id": calc.get("externalCalculationId")}
    f = await tc.feed.fresh_latest([build_stream("referencePrice", sym)])
    if f is not None:
        p = f.payload
        r = p.get("r")
        return ReferencePrice(price=None if r is None else str(r), valid_time_ms=p.get("t"), **how), ws_meta(f)
    try:
        d = await tc.rest("/api/v3/referencePrice", {"symbol": sym}, symbols=[sym])
    except BinanceAPIError as e:
        if e.code != NO_REFERENCE:
            raise
        return ReferencePrice(price=None, never_set=True, **how), rest_meta()
    r = d.get("referencePrice")
    return ReferencePrice(price=None if r is None else str(r), valid_time_ms=d.get("timestamp"), **how), rest_meta()


def _why_not(pr: Any, ref: ReferencePrice) -> str:
    if pr is None:
        return "not enforced: the symbol has no PRICE_RANGE rule"
    if ref.never_set:
        return "not enforced: the symbol has never had a reference price"
    return "not enforced now: the reference price is null"


TOOLS = (ToolSpec(get_price_rules, "Price-range execution rule", READ_ONLY),)
