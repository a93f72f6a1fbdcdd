"""Exact numbers for answers: Binance decimals kept as the strings Binance sent, computed figures in exact
decimal arithmetic, never through float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

Q8 = Decimal("0.00000001")
Q4 = Decimal("0.0001")


def dec(x: Any) -> Decimal:
    """A Binance number (string, int or Decimal) as Decimal, never through float."""
    if isinstance(x, Decimal):
        return x
    try:
        return Decimal(str(x))
    except InvalidOperation as e:
        raise ValueError(f"not a decimal number: {x!r}") from e


def fmt(d: Decimal) -> str:
    """Positional notation with every digit kept (``1E-8`` -> ``0.00000001``)."""
    return format(d, "f")


def fmt_n(d: Decimal) -> str:
    """A computed exact value without trailing zeros (``22372.18299810000000`` -> ``22372.1829981``)."""
    return fmt(d.normalize()) if d != 0 else "0"


def fmt_q(d: Decimal, q: Decimal = Q8) -> str:
    """Rounded half-even to ``q``, trailing zeros dropped (but never exponent notation)."""
    r = d.quantize(q, rounding=ROUND_HALF_EVEN).normalize()
    return fmt(r) if r != 0 else "0"


def s(x: Any) -> str:
    """A Binance decimal as the exact string it sent (Decimals from the JSON decoder kept verbatim)."""
    return fmt(x) if isinstance(x, Decimal) else str(x)


def s_opt(x: Any) -> str | None:
    return None if x is None else s(x)


def i_opt(x: Any) -> int | None:
    try:
        return None if x is None else int(x)
    except (TypeError, ValueError):
        return None


def plain(v: Any) -> Any:
    """Decimals from the JSON decoder back to Binance's exact strings; anything else unchanged."""
    return s(v) if isinstance(v, Decimal) else v


def to_jsonable(obj: Any) -> Any:
    """Recursively turn Decimals into exact positional strings (pydantic would emit ``1E-8``)."""
    if isinstance(obj, Decimal):
        return fmt(obj)
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    return obj
