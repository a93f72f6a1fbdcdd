"""Candlesticks (klines and uiKlines) as compact rows with a summary of the returned range."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from binance_common.streams import KLINE_INTERVALS

from ..answers.convert import (
    kline_rows,
    kline_summary,
)
from ..answers.inputs import (
    check_time_range,
    check_time_zone,
    parse_time_ms,
    time_zone_param,
)
from ..answers.market import (
    KLINE_COLUMNS,
    Klines,
)
from ..answers.provenance import rest_meta
from ..answers.respond import respond_within
from .context import (
    KLINES,
    READ_ONLY,
    Interval,
    SymbolArg,
    TimeArg,
    ToolContext,
    ToolSpec,
)

INTERVALS = " ".join(KLINE_INTERVALS)
DESC_COMMON = (
    f" Rows are [{', '.join(KLINE_COLUMNS)}], oldest first; prices exact strings. Intervals (case-sensitive): "
    f"{INTERVALS}. Without start/end: the most recent candles. time_zone shifts interval boundaries (e.g. 8 "
    "for UTC+8 days); start/end are always UTC. Weight 2. An answer holds at most about 20 KB of text "
    "(answer_budget_bytes): longer ranges are cut (truncated, omitted) with the cursor to continue."
)
IntervalArg = Annotated[Interval, Field(description=f"Candle interval: {INTERVALS}.")]
ZoneArg = Annotated[str, Field(max_length=6, description="Hours or hours:minutes, -12:00..+14:00 (e.g. 8, -5, 05:45).")]
LimitArg = Annotated[int, Field(ge=1, le=KLINES[1], description="Candles to return.")]
DESC_KLINES = (
    "Historical prices as OHLCV candlesticks (klines) of a symbol, with a summary (open, close, high, low, "
    "change %, volume) of the returned range. GET /api/v3/klines." + DESC_COMMON
)
DESC_UI_KLINES = (
    "Candlesticks optimised for charts (GET /api/v3/uiKlines): same parameters and rows as get_klines, with "
    "Binance's presentation adjustments." + DESC_COMMON
)


async def _klines(
    tc: ToolContext, ui: bool, symbol: str, interval: str, start_time: Any, end_time: Any, time_zone: str, limit: int
) -> CallToolResult:
    sym = await tc.symbol(symbol)
    start, end = parse_time_ms(start_time, "start_time"), parse_time_ms(end_time, "end_time")
    check_time_range(start, end)
    tz = check_time_zone(time_zone)  # echoed in the answer as given
    params = {
        "symbol": sym, "interval": interval, "startTime": start, "endTime": end,
        "timeZone": time_zone_param(tz), "limit": limit,
    }
    raw = await tc.rest("/api/v3/uiKlines" if ui else "/api/v3/klines", params, symbols=[sym])
    make = functools.partial(Klines, **rest_meta(), symbol=sym, interval=interval, time_zone=tz, ui=ui,
                             columns=KLINE_COLUMNS)
    return respond_klines(tc, kline_rows(raw), limit, forward=start is not None, make=make)


def respond_klines(tc: ToolContext, rows: list[list[str | int]], limit: int, *, forward: bool,
                   make: Callable[..., BaseModel]) -> CallToolResult:
    """A candle answer cut to the byte budget: after start_time the oldest rows are kept (``forward``), else
    the most recent; the hint and ``next_start_time_ms`` say how to continue. ``make`` builds the model from
    the fields that depend on the rows."""
    full = len(rows) == limit

    def build(kept: Sequence[list[str | int]]) -> BaseModel:
        cut = len(rows) - len(kept)
        next_start = int(kept[-1][6]) + 1 if kept and (full or cut) and forward else None
        hint = None
        if cut:
            hint = (
                f"{len(kept)} of {len(rows)} candles fit the answer budget; continue with start_time={next_start}"
                if forward else
                f"the most recent {len(kept)} of {len(rows)} candles fit the answer budget; for older ones pass "
                f"end_time={int(kept[0][0]) - 1}"
            )
        elif full:
            hint = (
                f"{limit} candles returned (the limit): more exist after them; call again with "
                f"start_time={next_start}" if forward else
                f"the most recent {limit} candles; for older ones pass end_time={int(rows[0][0]) - 1}"
            )
        return make(rows=list(kept), count=len(kept), summary=kline_summary(list(kept)), next_start_time_ms=next_start,
                    hint=hint, truncated=cut > 0, omitted=cut)

    return respond_within(rows, build, tc.settings.answer_budget_bytes, keep="first" if forward else "last")


async def get_klines(
    tc: ToolContext,
    symbol: SymbolArg,
    interval: IntervalArg = "1h",
    start_time: TimeArg = None,
    end_time: TimeArg = None,
    time_zone: ZoneArg = "0",
    limit: LimitArg = KLINES[0],
) -> Annotated[CallToolResult, Klines]:
    return await _klines(tc, False, symbol, interval, start_time, end_time, time_zone, limit)


async def get_ui_klines(
    tc: ToolContext,
    symbol: SymbolArg,
    interval: IntervalArg = "1h",
    start_time: TimeArg = None,
    end_time: TimeArg = None,
    time_zone: ZoneArg = "0",
    limit: LimitArg = KLINES[0],
) -> Annotated[CallToolResult, Klines]:
    return await _klines(tc, True, symbol, interval, start_time, end_time, time_zone, limit)


TOOLS = (
    ToolSpec(get_klines, "Candlesticks / historical prices", READ_ONLY, description=DESC_KLINES),
    ToolSpec(get_ui_klines, "UI candlesticks", READ_ONLY, description=DESC_UI_KLINES),
)
