"""USD-M futures statistics (the ``futures`` toolset): funding-rate history, open interest and its history,
long/short ratios and taker buy/sell volume. Series answers are columnar and byte-budgeted."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.types import CallToolResult
from pydantic import Field

from binance_common.streams import normalize_symbol

from ..answers.futures import FuturesSeries, OpenInterest
from ..answers.inputs import check_time_range, parse_time_ms
from ..answers.numbers import s
from ..answers.provenance import rest_meta
from ..answers.respond import respond, respond_within
from .context import READ_ONLY, SymbolArg, TimeArg, ToolContext, ToolSpec

Period = Literal["5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"]
PeriodArg = Annotated[Period, Field(description="Statistics period: 5m 15m 30m 1h 2h 4h 6h 12h 1d (Binance keeps "
                                                "the last 30 days).")]
StatLimit = Annotated[int, Field(ge=1, le=500, description="Rows (max 500).")]
RATIO_PATHS = {"global_accounts": "/futures/data/globalLongShortAccountRatio",
               "top_accounts": "/futures/data/topLongShortAccountRatio",
               "top_positions": "/futures/data/topLongShortPositionRatio"}
DAY_MS = 86_400_000


def _window(start_time: Any, end_time: Any, *, days: int | None = None) -> tuple[int | None, int | None]:
    start, end = parse_time_ms(start_time, "start_time"), parse_time_ms(end_time, "end_time")
    check_time_range(start, end)
    if days is not None:
        from binance_common.timeutil import now_ms

        for name, t in (("start_time", start), ("end_time", end)):
            if t is not None and t < now_ms() - days * DAY_MS:
                raise ValueError(f"Binance keeps these statistics for the last {days} days only: {name} must be later")
    return start, end


def _series(tc: ToolContext, symbol: str, kind: str, period: str | None, columns: list[str],
            rows: list[list[Any]]) -> CallToolResult:
    def build(kept: Any) -> FuturesSeries:
        cut = len(rows) - len(kept)
        return FuturesSeries(**meta, symbol=symbol, kind=kind, period=period, columns=columns, rows=list(kept),
                             total=len(rows), returned=len(kept), truncated=cut > 0, omitted=cut,
                             hint=f"the most recent {len(kept)} rows fit the answer budget; narrow the window"
                             if cut else None)

    meta = rest_meta()
    return respond_within(rows, build, tc.settings.answer_budget_bytes, keep="last")


def _ts(v: Any) -> int:
    return int(str(v))  # some statistics send timestamps as strings


async def get_funding_rate_history(
    tc: ToolContext,
    symbol: SymbolArg,
    start_time: TimeArg = None,
    end_time: TimeArg = None,
    limit: Annotated[int, Field(ge=1, le=1000, description="Rows (max 1000).")] = 100,
) -> Annotated[CallToolResult, FuturesSeries]:
    """Past funding rates of a USD-M contract (GET /fapi/v1/fundingRate; 500 requests per 5 min per IP),
    oldest first: [funding_time_ms, funding_rate, mark_price]."""
    sym = normalize_symbol(symbol)
    start, end = _window(start_time, end_time)
    raw = await tc.futures("/fapi/v1/fundingRate", {"symbol": sym, "startTime": start, "endTime": end, "limit": limit})
    rows = [[int(r["fundingTime"]), s(r["fundingRate"]), s(r["markPrice"]) if r.get("markPrice") is not None else None]
            for r in raw]
    return _series(tc, sym, "funding_rate", None, ["funding_time_ms", "funding_rate", "mark_price"], rows)


async def get_open_interest(tc: ToolContext, symbol: SymbolArg) -> Annotated[CallToolResult, OpenInterest]:
    """Open interest of a USD-M contract now (GET /fapi/v1/openInterest, weight 1), in the base asset."""
    sym = normalize_symbol(symbol)
    r = await tc.futures("/fapi/v1/openInterest", {"symbol": sym})
    return respond(OpenInterest(**rest_meta(), symbol=r["symbol"], open_interest=s(r["openInterest"]),
                                time_ms=int(r["time"])))


async def get_open_interest_history(
    tc: ToolContext, symbol: SymbolArg, period: PeriodArg = "1h", start_time: TimeArg = None,
    end_time: TimeArg = None, limit: StatLimit = 30,
) -> Annotated[CallToolResult, FuturesSeries]:
    """Open-interest statistics of a USD-M contract (GET /futures/data/openInterestHist; last 30 days),
    oldest first: [timestamp_ms, sum_open_interest, sum_open_interest_value]."""
    sym = normalize_symbol(symbol)
    start, end = _window(start_time, end_time, days=30)
    raw = await tc.futures("/futures/data/openInterestHist", {"symbol": sym, "period": period, "startTime": start,
                                                              "endTime": end, "limit": limit})
    rows = [[_ts(r["timestamp"]), s(r["sumOpenInterest"]), s(r["sumOpenInterestValue"])] for r in raw]
    return _series(tc, sym, "open_interest", period, ["timestamp_ms", "sum_open_interest", "sum_open_interest_value"],
                   rows)


async def get_long_short_ratio(
    tc: ToolContext,
    symbol: SymbolArg,
    kind: Annotated[Literal["global_accounts", "top_accounts", "top_positions"], Field(description=(
        "global_accounts: all accounts; top_accounts: top traders by accounts; top_positions: top traders by "
        "position size."))] = "global_accounts",
    period: PeriodArg = "1h",
    start_time: TimeArg = None,
    end_time: TimeArg = None,
    limit: StatLimit = 30,
) -> Annotated[CallToolResult, FuturesSeries]:
    """Long/short ratio of a USD-M contract (GET /futures/data/*LongShort*Ratio; last 30 days), oldest first:
    [timestamp_ms, long_short_ratio, long_share, short_share]."""
    sym = normalize_symbol(symbol)
    start, end = _window(start_time, end_time, days=30)
    raw = await tc.futures(RATIO_PATHS[kind], {"symbol": sym, "period": period, "startTime": start, "endTime": end,
                                               "limit": limit})
    rows = [[_ts(r["timestamp"]), s(r["longShortRatio"]), s(r["longAccount"]), s(r["shortAccount"])] for r in raw]
    return _series(tc, sym, f"long_short_ratio:{kind}", period,
                   ["timestamp_ms", "long_short_ratio", "long_share", "short_share"], rows)


async def get_taker_buy_sell_volume(
    tc: ToolContext, symbol: SymbolArg, period: PeriodArg = "1h", start_time: TimeArg = None,
    end_time: TimeArg = None, limit: StatLimit = 30,
) -> Annotated[CallToolResult, FuturesSeries]:
    """Taker buy and sell volume of a USD-M contract (GET /futures/data/takerlongshortRatio; last 30 days),
    oldest first: [timestamp_ms, buy_sell_ratio, buy_volume, sell_volume]."""
    sym = normalize_symbol(symbol)
    start, end = _window(start_time, end_time, days=30)
    raw = await tc.futures("/futures/data/takerlongshortRatio", {"symbol": sym, "period": period, "startTime": start,
                                                                 "endTime": end, "limit": limit})
    rows = [[_ts(r["timestamp"]), s(r["buySellRatio"]), s(r["buyVol"]), s(r["sellVol"])] for r in raw]
    return _series(tc, sym, "taker_volume", period, ["timestamp_ms", "buy_sell_ratio", "buy_volume", "sell_volume"],
                   rows)


TOOLS = (
    ToolSpec(get_funding_rate_history, "Futures funding-rate history", READ_ONLY),
    ToolSpec(get_open_interest, "Futures open interest", READ_ONLY),
    ToolSpec(get_open_interest_history, "Futures open-interest history", READ_ONLY),
    ToolSpec(get_long_short_ratio, "Futures long/short ratio", READ_ONLY),
    ToolSpec(get_taker_buy_sell_volume, "Futures taker buy/sell volume", READ_ONLY),
)
