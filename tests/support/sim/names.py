"""The simulator's own reading of Binance stream names (independent of binance_common, on purpose)."""

from __future__ import annotations

import re

INTERVALS = {"1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
             "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
             "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000, "1M": 2_592_000_000}
WINDOWS = {"1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}

_RE = re.compile(
    r"^(?P<sym>[a-z0-9]+)@(?:(?P<simple>trade|aggTrade|miniTicker|ticker|bookTicker|avgPrice|referencePrice"
    r"|blockTrade)"
    r"|kline_(?P<interval>1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M)(?:@(?P<tz>[+-]\d{2}:\d{2}))?"
    r"|ticker_(?P<window>1h|4h|1d)"
    r"|depth(?P<levels>5|10|20)?(?:@(?P<speed>100ms|1000ms))?)$"
)


def parse(name: str) -> dict[str, str | None] | None:
    """Parts of a valid stream name, or None. ``kind`` is trade, aggTrade, kline, ... depth, partial."""
    if name == "!miniTicker@arr":
        return {"kind": "allMini", "sym": None}
    m = re.match(r"^!ticker_(1h|4h|1d)@arr$", name)
    if m:
        return {"kind": "allWindow", "sym": None, "window": m.group(1)}
    m = _RE.match(name)
    if not m:
        return None
    d = m.groupdict()
    if d["simple"]:
        kind = d["simple"]
    elif d["interval"]:
        kind = "kline"
    elif d["window"]:
        kind = "window"
    elif d["levels"]:
        kind = "partial"
    else:
        kind = "depth"
    d["kind"] = kind
    return d
