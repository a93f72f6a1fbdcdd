"""Fill a gap in a trade or aggTrade stream from REST, as payloads in the WebSocket event format.

:func:`backfill_trades` pages ``/api/v3/historicalTrades`` (``<s>@trade``; falls back to
``/api/v3/trades``, which only holds the latest 1000 trades, when the venue does not offer it, e.g.
data-api.binance.vision) or ``/api/v3/aggTrades`` (``<s>@aggTrade``) by ``fromId``, 1000 rows a page, and
converts every row to the exact payload the stream would have carried:

- trade: ``{"e":"trade","E","s","t","p","q","T","m","M"}``
- aggTrade: ``{"e":"aggTrade","E","s","a","p","q","f","l","T","m","M"}``

REST has no event time, so ``E`` is the trade time ``T``. Prices and quantities are Binance's strings,
verbatim.

Errors: :class:`BackfillUnavailable` when Binance cannot serve the range (ids too old for the endpoint,
ids missing, endpoint absent, bad symbol) and :class:`BackfillTooLarge` when the range exceeds
``max_items``: the caller counts the gap as unfillable. Retryable failures (rate limit, 5xx, transport:
:class:`binance_common.errors.BinanceError` with ``retryable``) propagate unchanged so the caller can retry.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import orjson

from binance_common.errors import BinanceError, InvalidSymbolError
from binance_common.streams import StreamKind, parse_stream

__all__ = ["PAGE", "BackfillError", "BackfillTooLarge", "BackfillUnavailable", "backfill_trades"]

log = logging.getLogger(__name__)

PAGE = 1000  # rows per request (the endpoints' maximum)


class BackfillError(Exception):
    """A gap that cannot be filled. ``stream``, ``from_id`` and ``to_id`` (inclusive) name the range."""

    def __init__(self, message: str, *, stream: str, from_id: int, to_id: int) -> None:
        super().__init__(message)
        self.stream = stream
        self.from_id = from_id
        self.to_id = to_id


class BackfillUnavailable(BackfillError):
    """Binance cannot serve (part of) the range: too old for the endpoint, ids missing, no endpoint."""


class BackfillTooLarge(BackfillError):
    """The range holds more ids than ``max_items``; nothing was requested."""


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _s(v: Any) -> str:
    return v if isinstance(v, str) else str(v)


def trade_payload(symbol: str, row: dict[str, Any]) -> dict[str, Any]:
    """A ``/trades`` or ``/historicalTrades`` row as a ``<s>@trade`` payload (``E`` = trade time)."""
    t = int(row["time"])
    return {
        "e": "trade", "E": t, "s": symbol, "t": int(row["id"]), "p": _s(row["price"]), "q": _s(row["qty"]),
        "T": t, "m": bool(row["isBuyerMaker"]), "M": bool(row.get("isBestMatch", True)),
    }


def agg_trade_payload(symbol: str, row: dict[str, Any]) -> dict[str, Any]:
    """An ``/aggTrades`` row as a ``<s>@aggTrade`` payload (``E`` = trade time)."""
    t = int(row["T"])
    return {
        "e": "aggTrade", "E": t, "s": symbol, "a": int(row["a"]), "p": _s(row["p"]), "q": _s(row["q"]),
        "f": int(row["f"]), "l": int(row["l"]), "T": t, "m": bool(row["m"]), "M": bool(row.get("M", True)),
    }


async def backfill_trades(
    rest: Any, stream: str, from_id: int, to_id: int, *, max_items: int = 10_000
) -> list[bytes]:
    """Payloads (raw JSON bytes, WebSocket format) of ``stream`` for ids ``from_id..to_id`` inclusive, in id
    order. ``stream`` is ``<s>@trade`` or ``<s>@aggTrade``; ``rest`` has ``async get(path, params)``.

    Raises :class:`BackfillTooLarge` when the range exceeds ``max_items`` ids, :class:`BackfillUnavailable`
    when Binance cannot serve it, ``ValueError`` for other stream kinds; retryable
    :class:`~binance_common.errors.BinanceError` propagate.
    """
    spec = parse_stream(stream)
    if spec.kind not in (StreamKind.TRADE, StreamKind.AGG_TRADE):
        raise ValueError(f"backfill needs a trade or aggTrade stream, got {stream!r}")
    if to_id < from_id:
        return []
    n = to_id - from_id + 1
    if n > max_items:
        raise BackfillTooLarge(
            f"{spec.name}: gap of {n} ids ({from_id}..{to_id}) exceeds the backfill limit of {max_items}",
            stream=spec.name, from_id=from_id, to_id=to_id,
        )
    symbol = spec.symbol or ""
    if spec.kind is StreamKind.AGG_TRADE:
        payloads = await _paged(rest, spec.name, "/api/v3/aggTrades", symbol, "a", agg_trade_payload,
                                from_id, to_id)
    else:
        try:
            payloads = await _paged(rest, spec.name, "/api/v3/historicalTrades", symbol, "id",
                                    trade_payload, from_id, to_id)
        except _EndpointRefused as e:
            log.info("%s: historicalTrades refused (%s); trying /api/v3/trades", spec.name, e.__cause__)
            payloads = await _recent_trades(rest, spec.name, symbol, from_id, to_id)
    return [orjson.dumps(p, default=_default) for p in payloads]


class _EndpointRefused(Exception):
    """historicalTrades is not served here (not found, needs a key, ...)."""


def _unavailable(stream: str, from_id: int, to_id: int, why: str) -> BackfillUnavailable:
    return BackfillUnavailable(f"{stream}: cannot backfill ids {from_id}..{to_id}: {why}",
                               stream=stream, from_id=from_id, to_id=to_id)


async def _get(rest: Any, stream: str, path: str, params: dict[str, Any], from_id: int, to_id: int) -> Any:
    try:
        return await rest.get(path, params)
    except BinanceError as e:
        if e.retryable:
            raise
        if path == "/api/v3/historicalTrades" and not isinstance(e, InvalidSymbolError):
            raise _EndpointRefused(str(e)) from e
        raise _unavailable(stream, from_id, to_id, f"Binance refused {path}: {e}") from e


async def _paged(
    rest: Any, stream: str, path: str, symbol: str, id_field: str, convert: Any, from_id: int, to_id: int
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = from_id
    while cursor <= to_id:
        limit = min(PAGE, to_id - cursor + 1)
        rows = await _get(rest, stream, path, {"symbol": symbol, "fromId": cursor, "limit": limit},
                          from_id, to_id)
        if not isinstance(rows, list) or not rows:
            raise _unavailable(stream, from_id, to_id, f"{path} returned no rows from id {cursor}")
        for row in rows:
            if cursor > to_id:
                break
            i = int(row[id_field])
            if i < cursor:
                continue  # not expected (fromId is inclusive), harmless
            if i != cursor:
                raise _unavailable(stream, from_id, to_id, f"{path} has no id {cursor} (next is {i})")
            out.append(convert(symbol, row))
            cursor += 1
    return out


async def _recent_trades(rest: Any, stream: str, symbol: str, from_id: int, to_id: int) -> list[dict[str, Any]]:
    rows = await _get(rest, stream, "/api/v3/trades", {"symbol": symbol, "limit": PAGE}, from_id, to_id)
    by_id = {int(r["id"]): r for r in rows or []}
    missing = [i for i in (from_id, to_id) if i not in by_id]
    if missing:
        oldest = min(by_id) if by_id else None
        raise _unavailable(stream, from_id, to_id,
                           f"/api/v3/trades only holds the latest {PAGE} trades (oldest id {oldest}) and "
                           "historicalTrades is not available on this endpoint")
    out = []
    for i in range(from_id, to_id + 1):
        row = by_id.get(i)
        if row is None:
            raise _unavailable(stream, from_id, to_id, f"/api/v3/trades has no id {i}")
        out.append(trade_payload(symbol, row))
    return out
