"""What ``get_price_rules`` answers: the price-range execution rule of symbols, the reference price it is
applied to, and the execution range that follows (binance-spot-api-docs faqs/price_range_execution_rules.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from .numbers import fmt_n
from .provenance import Sourced

_MULTS = ("bidLimitMultUp", "bidLimitMultDown", "askLimitMultUp", "askLimitMultDown")


class PriceRange(BaseModel):
    """A PRICE_RANGE rule: execution prices must stay within reference price x these (a missing one: that
    side and direction are not limited)."""

    bid_limit_mult_up: str | None = Field(None, description="A BUY may not execute above reference x this.")
    bid_limit_mult_down: str | None = Field(None, description="A BUY may not execute below reference x this.")
    ask_limit_mult_up: str | None = Field(None, description="A SELL may not execute above reference x this.")
    ask_limit_mult_down: str | None = Field(None, description="A SELL may not execute below reference x this.")


class SymbolRules(BaseModel):
    symbol: str
    price_range: PriceRange | None = Field(None, description="Absent: the symbol has no PRICE_RANGE rule (not "
                                           "enforced).")


class ReferencePrice(BaseModel):
    price: str | None = Field(None, description="Absent: no reference price now, so the rule is not enforced.")
    valid_time_ms: int | None = Field(None, description="When the reference price was valid (engine time, ms).")
    calculation: str | None = Field(None, description="ARITHMETIC_MEAN (by the matching engine) or EXTERNAL.")
    bucket_count: int | None = None
    bucket_width_ms: int | None = None
    external_calculation_id: int | None = None
    never_set: bool = Field(False, description="Binance -2043: the symbol has never had a reference price.")


class ExecutionRange(BaseModel):
    """Prices an order may execute at right now (an absent bound is not enforced). Binance sets the limits
    again when an order starts taking, from the reference price of that moment."""

    buy_min: str | None = None
    buy_max: str | None = None
    sell_min: str | None = None
    sell_max: str | None = None


class PriceRules(Sourced):
    rules: list[SymbolRules] = Field(description="Per symbol, its PRICE_RANGE rule.")
    reference: ReferencePrice | None = Field(None, description="One symbol only: its reference price.")
    enforced: bool | None = Field(None, description="One symbol only: a PRICE_RANGE rule and a reference price.")
    execution_range: ExecutionRange | None = Field(None, description="One symbol only, when enforced.")
    hint: str | None = None


def symbol_rules(row: dict[str, Any]) -> SymbolRules:
    """One element of ``symbolRules`` (GET /api/v3/executionRules)."""
    rule = next((r for r in row.get("rules") or [] if r.get("ruleType") == "PRICE_RANGE"), None)
    pr = None if rule is None else PriceRange(**{_snake(k): _text(rule.get(k)) for k in _MULTS})
    return SymbolRules(symbol=str(row["symbol"]), price_range=pr)


def execution_range(pr: PriceRange | None, ref: str | None) -> ExecutionRange | None:
    """The prices allowed now: reference x each multiplier (exact decimals); None when not enforced."""
    if pr is None or ref is None:
        return None
    r = Decimal(ref)

    def times(m: str | None) -> str | None:
        return None if m is None else fmt_n(r * Decimal(m))

    return ExecutionRange(buy_min=times(pr.bid_limit_mult_down), buy_max=times(pr.bid_limit_mult_up),
                          sell_min=times(pr.ask_limit_mult_down), sell_max=times(pr.ask_limit_mult_up))


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _text(v: Any) -> str | None:
    return None if v is None else str(v)
