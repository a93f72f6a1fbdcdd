"""Recover a trade or aggTrade stream's missing ids from REST, as payloads in the WebSocket event format.

Two uses, one algorithm (:func:`plan_fill`):

* **catch-up** after every (re)subscription: everything after the last id the daemon holds (or, for a
  stream with no id yet, everything since its first subscription acknowledgement), up to the present;
* **backfill** of a gap the live data showed: ids ``last + 1 .. next live id - 1``.

Endpoints (:class:`TradeSource`): ``<s>@aggTrade`` pages ``/api/v3/aggTrades`` by ``fromId`` (weight 4 a
page of 1000; ``startTime`` when no id is known). ``<s>@trade`` pages ``/api/v3/historicalTrades`` by
``fromId`` (weight 25); where that endpoint is refused (e.g. data-api.binance.vision) it falls back to
``/api/v3/trades``, which holds only the latest 1000 trades (weight 25); ``/api/v3/trades`` also serves
the no-id case, filtered by trade time.

What cannot be recovered is never silent: the result carries :class:`GapRecord` s (ids from REST's own
holes, ranges larger than ``max_ids`` (the oldest part is given up, the newest ``max_ids`` are fetched), ids
the endpoint no longer serves), which the daemon writes as gap entries in id order.

Payload conversion: REST has no event time, so ``E`` is the trade time ``T``; prices and quantities are
Binance's strings verbatim.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from binance_common.errors import BinanceError, InvalidSymbolError
from binance_common.streams import TRADE_ID_FIELD, StreamKind, parse_stream

__all__ = ["PAGE", "CatchupUnavailable", "DataRecord", "GapRecord", "TradeSource", "plan_fill"]

log = logging.getLogger(__name__)

PAGE = 1000  # rows per request (the endpoints' maximum)
TIME_MARGIN_MS = 1000  # a no-id catch-up starts this long before the acknowledgement (clock skew)

Get = Callable[[str, dict[str, Any]], Awaitable[Any]]


HISTORICAL_RETRY_S = 600.0
"""After historicalTrades is refused, /api/v3/trades (the latest 1000 only) serves catch-ups this long."""


class CatchupUnavailable(Exception):
    """REST cannot serve what was asked (endpoint refused, symbol unknown): the caller records a gap."""


class _Refused(Exception):
    """historicalTrades is not served here (not found, needs a key, ...)."""


@dataclass(frozen=True, slots=True)
class DataRecord:
    payload: dict[str, Any]  # WebSocket-format payload (Decimals where REST sent numbers)
    id: int


@dataclass(frozen=True, slots=True)
class GapRecord:
    from_id: int | None  # None: unknown (more trades since the acknowledgement than REST returned)
    to_id: int
    reason: str


Record = DataRecord | GapRecord


def _s(v: Any) -> str:
    return format(v, "f") if isinstance(v, Decimal) else str(v)


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


class TradeSource:
    """REST pages of one trade or aggTrade stream. ``get(path, params)`` performs one GET (in the daemon: the
    priority queue). Retryable :class:`BinanceError` s propagate; permanent refusals raise
    :class:`CatchupUnavailable`."""

    def __init__(self, stream: str, get: Get) -> None:
        spec = parse_stream(stream)
        if spec.kind not in TRADE_ID_FIELD:
            raise ValueError(f"catch-up needs a trade or aggTrade stream, got {stream!r}")
        self.stream = spec.name
        assert spec.symbol is not None  # trade streams always name one
        self.symbol = spec.symbol.upper()
        self.agg = spec.kind is StreamKind.AGG_TRADE
        self.futures = spec.venue == "um"
        self.agg_path = "/fapi/v1/aggTrades" if self.futures else "/api/v3/aggTrades"
        self.id_field = TRADE_ID_FIELD[spec.kind]
        self._get = get
        self.historical = True  # historicalTrades served here (a refusal switches to /trades for a while)
        self._historical_again = 0.0  # monotonic time to ask historicalTrades again after a refusal

    async def _call(self, path: str, params: dict[str, Any]) -> list[Any]:
        try:
            rows = await self._get(path, {"symbol": self.symbol, **params})
        except BinanceError as e:
            if e.retryable:
                raise
            if path == "/api/v3/historicalTrades" and not isinstance(e, InvalidSymbolError):
                raise _Refused(str(e)) from e
            raise CatchupUnavailable(f"Binance refused {path}: {e}") from e
        return rows if isinstance(rows, list) else []

    async def _recent(self, limit: int) -> list[dict[str, Any]]:
        return self._convert(await self._call("/api/v3/trades", {"limit": limit}))

    def _convert(self, rows: list[Any]) -> list[dict[str, Any]]:
        conv = agg_trade_payload if self.agg else trade_payload
        out = [conv(self.symbol, r) for r in rows]
        if self.futures:  # futures aggTrade payloads carry no M
            for p in out:
                p.pop("M", None)
        return out

    async def from_id(self, first_id: int, limit: int = PAGE) -> list[dict[str, Any]]:
        """Payloads with ids >= ``first_id`` in id order (at most ``limit``; fewer means the present)."""
        if self.agg:
            return self._convert(await self._call(self.agg_path, {"fromId": first_id, "limit": limit}))
        if not self.historical and time.monotonic() >= self._historical_again:
            self.historical = True  # a refusal may have been passing (a firewall, a maintenance): ask again
        if self.historical:
            try:
                return self._convert(await self._call("/api/v3/historicalTrades",
                                                      {"fromId": first_id, "limit": limit}))
            except _Refused as e:
                self.historical = False
                self._historical_again = time.monotonic() + HISTORICAL_RETRY_S
                log.info("%s: historicalTrades refused (%s); using /api/v3/trades for %.0f s", self.stream, e,
                         HISTORICAL_RETRY_S)
        payloads = await self._recent(PAGE)
        return [p for p in payloads if p["t"] >= first_id][:limit]

    async def since(self, start_ms: int) -> tuple[list[dict[str, Any]], bool]:
        """(payloads with trade time >= ``start_ms``, complete). ``complete`` is False when older ones may
        exist that this request did not reach (more than a page since ``start_ms``)."""
        if self.agg:
            rows = self._convert(await self._call(self.agg_path, {"startTime": start_ms, "limit": PAGE}))
            return [p for p in rows if p["T"] >= start_ms], True
        rows = await self._recent(PAGE)
        kept = [p for p in rows if p["T"] >= start_ms]
        return kept, len(kept) < len(rows) or len(rows) < PAGE

    async def newest_id(self) -> int | None:
        if self.agg:
            rows = self._convert(await self._call(self.agg_path, {"limit": 1}))
        else:
            rows = await self._recent(1)
        return rows[-1][self.id_field] if rows else None


async def plan_fill(
    source: TradeSource, *, last_id: int | None, start_ms: int | None, until_id: int | None = None,
    max_ids: int = 20_000,
) -> list[Record]:
    """Records (data and gaps, in id order) recovering what follows ``last_id``.

    ``last_id``: the last id the stream's history accounts for, or None when it holds none yet; then
    ``start_ms`` (the first acknowledgement) bounds the catch-up by time (None: nothing to recover).
    ``until_id``: the last id to recover (a live gap: the next live id - 1), or None for "up to the present".
    ``max_ids``: the most ids recovered; an older remainder becomes a gap record.
    """
    out: list[Record] = []
    fid = source.id_field
    if last_id is None:
        if start_ms is None:
            return out
        rows, complete = await source.since(start_ms - TIME_MARGIN_MS)
        if not rows:
            return out
        if not complete:
            out.append(GapRecord(None, rows[0][fid] - 1, "more trades since the subscription was acknowledged "
                                 "than one REST page holds; the oldest were not fetched"))
        out.extend(DataRecord(p, p[fid]) for p in rows)
        if len(rows) < PAGE and complete:
            return out
        last_id = rows[-1][fid]
    cursor = last_id + 1
    if until_id is not None and until_id - cursor + 1 > max_ids:
        out.append(_too_many(cursor, until_id - max_ids, max_ids))
        cursor = until_id - max_ids + 1
    newest: int | None = until_id
    while newest is None or cursor <= newest:
        limit = PAGE if newest is None else min(PAGE, newest - cursor + 1)
        try:
            page = await source.from_id(cursor, limit)
        except CatchupUnavailable as e:
            out.append(GapRecord(cursor, newest if newest is not None else cursor, str(e)))
            return out
        page = [p for p in page if p[fid] >= cursor and (newest is None or p[fid] <= newest)]
        if not page:
            if newest is not None:  # REST does not hold the rest of the range
                out.append(GapRecord(cursor, newest, f"ids {cursor}..{newest} are not served by REST"))
            return out
        for p in page:
            if p[fid] > cursor:
                out.append(GapRecord(cursor, p[fid] - 1, f"ids {cursor}..{p[fid] - 1} are not served by REST"))
            out.append(DataRecord(p, p[fid]))
            cursor = p[fid] + 1
        if newest is None:  # an open catch-up: a short page is the present, a full one is bounded by it
            if len(page) < limit:
                return out
            newest = await source.newest_id()
            if newest is None:
                return out
            keep_from = newest - max(0, max_ids - len(page)) + 1  # the newest max_ids, this page included
            if keep_from > cursor:
                out.append(_too_many(cursor, keep_from - 1, max_ids))
                cursor = keep_from
    return out


def _too_many(lo: int, hi: int, max_ids: int) -> GapRecord:
    return GapRecord(lo, hi, f"{hi - lo + 1} ids older than the newest {max_ids} were not backfilled "
                     "(BINANCE_MCP_BACKFILL_MAX_IDS)")
